"""Run and sweep specifications: pure, validated data. Ignores how runs are executed or stored.

A RunSpec names everything that determines a run's numbers; its content hash is
the run id, so the same spec is never trained twice. A SweepSpec is a RunSpec
plus sweep axes (dotted field paths -> values) expanded as a Cartesian product.
"""

import hashlib
import itertools
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from lmech.models.family import RunModelSpec
from lmech.models.mlp import ModelSpec
from lmech.tasks import TaskSpec
from lmech.tasks.digits import DigitsSpec

__all__ = ["OptimizerSpec", "ObserveSpec", "RunSpec", "SweepSpec", "run_id", "expand_sweep", "set_field",
           "ENSEMBLE_SCALARS", "group_key"]


# Upper bounds that fit one machine; a spec past them is refused when it is loaded.
MAX_STEPS = 10_000_000
MAX_SWEEP_RUNS = 10_000


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class OptimizerSpec(_Spec):
    name: Literal["sgd", "adam", "adamw", "muon", "lion", "signsgd", "schedule_free_adamw", "shampoo", "soap"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum (PyTorch convention)")
    weight_decay: float = Field(0.0, ge=0, description="L2 for sgd/adam, decoupled for adamw")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    batch_size: int | None = Field(None, ge=1, description="None: full batch")
    schedule: Literal["constant", "cosine", "warmup", "warmup_cosine", "wsd"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    clip_norm: float | None = Field(None, gt=0, description="per-member global gradient-norm clipping (torch's clip_grad_norm_)")
    # the newer optimizers (lmech.train.optimizers); momentum is muon's, signsgd's and shampoo's too,
    # weight decay is decoupled for all of them; lion reads beta1/beta2 (its paper: 0.9, 0.99)
    ns_steps: int = Field(5, ge=1, lt=100, description="muon: quintic Newton-Schulz iterations")
    nesterov: bool = Field(True, description="muon: Nesterov momentum (the reference recipe; momentum 0.95 there)")
    muon_lr_scale: Literal["original", "match_rms_adamw"] = Field(
        "original", description="muon: update scale sqrt(max(1, fan_out/fan_in)) or 0.2 sqrt(max(fan_out, fan_in))")
    adamw_lr_ratio: float = Field(1.0, gt=0, description="muon: lr of its AdamW parameters (embeddings, gains, "
                                                         "biases, readout) = adamw_lr_ratio * lr")
    precondition_every: int | None = Field(None, ge=1, description="shampoo, soap: steps between preconditioner "
                                           "refreshes; None: 1 for shampoo, 10 for soap")
    precondition_beta: float | None = Field(None, gt=0, le=1, description="shampoo, soap: Kronecker statistics "
                                            "decay (1: sums); None: 1 for shampoo, 0.95 for soap")
    max_precondition_dim: int = Field(10_000, ge=1, description="shampoo, soap: longer axes get no factor")


class ObserveSpec(BaseModel):
    """When to measure an observable: 'log' (count log-spaced steps), or every N steps.
    Any other keys are the observable's own options (e.g. k for sharpness)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    every: Literal["log"] | Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS)] = "log"
    count: int = Field(30, ge=1, le=10_000, strict=True, description="number of log-spaced steps when every='log'")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _default_observe() -> dict[str, ObserveSpec]:
    return {"loss": ObserveSpec(), "accuracy": ObserveSpec()}


class RunSpec(_Spec):
    task: TaskSpec = Field(default_factory=DigitsSpec)
    model: RunModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    steps: int = Field(200, ge=0, le=MAX_STEPS)
    seed: int = Field(0, ge=-(2**63), lt=2**63, description="initialization and minibatch order")
    data_seed: int | None = Field(0, ge=-(2**63), lt=2**63, description="data draw; None: use the run seed")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="where the ensemble trains; auto: cuda if available")
    loss: Literal["half_sse", "mse", "cross_entropy"] | None = Field(None, description="None: the task's own loss; half_sse = 0.5 * sum over outputs, mse = torch mse_loss (mean over elements)")
    observe: dict[str, ObserveSpec] = Field(default_factory=_default_observe)
    order_seed: int | None = Field(None, ge=-(2**63), lt=2**63, description="minibatch-order seed from step "
                                   "order_switch_step on (a child spawned from the run seed's trajectory); None: "
                                   "the run seed throughout")
    order_switch_step: int = Field(0, ge=0, le=MAX_STEPS, description="first step whose minibatch comes from "
                                   "order_seed (a fresh epoch starts there); ignored when order_seed is None")

    @model_serializer(mode="wrap")
    def _omit_default_order(self, handler, info):
        """In the run id's JSON (context "run_id"), leave the order fields out while unset, so every run id
        from before they existed is unchanged; every other dump has them (--set, sweep axes)."""
        tree = handler(self)
        if (isinstance(tree, dict) and (info.context or {}).get("run_id") and self.order_seed is None
                and self.order_switch_step == 0):
            tree.pop("order_seed", None)
            tree.pop("order_switch_step", None)
        return tree

    @property
    def id(self) -> str:
        return run_id(self)


class SweepSpec(RunSpec):
    """A base run plus sweep axes, e.g. {"optimizer.lr": [0.1, 0.2], "seed": [0, 1, 2]}."""

    name: str = Field("sweep", min_length=1, max_length=200)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _axes_exist(self):
        size = 1
        for path, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep axis '{path[:80]}' has no values")
            size *= len(values)
        if size > MAX_SWEEP_RUNS:
            raise ValueError(f"the sweep expands to {size} runs, more than the limit of {MAX_SWEEP_RUNS}")
        base = self.model_dump(exclude={"name", "sweep"})
        for path in self.sweep:
            node = base
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ValueError(f"sweep axis '{path[:80]}' is not a field of the run spec")
                node = node[part]
        return self


def canonical_json(spec: RunSpec) -> str:
    return json.dumps(spec.model_dump(mode="json", context={"run_id": True}), sort_keys=True, separators=(",", ":"))


def run_id(spec: RunSpec) -> str:
    """Content address: the first 16 hex digits of sha256 of the canonical JSON."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def set_field(tree: dict, path: str, value: Any, *, create: bool = False) -> None:
    """Set the dotted field `path` (e.g. "optimizer.lr") of a spec tree in place.

    create=False: every part must already exist (ValueError naming the first that does not);
    create=True: missing sections are added (a partial YAML file), but a part that holds
    a value rather than a section is still an error.
    """
    parts = path.split(".")
    node = tree
    for index, part in enumerate(parts):
        if not isinstance(node, dict) or (part not in node and not create):
            raise ValueError(f"'{part}' is not a field of the run spec")
        if index == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {}) if create else node[part]
            if not isinstance(node, dict):
                raise ValueError(f"'{part}' is not a section")


def expand_sweep(sweep: SweepSpec) -> list[RunSpec]:
    """The Cartesian product of the sweep axes, in axis order, as validated RunSpecs."""
    base = sweep.model_dump(mode="json", exclude={"name", "sweep"})
    axes = list(sweep.sweep.items())
    runs = []
    for values in itertools.product(*(v for _, v in axes)):
        tree = json.loads(json.dumps(base))
        for (path, _), value in zip(axes, values):
            set_field(tree, path, value)
        runs.append(RunSpec.model_validate(tree))
    return runs


# Fields that may differ between members of one ensemble (trained in one vectorized step).
ENSEMBLE_SCALARS = (
    ("seed",), ("data_seed",), ("optimizer", "lr"), ("optimizer", "weight_decay"),
    ("optimizer", "momentum"), ("model", "init_scale"), ("model", "output_multiplier"),
    ("order_seed",), ("order_switch_step",),
)


def group_key(spec: RunSpec) -> str:
    """Runs with equal keys differ only in ensemble scalars and can be trained together."""
    tree = spec.model_dump(mode="json")
    for path in ENSEMBLE_SCALARS:
        node = tree
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)  # families without an init_scale field
    return json.dumps(tree, sort_keys=True)

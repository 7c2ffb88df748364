"""The contract every nn.Module model family keeps, and the one table from `kind` to family.

One job: dispatch `build_model` and `lr_multipliers` on `spec.kind`. It ignores how members are
stacked and trained (the trainer does that with torch.func.stack_module_state and
vmap(functional_call)).

The contract, for every family in `FAMILIES`:

- `build_model(spec, input_shape, output_dim, vocab_size, seed, init_scale=1.0) -> nn.Module`:
  input_shape is one example's shape (the batch axis N excluded), e.g. (D,) for features or
  (T,) for tokens; output_dim is C; vocab_size is V for token tasks, else None. Every weight is
  drawn from `lmech.seeding.generator(seed, "init/<parameter name>")` (a factory: torch's
  RNG forked and seeded from `child_seed(seed, "init/factory")`), so the same (spec, shapes,
  seed) gives the same module and the caller's global RNG is left as it was. init_scale
  multiplies every initial weight matrix (not gains or biases). Bad shapes raise InputError.
- The module's forward is a pure function of its parameters, buffers and input: no in-place
  updates, no Python-side state changes, only vmap-friendly ops (dropout > 0 in train mode
  needs vmap's randomness="different"). The spec's output multiplier is applied inside forward
  from a 0-dim non-persistent buffer `output_multiplier` (the MLP family: a float attribute;
  a factory: none), so stacked members may carry different ones.
- `lr_multipliers(spec, module, optimizer_family) -> {parameter name: float}`: one entry per
  `module.named_parameters()` name; the trainer multiplies the base learning rate of
  "sgd" or "adam" (Adam, AdamW) by it. The numbers follow the family's parameterization table
  (its module docstring; TP V Table 3 in the Table 8 multiplier form, as `parameterization.py`).

Families: mlp / deep_linear (`mlp.MemberModule`, one member of the stacked MLP), transformer,
cnn, resmlp, linear_recurrence, factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Literal, NamedTuple

import torch
from pydantic import BaseModel, Discriminator, Field, Tag

from lmech.errors import InputError
from lmech.models._layers import check_optimizer_family
from lmech.models.cnn import CNNSpec, build_cnn, cnn_lr_multipliers
from lmech.models.factory import FactorySpec, build_factory, factory_lr_multipliers
from lmech.models.linear_recurrence import (
    LinearRecurrenceSpec,
    build_linear_recurrence,
    linear_recurrence_lr_multipliers,
)
from lmech.models.mlp import MemberModule, ModelSpec, init_params, plan_model
from lmech.models.resmlp import ResMLPSpec, build_resmlp, resmlp_lr_multipliers
from lmech.models.transformer import TransformerSpec, build_transformer, transformer_lr_multipliers

__all__ = ["Family", "FAMILIES", "AnyModelSpec", "RunModelSpec", "build_model", "lr_multipliers"]

AnyModelSpec = Annotated[
    ModelSpec | TransformerSpec | CNNSpec | ResMLPSpec | LinearRecurrenceSpec | FactorySpec,
    Field(discriminator="kind"),
]


def _kind_tag(value) -> str:
    kind = value.get("kind", "mlp") if isinstance(value, dict) else getattr(value, "kind", "mlp")
    if not isinstance(kind, str):
        return f"{kind!r:.40}"  # a tag no family has: pydantic names it in a one-line error
    return "mlp" if kind in ("mlp", "deep_linear") else kind


# A run spec's model: like AnyModelSpec, but a section without `kind` is the MLP (the default).
RunModelSpec = Annotated[
    Annotated[ModelSpec, Tag("mlp")] | Annotated[TransformerSpec, Tag("transformer")]
    | Annotated[CNNSpec, Tag("cnn")] | Annotated[ResMLPSpec, Tag("resmlp")]
    | Annotated[LinearRecurrenceSpec, Tag("linear_recurrence")] | Annotated[FactorySpec, Tag("factory")],
    Discriminator(_kind_tag),
]


class Family(NamedTuple):
    """One model family: its spec class, builder and learning-rate multipliers."""

    spec: type[BaseModel]
    build: Callable[..., torch.nn.Module]
    lr_multipliers: Callable[..., dict[str, float]]


def _build_mlp(spec: ModelSpec, input_shape: tuple[int, ...], output_dim: int, vocab_size: int | None,
               seed: int, init_scale: float = 1.0) -> MemberModule:
    """One MLP member as an nn.Module (input (N, D)); init_scale multiplies spec.init_scale."""
    if len(input_shape) != 1 or vocab_size is not None:
        raise InputError(f"an mlp takes real features (N, D), not inputs of shape {tuple(input_shape)}"
                         + (" with a vocabulary" if vocab_size is not None else ""))
    plan = plan_model(spec, int(input_shape[0]), output_dim, "sgd")  # init does not depend on the optimizer
    params = init_params(plan, [seed], [spec.init_scale * init_scale], spec.zero_init_readout)
    return MemberModule(plan, params, 0, spec.output_multiplier)


def _mlp_lr_multipliers(spec: ModelSpec, module: torch.nn.Module,
                        optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    if not isinstance(module, MemberModule):
        raise InputError(f"an mlp spec needs an lmech MemberModule, got {type(module).__name__}")
    layers = module.plan.layers
    plan = plan_model(spec, layers[0].fan_in, layers[-1].fan_out, optimizer_family)
    return {f"weights.{name}": value for name, value in plan.lr_multipliers().items()}


_MLP = Family(ModelSpec, _build_mlp, _mlp_lr_multipliers)

FAMILIES: Mapping[str, Family] = MappingProxyType({
    "mlp": _MLP,
    "deep_linear": _MLP,
    "transformer": Family(TransformerSpec, build_transformer, transformer_lr_multipliers),
    "cnn": Family(CNNSpec, build_cnn, cnn_lr_multipliers),
    "resmlp": Family(ResMLPSpec, build_resmlp, resmlp_lr_multipliers),
    "linear_recurrence": Family(LinearRecurrenceSpec, build_linear_recurrence, linear_recurrence_lr_multipliers),
    "factory": Family(FactorySpec, build_factory, factory_lr_multipliers),
})


def _family(spec: BaseModel) -> Family:
    kind = getattr(spec, "kind", None)
    family = FAMILIES.get(kind) if isinstance(kind, str) else None
    if family is None or not isinstance(spec, family.spec):
        raise InputError(f"unknown model kind '{kind}'; known: {', '.join(FAMILIES)}")
    return family


def build_model(spec: BaseModel, input_shape: tuple[int, ...], output_dim: int, vocab_size: int | None,
                seed: int, init_scale: float = 1.0) -> torch.nn.Module:
    """The nn.Module of `spec`, deterministically initialised from `seed` (see the contract above)."""
    return _family(spec).build(spec, tuple(int(s) for s in input_shape), output_dim, vocab_size, seed, init_scale)


def lr_multipliers(spec: BaseModel, module: torch.nn.Module,
                   optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """{parameter name: learning-rate multiplier} for every parameter of `module` built from `spec`."""
    return _family(spec).lr_multipliers(spec, module, check_optimizer_family(optimizer_family))

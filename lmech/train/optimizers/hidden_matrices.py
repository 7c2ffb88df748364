"""Which parameters are hidden weight matrices (Muon orthogonalises those), read from the family.

One job: {parameter name: layout} for the weights whose role is "hidden" (both dimensions grow
with width) and that are matrices (or conv kernels), from the model family's own role table:
the MLP's plan (layer 0 is the input layer, the last the readout), and for the nn.Module
families the same (role, is_vector) table their learning-rate multipliers are computed from
(`lmech.models._layers` roles). Names are never guessed: a family without a role table
(factory) is refused. It ignores the optimizer that uses the answer.
"""

from collections.abc import Callable

import torch
from pydantic import BaseModel

from lmech.errors import InputError
from lmech.models import linear_recurrence as _linear_recurrence
from lmech.models import transformer as _transformer
from lmech.models.mlp import MemberModule, ModelPlan
from lmech.train.optimizers.muon import Layout

__all__ = ["hidden_matrices"]


def _cnn_role(name: str) -> tuple[str, bool]:
    """(role, is_vector), as `lmech.models.cnn.cnn_lr_multipliers` assigns them."""
    parts = name.split(".")
    if parts[0] == "convs" and len(parts) == 3:
        return ("input" if parts[1] == "0" else "hidden"), parts[-1] == "bias"
    if parts[0] == "readout" and len(parts) == 2:
        return "output", parts[-1] == "bias"
    raise InputError(f"'{name}' is not a parameter of an lmech CNN")


def _resmlp_role(name: str) -> tuple[str, bool]:
    """(role, is_vector), as `lmech.models.resmlp.resmlp_lr_multipliers` assigns them."""
    parts = name.split(".")
    if parts[0] in ("input", "readout") and len(parts) == 2:
        return ("input" if parts[0] == "input" else "output"), parts[-1] == "bias"
    if parts[0] == "blocks" and len(parts) == 5 and parts[2] == "layers":
        return "hidden", parts[-1] == "bias"
    raise InputError(f"'{name}' is not a parameter of an lmech ResMLP")


# kind -> the family's (role, is_vector) of a parameter name. transformer and linear_recurrence
# compute their lr multipliers from exactly these functions (role_lr_multipliers); cnn and resmlp
# assign roles inline, mirrored above (tests check all four against their muP multipliers).
_ROLE_TABLES: dict[str, Callable[[str], tuple[str, bool]]] = {
    "transformer": _transformer._role,
    "linear_recurrence": _linear_recurrence._role,
    "cnn": _cnn_role,
    "resmlp": _resmlp_role,
}


def hidden_matrices(model: BaseModel, network: ModelPlan | torch.nn.Module) -> dict[str, Layout]:
    """{name: layout} of the hidden weight matrices of one member built from `model`.

    Args:
        model: the run's model spec (its `kind` selects the role table).
        network: the MLP's `ModelPlan` (names W{l}, as the trainer stacks them), an MLP
            `MemberModule` (names weights.W{l}), or one member of another family.

    Returns "in_out" for the MLP's W (fan_in, fan_out), "out_in" for torch.nn.Linear-shaped
    weights and conv kernels (fan_out, fan_in, *kernel). Embeddings, position tables, gains,
    biases and the readout are absent. A 1-hidden-layer MLP has none.

    Raises InputError for a factory model (its module carries no role table) or a name the
    family's table does not know.
    """
    kind = getattr(model, "kind", None)
    if kind in ("mlp", "deep_linear"):
        plan = network.plan if isinstance(network, MemberModule) else network
        if not isinstance(plan, ModelPlan):
            raise InputError(f"an mlp needs its ModelPlan or MemberModule, got {type(network).__name__}")
        prefix = "weights." if isinstance(network, MemberModule) else ""
        return {f"{prefix}W{index}": "in_out" for index in range(1, len(plan.layers) - 1)}
    role_of = _ROLE_TABLES.get(kind)
    if role_of is None:
        raise InputError(f"muon needs to know which parameters are hidden matrices; model kind '{kind}' "
                         f"has no role table (known: mlp, deep_linear, {', '.join(_ROLE_TABLES)})")
    out: dict[str, Layout] = {}
    for name, value in network.named_parameters():
        role, vector = role_of(name)
        if role == "hidden" and not vector and value.dim() >= 2:
            out[name] = "out_in"
    return out

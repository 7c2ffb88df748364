"""Per-layer activation scale: the RMS of every layer's outputs (the muP "coordinate check").

One job: how large each layer's coordinates are, per ensemble member. It ignores
which direction they point and whether they are useful.

Two paths:
- the stacked MLP (`state.plan`; mlp, deep_linear): each layer's pre-activation, fields "0".."L-1";
- any other nn.Module family (transformer, cnn, resmlp, linear_recurrence, factory): the output
  of every module called in the forward pass, caught by forward hooks on a member's own copy
  (`member_module`), fields named by the module's qualified name ("blocks.0",
  "blocks.0.attention.query", "ln_final", "readout", ...) and "output" for the model's own
  output (the logits), as the `mup` package's coordinate check hooks every module.
"""

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.models.parameterization import activate
from lmech.train.loop import TrainState, member_module

__all__ = ["activation_scale", "preactivation_rms", "module_output_rms"]

OUTPUT = "output"  # the field of the model's own output


def preactivation_rms(state: TrainState, x: Float[Tensor, "N D"] | Float[Tensor, "K N D"]) -> Float[Tensor, "L K"]:
    """RMS over examples and units of each layer's pre-activation z_l = multiplier_l * h_{l-1} W_l + b_l.

    The last layer's value is the network output (times the member's output multiplier).
    Returns (L, K) float32, in the units of the layer's outputs.
    Algorithm: one forward pass that keeps every layer's z; cost 2*K*N*P FLOPs.
    """
    plan, params = state.plan, state.params
    last = len(plan.layers) - 1
    rms = []
    h = x
    with torch.no_grad():
        for index, layer in enumerate(plan.layers):
            weight = params[f"W{index}"]
            z = torch.matmul(h, weight) if h.dim() == 2 else torch.bmm(h, weight)  # (K, N, fan_out)
            z = z * layer.multiplier
            if plan.bias:
                z = z + params[f"b{index}"]
            if index == last:
                z = z * state.output_multiplier.view(-1, 1, 1)
            rms.append(z.pow(2).mean(dim=(1, 2)).sqrt())
            h = activate(z, plan.activation)
    return torch.stack(rms)


def _first_tensor(output) -> Tensor | None:
    """The tensor a module returned, or the first item of a returned tuple/list (nn.GRU's outputs);
    None when that is not a floating-point tensor."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, Tensor) and output.is_floating_point():
        return output
    return None


def _field_names(module: torch.nn.Module) -> dict[torch.nn.Module, str]:
    """{submodule: field}: its qualified name, the root "output"; a submodule whose name clashes
    with a field already taken (one called "output") gets "_" appended until it is unique."""
    names: dict[torch.nn.Module, str] = {module: OUTPUT}
    taken = {OUTPUT}
    for name, sub in module.named_modules():  # each module once, under its first name
        if sub in names:
            continue
        while name in taken:
            name += "_"
        names[sub] = name
        taken.add(name)
    return names


def module_output_rms(module: torch.nn.Module, x: Tensor) -> dict[str, Float[Tensor, ""]]:
    """{field: RMS over examples and units} of the output of every module called in module(x).

    x: one member's inputs (N, ...), any dtype the module takes. Fields as in the module
    docstring; the RMS is over every element of the output (examples, positions, units), the
    sum of squares taken in float64 and the result float32 (0-dim). A module called several
    times in one forward pass (a shared layer, a cell applied per step) is pooled over its calls;
    one that returns no floating-point tensor, or is never called (a ModuleList), has no field.
    Algorithm: one forward pass under torch.no_grad with a forward hook on every submodule,
    removed afterwards; memory O(1) extra (only sums are kept).
    The caller's module is used as it is (train/eval flags included): pass a copy in eval mode.
    """
    names = _field_names(module)
    sums: dict[str, list[float]] = {}

    def hook_for(field: str) -> Callable:
        def hook(_module, _inputs, output) -> None:
            z = _first_tensor(output)
            if z is not None:
                total = sums.setdefault(field, [0.0, 0])
                total[0] += float(z.detach().double().pow(2).sum())
                total[1] += z.numel()
        return hook

    handles = [sub.register_forward_hook(hook_for(field)) for sub, field in names.items()]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    # qualified-name order (as named_modules lists them), the model's own output last
    ordered = [f for f in [*list(names.values())[1:], OUTPUT] if f in sums and sums[f][1] > 0]
    return {f: torch.tensor((sums[f][0] / sums[f][1]) ** 0.5, dtype=torch.float32) for f in ordered}


def _member_inputs(state: TrainState, k: int, max_examples: int | None) -> Tensor:
    x = state.x_train[k] if state.per_member_data else state.x_train
    return x if max_examples is None else x[:max_examples]


def activation_scale(state: TrainState, max_examples: int | None = None) -> dict[str, Float[Tensor, " K"]]:
    """Per-layer output RMS of each member, {field: (K,) float32}, on its training inputs.

    MLP family (`state.plan`): fields "0".."L-1", layer l's pre-activation RMS (l = L-1 is the
    output), from one stacked forward pass (`preactivation_rms`).
    Other families: `module_output_rms` of each member's own module (`member_module(state, k)`,
    in eval mode, on its own training inputs), fields named by qualified module name plus
    "output" (the model output); for lmech's Transformer e.g. "blocks.<i>" (the residual
    stream after block i), "blocks.<i>.attention.query", "blocks.<i>.mlp.up", "ln_final",
    "readout" and "output" (the logits times the output multiplier). Cost K forward passes.
    max_examples: only the first max_examples training inputs (of each member).
    Under muP these stay Theta(1) in width after a few steps of training; under SP the hidden and
    output ones grow with width (Yang et al. 2022, Sec. 3 and Fig. 5; the `mup` package's
    get_coord_data hooks every module the same way).
    Failure modes: at step 0 both parameterizations look flat (hidden layers) -- the
    check needs a few training steps at a fixed learning rate. Token inputs: the RMS also pools
    positions, including those whose targets are masked.
    """
    if state.plan is not None:
        x = state.x_train
        if max_examples is not None:
            x = x[..., :max_examples, :]
        values = preactivation_rms(state, x)
        return {str(index): values[index] for index in range(values.shape[0])}
    per_member = []
    for k in range(len(state.specs)):
        module = member_module(state, k).eval()  # a copy: its flags and hooks are ours to set
        per_member.append(module_output_rms(module, _member_inputs(state, k, max_examples)))
    return {field: torch.stack([values[field] for values in per_member]) for field in per_member[0]}

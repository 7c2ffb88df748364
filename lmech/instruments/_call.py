"""Calling a real model: inputs that are a tensor, a tuple or a dict; outputs that are a tensor,
a tuple or an object with `.logits`.

One job: the one place where instruments call a user's module, so every
instrument takes the batches real models take. It ignores losses and state
(train/eval, RNG: see `_state.py`).

Conventions: a batch is (inputs, targets). inputs is a tensor (model(x)), a
tuple or list of tensors (model(*inputs)) or a dict of tensors
(model(**inputs)); every tensor's leading axis is the example axis N. The
output used is the tensor itself, the first element of a tuple/list, the
`logits` attribute (e.g. a `transformers` ModelOutput) or a dict's "logits".
"""

from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from lmech.errors import InputError

__all__ = ["Inputs", "Batch", "call_model", "functional_outputs", "num_examples", "take", "select_output", "map_inputs"]

Inputs = Tensor | tuple | list | dict
Batch = tuple  # (inputs, targets): inputs as above, targets a tensor (or what a custom loss takes)


def map_inputs(inputs: Inputs, fn) -> Inputs:
    """Apply fn to every tensor of inputs (same structure; non-tensors left as they are)."""
    if isinstance(inputs, Tensor):
        return fn(inputs)
    if isinstance(inputs, dict):
        return {k: map_inputs(v, fn) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(map_inputs(v, fn) for v in inputs)
    return inputs


def _tensors(inputs: Inputs) -> list[Tensor]:
    if isinstance(inputs, Tensor):
        return [inputs]
    if isinstance(inputs, dict):
        return [t for v in inputs.values() for t in _tensors(v)]
    if isinstance(inputs, (tuple, list)):
        return [t for v in inputs for t in _tensors(v)]
    return []


def num_examples(inputs: Inputs) -> int:
    """N, the shared leading size of every input tensor.

    Raises:
        InputError: no tensor, a 0-d tensor, or tensors of different leading sizes.
    """
    tensors = _tensors(inputs)
    if not tensors or any(t.ndim == 0 for t in tensors):
        raise InputError("inputs must be a tensor, a tuple or a dict of tensors with an example axis first")
    sizes = {int(t.shape[0]) for t in tensors}
    if len(sizes) != 1:
        raise InputError(f"input tensors disagree on the number of examples: {sorted(sizes)}")
    return sizes.pop()


def take(inputs: Inputs, index: Tensor | slice) -> Inputs:
    """The examples `index` (a (B,) int64 tensor or a slice) of every input tensor."""
    return map_inputs(inputs, lambda t: t[index])


def select_output(output: Any) -> Tensor:
    """The tensor an instrument differentiates, from whatever the model returned."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict) and "logits" in output:
        return output["logits"]
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise InputError(f"the model returned {type(output).__name__}; instruments need a tensor, a tuple "
                     "whose first element is one, or an object with .logits")


def _arguments(inputs: Inputs) -> tuple[tuple, dict]:
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def call_model(model: torch.nn.Module, inputs: Inputs) -> Tensor:
    """model(inputs) under the conventions above (the model's own parameters)."""
    args, kwargs = _arguments(inputs)
    return select_output(model(*args, **kwargs))


def functional_outputs(model: torch.nn.Module, tensors: dict[str, Tensor], inputs: Inputs) -> Tensor:
    """model(inputs) with parameters and buffers replaced by `tensors` (torch.func.functional_call)."""
    args, kwargs = _arguments(inputs)
    return select_output(functional_call(model, tensors, args, kwargs))

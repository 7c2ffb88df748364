"""The user's model, measured and left exactly as it was.

One job: the `measures_model` decorator every public instrument that takes a
model wears. Around the instrument's body it

- evaluates the model in eval mode by default (`mode="eval"`; `mode="train"`
  keeps dropout and BatchNorm's batch statistics, with the global RNG seeded
  from the instrument's `seed` so a train-mode measurement is reproducible);
- restores every module's train/eval flag and the global RNG state (CPU and
  every initialised CUDA device) afterwards, whatever happens;
- runs `scaled_dot_product_attention` on its math backend, the one with a
  double backward on every device (the fused CPU/flash kernels have none);
- measures float16/bfloat16 models on a float32 copy (inputs cast likewise),
  so results and error bounds carry float32 arithmetic;
- refuses models on the meta device (no values to measure);
- with `device=` ("cpu", "cuda", "cuda:N" or "auto"), measures a copy of the model
  and its batch on that device (default None: where the model already is);
- turns "derivative ... not implemented" (an op without a double backward) and
  vmap's BatchNorm error into one-line InputErrors that say what to do.

Parameters, buffers and `.grad` are the instruments' own business: they work on
copies via torch.func.functional_call and never call `.backward()`; the
contract suite checks all five kinds of state on a model with BatchNorm and
Dropout. It ignores what is measured.
"""

import contextlib
import contextvars
import copy
import functools
import inspect
from collections.abc import Callable
from typing import Literal

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from lmech.errors import InputError
from lmech.instruments._call import map_inputs

__all__ = ["Mode", "measures_model", "LOW_PRECISION", "training_flags", "resolve_device"]

Mode = Literal["eval", "train"]
LOW_PRECISION = (torch.float16, torch.bfloat16)
_INSIDE = contextvars.ContextVar("lmech_instrument_active", default=False)  # nested instruments inherit the state


def _low_precision(model: torch.nn.Module) -> bool:
    return any(t.dtype in LOW_PRECISION for t in [*model.parameters(), *model.buffers()])


def _to_float32(value):
    if not isinstance(value, (torch.Tensor, tuple, list, dict)):
        return value  # the model, a loss function, numbers
    return map_inputs(value, lambda t: t.float() if t.dtype in LOW_PRECISION else t)


def _check_device(model: torch.nn.Module) -> None:
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise InputError(f"the model is on the meta device ({meta[0]} has no values): "
                         "materialize it (e.g. model.to_empty(device='cpu') and load weights) first")


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without CUDA is one line.

    Raises:
        InputError: an unknown device, or CUDA asked for where torch has none.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device '{device}'; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{device}' asked for, but torch sees no CUDA device here; use cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"device '{device}' is not supported; use cpu, cuda, cuda:N or auto")
    return resolved


def _to_device(value, device: torch.device):
    if not isinstance(value, (torch.Tensor, tuple, list, dict)):
        return value
    return map_inputs(value, lambda t: t.to(device))


def _translate(error: RuntimeError) -> InputError | None:
    text = str(error)
    first = text.splitlines()[0] if text else type(error).__name__
    if "derivative for" in text and "not implemented" in text:
        op = first.split("derivative for", 1)[1].split("is not implemented")[0].strip()
        return InputError(f"{op} has no double backward, which Hessian instruments need: pick another "
                          "implementation of that module (for attention: attn_implementation='eager' in "
                          "transformers, or scaled_dot_product_attention, which lmech runs on its math backend)")
    if "batch_norm" in text and ("vmap" in text or "functorch" in text):
        return InputError("BatchNorm in train mode mixes the examples of a batch, which per-example "
                          "instruments cannot differentiate: measure with mode='eval'")
    return None


@contextlib.contextmanager
def training_flags(model: torch.nn.Module, training: bool):
    """`model.train(training)` for the duration of the block; every module's own flag restored after."""
    flags = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def measures_model(function: Callable) -> Callable:
    """Decorate an instrument `function(model, ...)`: adds the keyword `mode` and the guarantees above."""
    signature = inspect.signature(function)
    seed_default = signature.parameters["seed"].default if "seed" in signature.parameters else 0

    @functools.wraps(function)
    def instrument(*args, mode: Mode = "eval", device: str | None = None, **kwargs):
        if _INSIDE.get():  # called by another instrument, which already set the state up
            return function(*args, **kwargs)
        if mode not in ("eval", "train"):
            raise InputError(f"mode must be 'eval' or 'train', got {mode!r}")
        bound = signature.bind(*args, **kwargs)
        model = bound.arguments[next(iter(signature.parameters))]
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{function.__name__} needs a torch.nn.Module, got {type(model).__name__}")
        _check_device(model)
        if device is not None:
            target = resolve_device(device)
            here = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
            if here != target:
                model = copy.deepcopy(model).to(target)
                bound.arguments = {name: _to_device(v, target) for name, v in bound.arguments.items()}
                bound.arguments[next(iter(signature.parameters))] = model
        if _low_precision(model):
            model = copy.deepcopy(model).float()
            bound.arguments = {name: _to_float32(v) for name, v in bound.arguments.items()}
            bound.arguments[next(iter(signature.parameters))] = model
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        token = _INSIDE.set(True)
        try:
            with (torch.random.fork_rng(devices=cuda), sdpa_kernel([SDPBackend.MATH]),
                  training_flags(model, mode == "train")):
                if mode == "train":
                    torch.manual_seed(int(bound.arguments.get("seed", seed_default)))
                return function(*bound.args, **bound.kwargs)
        except RuntimeError as error:
            translated = _translate(error)
            if translated is None:
                raise
            raise translated from None
        finally:
            _INSIDE.reset(token)

    parameters = list(signature.parameters.values())
    added = [inspect.Parameter("mode", inspect.Parameter.KEYWORD_ONLY, default="eval", annotation=Mode),
             inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)]
    instrument.__signature__ = signature.replace(parameters=[*parameters, *added])
    return instrument

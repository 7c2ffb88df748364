"""Load a user's model and data for the CLI: `pkg.module:factory` strings in, modules and tensors out.

One job: import the named callables, call them, check what they return and turn
every failure into a one-line `InputError`. It ignores what is measured on the
model (the commands do that) and never executes anything read from a file
other than the user's own named module (weights load with weights_only=True).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from lmech.errors import InputError

__all__ = ["load_factory", "load_model", "load_data", "task_data", "choose_loss", "check_runs"]


def load_factory(spec: str, role: str = "model factory") -> Callable:
    """The callable named by ``"pkg.module:name"`` (importable from sys.path or the current directory);
    the one loader, `lmech.models.factory.load_factory`."""
    from lmech.models.factory import load_factory as load

    return load(spec, role)


def load_model(factory_spec: str, weights: str | Path | None = None) -> torch.nn.Module:
    """Call the factory (no arguments) and optionally load a state dict saved with torch.save.

    Raises InputError when the factory does not return an nn.Module, the weights
    file is missing or not a plain tensor state dict (weights_only=True), or its
    keys/shapes do not fit the model.
    """
    factory = load_factory(factory_spec)
    try:
        model = factory()
    except Exception as error:  # the user's code: any failure is reported in one line
        raise InputError(f"model factory '{factory_spec}' raised {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"'{factory_spec}' returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise InputError(f"weights file not found: {path}")
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as error:  # pickle errors, unsafe globals, truncated files
            raise InputError(f"cannot load weights {path} with weights_only=True ({type(error).__name__})") from None
        if not isinstance(state, dict):
            raise InputError(f"weights {path} hold a {type(state).__name__}, not a state dict")
        _check_fits(model, state, path)
        model.load_state_dict(state)
    return model


def _check_fits(model: torch.nn.Module, state: dict, path: Path) -> None:
    """One-line InputError naming the first missing, unexpected or mis-shaped entry."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise InputError(f"weights {path} do not fit the model: {what} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    for key, value in state.items():
        if not isinstance(value, Tensor) or value.shape != own[key].shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(f"weights {path} do not fit the model: '{key}' has shape {got}, "
                             f"the model expects {tuple(own[key].shape)}")


def _check_pair(pair, name: str) -> tuple:
    from lmech.instruments._call import num_examples

    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[1], Tensor)):
        raise InputError(f"'{name}' must return (inputs, targets): inputs a tensor, tuple or dict of tensors, "
                         "targets a tensor")
    x, y = pair
    n = num_examples(x)
    if n != y.shape[0] or n < 2:
        raise InputError(f"'{name}' returned {n} inputs and {y.shape[0]} targets; need equal counts >= 2")
    return x, y


def load_data(spec: str) -> tuple:
    """Call the function named by ``"pkg.module:function"``; it must return (inputs (N, ...), targets (N, ...))."""
    function = load_factory(spec, "data function")
    try:
        pair = function()
    except Exception as error:  # the user's code: any failure is reported in one line
        raise InputError(f"data function '{spec}' raised {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}") from None
    return _check_pair(pair, spec)


def task_data(name: str) -> tuple[Tensor, Tensor]:
    """Training inputs and targets of a built-in lmech task with its default spec (data seed 0)."""
    from lmech.tasks import TASK_NAMES, default_task_spec, make_task

    if name not in TASK_NAMES:
        raise InputError(f"unknown task '{name}'; known: {', '.join(TASK_NAMES)}")
    task = make_task(default_task_spec(name), 0)
    return task.x_train, task.y_train


def choose_loss(name: str | None, targets) -> str:
    """The named loss for `--loss` (default: cross_entropy for integer targets, mse for real ones).

    Raises:
        InputError: an unknown name, or cross_entropy on real-valued targets.
    """
    from lmech.instruments.losses import LOSS_NAMES

    chosen = name or ("mse" if isinstance(targets, Tensor) and targets.is_floating_point() else "cross_entropy")
    if chosen not in LOSS_NAMES:
        raise InputError(f"--loss must be one of {', '.join(LOSS_NAMES)}, got '{chosen}'")
    if chosen == "cross_entropy" and isinstance(targets, Tensor) and targets.is_floating_point():
        raise InputError("--loss cross_entropy needs integer class targets; these are floats")
    return chosen


def check_runs(model: torch.nn.Module, inputs, targets, loss_name: str) -> None:
    """One forward pass on two examples and the named loss on them: every mismatch between
    the model, the data and the loss becomes one line (shapes, dtypes, token ids past the vocabulary)."""
    from lmech.instruments._call import call_model, take
    from lmech.instruments._state import training_flags
    from lmech.instruments.losses import named_loss

    index = torch.arange(2)
    try:
        with torch.no_grad():
            with training_flags(model, False):
                outputs = call_model(model, take(inputs, index))
            named_loss(loss_name)(outputs, take(targets, index))
    except InputError:
        raise
    except (RuntimeError, IndexError, TypeError, ValueError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "index out of range" in text:
            text += " (a token id at or past the model's vocabulary size?)"
        raise InputError(f"the model cannot run on this data: {text}") from None

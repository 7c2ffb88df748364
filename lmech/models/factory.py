"""The user's own nn.Module, built by a named `package.module:function` factory: the one loader.

One job: check the factory string, import the module, call the function with the spec's
keyword arguments under a seeded, forked torch RNG, and check that an nn.Module came back;
every failure becomes one `InputError` line naming the factory and the problem. It ignores
what the module computes (nothing is probed) and evaluates nothing but the named import and
call: the string must match `module.path:attribute(.attribute)*` of Python identifiers.

Seeding: the factory runs inside `torch.random.fork_rng` with the CPU generator seeded from
`lmech.seeding.child_seed(seed, "init/factory")`, so a factory that initialises with torch's
global RNG (as nn.Linear does) gives the same weights for the same seed, and the caller's
global RNG is left as it was. CUDA generators are forked and seeded only when CUDA is already
initialised (forking them would otherwise initialise CUDA).

Failure modes: a factory that draws from its own generators, numpy or Python's `random` is not
seeded by this; a factory that initialises CUDA itself and draws there leaves the CUDA RNG
advanced; the module stays in `sys.modules` after the import.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from lmech.errors import InputError
from lmech.seeding import child_seed

__all__ = ["FactorySpec", "check_factory_path", "load_factory", "call_factory", "build_factory",
           "factory_lr_multipliers"]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTORY_PATH = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*")


def _one_line(text: object, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def check_factory_path(factory: str) -> str:
    """`factory` unchanged if it reads `package.module:function` (identifiers only), else InputError."""
    if not _FACTORY_PATH.fullmatch(factory):
        raise InputError(f"expected 'package.module:function', got '{_one_line(factory, 120)}'")
    return factory


class FactorySpec(BaseModel):
    """A user-defined nn.Module: `factory(**kwargs)` must return it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["factory"] = "factory"
    factory: str = Field(description="'package.module:function', importable from sys.path or the current directory")
    kwargs: dict[str, JsonValue] = Field(default_factory=dict, description="keyword arguments of the factory")

    @field_validator("factory")
    @classmethod
    def _looks_like_a_factory(cls, value: str) -> str:
        try:
            return check_factory_path(value)
        except InputError as error:
            raise ValueError(str(error)) from None


def _import(module_name: str):
    """Import a module, also searching the current directory (the `lmech` script's sys.path lacks it)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError:
        cwd = os.getcwd()
        if cwd in sys.path:
            raise
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(module_name)
        finally:
            sys.path.remove(cwd)


def load_factory(factory: str, role: str = "model factory") -> Callable:
    """The callable named by `factory` ('package.module:function'; dotted attributes allowed).

    Raises InputError (one line, opening with `role`, e.g. "data function") when the string is
    malformed, the import fails (missing module, or the module raises while it is imported),
    an attribute is missing, or the target is not callable.
    """
    try:
        check_factory_path(factory)
    except InputError as error:
        raise InputError(f"{role}: {error}") from None
    module_name, _, attr = factory.partition(":")
    try:
        target = _import(module_name)
    except ImportError as error:
        raise InputError(f"{role} '{factory}': cannot import module '{module_name}' "
                         f"({type(error).__name__}: {_one_line(error)})") from None
    except Exception as error:  # whatever the module raises while it is imported
        raise InputError(f"{role} '{factory}': importing '{module_name}' raised "
                         f"{type(error).__name__}: {_one_line(error)}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InputError(f"{role} '{factory}': module '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    if not callable(target):
        raise InputError(f"{role} '{factory}' is not callable")
    return target


def call_factory(factory: str, kwargs: Mapping[str, Any] | None = None, seed: int | None = None) -> torch.nn.Module:
    """`factory(**kwargs)` as a torch.nn.Module, under a forked torch RNG seeded from `seed`
    (None: forked but not seeded, so the draws continue the caller's stream without advancing it).

    Raises InputError (one line) for every failure of `load_factory`, when the factory raises,
    and when it returns something that is not an nn.Module.
    """
    function = load_factory(factory)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            value = child_seed(seed, "init/factory")
            torch.default_generator.manual_seed(value)
            if devices:
                torch.cuda.manual_seed_all(value)
        try:
            module = function(**dict(kwargs or {}))
        except Exception as error:
            raise InputError(f"model factory '{factory}' raised {type(error).__name__}: {_one_line(error)}") from None
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"model factory '{factory}' returned {type(module).__name__}, not a torch.nn.Module")
    return module


def build_factory(spec: FactorySpec, input_shape: tuple[int, ...], output_dim: int, vocab_size: int | None,
                  seed: int, init_scale: float = 1.0) -> torch.nn.Module:
    """The user's module from `spec`; input_shape, output_dim and vocab_size are not checked
    (nothing is run through the module). init_scale != 1 multiplies every floating-point
    parameter with two or more axes (weight matrices, conv kernels, embeddings) in place, right
    after construction; vectors (biases, norm gains) are left as built.
    """
    module = call_factory(spec.factory, spec.kwargs, seed)
    if init_scale != 1.0:
        with torch.no_grad():
            for parameter in module.parameters():
                if parameter.is_floating_point() and parameter.dim() >= 2:
                    parameter.mul_(init_scale)
    return module


def factory_lr_multipliers(spec: FactorySpec, module: torch.nn.Module,
                           optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """1.0 for every parameter: a user's module carries no parameterization table."""
    return {name: 1.0 for name, _ in module.named_parameters()}

"""JSON conversion for instrument results: scalars as numbers, arrays as nested lists.

One job: a `to_json` shared by every result dataclass. It ignores printing and files.
"""

import dataclasses
import math
from typing import Any

import numpy as np
import torch

__all__ = ["JsonResult", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Tensors/arrays -> nested lists, numpy/torch scalars -> Python numbers, recursing into containers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json.dumps writes NaN/Infinity; callers decide
    return value


class JsonResult:
    """Mixin for frozen result dataclasses: `to_json()` maps every field through `to_jsonable`."""

    def to_json(self) -> dict[str, Any]:
        """{field name: number | list | str | bool | dict} for every dataclass field."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

"""scikit-learn's 8x8 digits (1,797 images, 10 classes), shipped inside the package: no download."""

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import child_seed
from lmech.tasks.task import Task

__all__ = ["DigitsSpec", "make_digits"]


class DigitsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["digits"] = "digits"
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0,
                                 description="held-out share; 0 trains on all 1,797 images")
    targets: Literal["labels", "one_hot"] = Field(
        "labels", description="labels: cross-entropy; one_hot: MSE on one-hot vectors")


def make_digits(spec: DigitsSpec, seed: int) -> Task:
    """Standardized digits with a fixed split.

    The split depends only on `test_fraction` (a fixed permutation, seed 0), not on the
    run seed, so every run sees the same examples. Features are standardized with the
    training mean and standard deviation (constant pixels map to 0).
    Shapes: x (N, 64) float32; y (N,) int64 ("labels") or (N, 10) float32 ("one_hot").
    """
    del seed  # the split is fixed by design
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    order = np.random.default_rng(child_seed(0, "digits-split")).permutation(len(y))
    n_test = int(round(spec.test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    x = (x - mean) / std
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y)
    if spec.targets == "one_hot":
        y_out = torch.nn.functional.one_hot(yt, 10).float()
        loss = "half_sse"
    else:
        y_out, loss = yt, "cross_entropy"
    if n_test == 0:
        return Task(xt[train], y_out[train], xt[train], y_out[train], loss, 10)
    return Task(xt[train], y_out[train], xt[test], y_out[test], loss, 10)

"""Modular addition (the grokking microcosm): pairs (a, b) mod p, label (a + b) mod p.

One job: the full table of p^2 pairs as concatenated one-hot inputs, split at
random into train and test. It ignores other operations (subtraction, division)
and token embeddings (a model that wants them learns them in its first layer).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["ModularAdditionSpec", "make_modular_addition"]


class ModularAdditionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["modular_addition"] = "modular_addition"
    modulus: int = Field(23, ge=2, le=1024, description="p: residues 0..p-1")
    train_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="share of the p^2 pairs used for training")
    targets: Literal["labels", "one_hot"] = Field(
        "labels", description="labels: cross-entropy; one_hot: MSE on one-hot vectors")


def make_modular_addition(spec: ModularAdditionSpec, seed: int) -> Task:
    """All pairs (a, b), a random split drawn from `seed`.

    Shapes: x (N, 2p) float32, one-hot of a in the first p columns and of b in the last p;
    y (N,) int64 = (a + b) mod p with loss "cross_entropy" ("labels"), or its one-hot (N, p)
    float32 with loss "half_sse" ("one_hot"); C = p. The training set has
    round(train_fraction * p^2) pairs (at least 1, at most p^2 - 1), the test set the rest.
    extras: "train_pairs" (N_train, 2) and "test_pairs" (N_test, 2) int64 (a, b).
    Source: Power et al. 2022 (grokking), Sec. 2; Liu et al. 2022 (Omnigrok), Sec. 4 (MLP inputs).
    """
    p = spec.modulus
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    pairs = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)  # (p^2, 2)
    x = torch.cat([torch.nn.functional.one_hot(pairs[:, 0], p),
                   torch.nn.functional.one_hot(pairs[:, 1], p)], dim=1).float()
    y = (pairs[:, 0] + pairs[:, 1]) % p
    order = torch.randperm(p * p, generator=generator(seed, "modular-addition-split"))
    n_train = min(max(int(round(spec.train_fraction * p * p)), 1), p * p - 1)
    train, test = order[:n_train], order[n_train:]
    loss = "cross_entropy"
    if spec.targets == "one_hot":
        y, loss = torch.nn.functional.one_hot(y, p).float(), "half_sse"
    return Task(x[train], y[train], x[test], y[test], loss, p,
                {"train_pairs": pairs[train], "test_pairs": pairs[test]})

"""MNIST-1D: ten hand-made 1D templates, randomly padded, scaled, shifted, sheared and noised.

One job: generate the MNIST-1D data set from a seed (40 features, 10 classes),
a task small enough for a laptop on which an MLP, a CNN and logistic regression
clearly differ. It ignores the reference release's pickled copy (never
downloaded) and its option of shuffling the spatial axis.
"""

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["Mnist1dSpec", "make_mnist1d", "mnist1d_templates"]

_LENGTH = 40  # final_seq_length of the reference
_TEMPLATE_LEN = 12


class Mnist1dSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["mnist1d"] = "mnist1d"
    n_samples: int = Field(5000, ge=10, le=10_000_000, description="examples in all, a multiple of 10 (equal classes)")
    train_fraction: float = Field(0.8, gt=0.0, lt=1.0)
    padding: tuple[int, int] = Field((36, 60), strict=False, description="zeros appended to a template: uniform integer in [lo, hi]")
    scale_coeff: float = Field(0.4, ge=0, description="amplitude factor 1 + scale_coeff (u - 1/2)")
    max_translation: int = Field(48, ge=1, le=65_536, description="circular shift uniform in [0, max_translation)")
    corr_noise_scale: float = Field(0.25, ge=0, description="std of the smoothed noise filling the padding")
    iid_noise_scale: float = Field(2e-2, ge=0, description="std of white noise added everywhere")
    shear_scale: float = Field(0.75, ge=0, description="linear ramp of slope shear_scale (u - 1/2) subtracted")

    @model_validator(mode="after")
    def _check(self):
        if self.n_samples % 10:
            raise ValueError(f"n_samples must be a multiple of 10 (equal classes); got {self.n_samples}")
        low, high = self.padding
        if not 0 <= low <= high <= 65_536:
            raise ValueError(f"padding must be (lo, hi) with 0 <= lo <= hi <= 65536; got {self.padding}")
        if self.max_translation > _TEMPLATE_LEN + high:
            raise ValueError(f"max_translation {self.max_translation} exceeds the padded length {_TEMPLATE_LEN + high}")
        return self


def mnist1d_templates() -> torch.Tensor:
    """The ten digit templates (10, 12) float64: standardized per row, shifted to start at 0, divided by 6."""
    d = np.asarray([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ])
    d = (d - d.mean(1, keepdims=True)) / d.std(1, keepdims=True)
    return torch.from_numpy((d - d[:, :1]) / 6.0)


def _resample(values: torch.Tensor, lengths: torch.Tensor, points: int) -> torch.Tensor:
    """Linear interpolation of each row's first lengths[n] values, on a uniform grid over [0, 1],
    at `points` uniform points of [0, 1]: (N, L) -> (N, points)."""
    position = torch.linspace(0, 1, points, dtype=torch.float64) * (lengths.unsqueeze(1) - 1)
    low = position.floor().long().clamp(max=values.shape[1] - 1)
    high = torch.minimum(low + 1, lengths.unsqueeze(1) - 1)
    frac = position - low
    return values.gather(1, low) * (1 - frac) + values.gather(1, high) * frac


def make_mnist1d(spec: Mnist1dSpec, seed: int) -> Task:
    """n_samples / 10 examples of each digit, shuffled and split, standardized as a whole.

    Per example, from its template (12 values + 1e-8, so the digit is nonzero):
    append p ~ U{lo..hi} zeros; resample linearly to 12 + hi points; multiply by
    1 + scale_coeff (u - 1/2); shift circularly by U{0..max_translation-1}; replace
    the exact zeros (the padding) by corr_noise_scale N(0, 1) noise smoothed with a
    Gaussian of width 2 samples; add iid_noise_scale N(0, 1); subtract
    shear_scale (u - 1/2) linspace(-1/2, 1/2); resample to 40 points. Then the
    whole data set (train and test, as in the reference) is standardized by its
    global mean and standard deviation.
    Shapes: x (N, 40) float32 (use x.unsqueeze(1), (N, 1, 40), for a 1D CNN);
    y (N,) int64 in 0..9; loss "cross_entropy"; output_dim 10; vocab_size None.
    extras: "templates" (10, 12) float64.
    Algorithm: the reference's per-example transforms, vectorized over examples,
    with draws from child seeds of `seed` (it uses numpy's global RNG); O(N * 72).
    The data match the reference's distribution, not its numbers.
    Source: Greydanus 2020, "Scaling down deep learning" (the construction of MNIST-1D); the
    reference generator greydanus/mnist1d (data.py, transform.py), whose defaults these are.
    """
    from scipy.ndimage import gaussian_filter1d  # here, not at import: it costs ~0.2 s to load

    g = generator(seed, "mnist1d")
    templates = mnist1d_templates()
    n, low, high = spec.n_samples, *spec.padding
    width = _TEMPLATE_LEN + high
    y = torch.arange(10).repeat_interleave(n // 10)
    signal = torch.zeros(n, width, dtype=torch.float64)
    signal[:, :_TEMPLATE_LEN] = templates[y] + 1e-8
    pad = low + (torch.rand(n, generator=g, dtype=torch.float64) * (high - low + 1)).long()
    x = _resample(signal, _TEMPLATE_LEN + pad, width)
    x = x * (1 + spec.scale_coeff * (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5))
    shift = torch.randint(spec.max_translation, (n, 1), generator=g)
    x = x.gather(1, (torch.arange(width) - shift) % width)
    smooth = gaussian_filter1d(spec.corr_noise_scale * torch.randn(n, width, generator=g, dtype=torch.float64).numpy(),
                               2.0, axis=1)
    x = torch.where(x != 0, x, torch.from_numpy(smooth))
    x = x + spec.iid_noise_scale * torch.randn(n, width, generator=g, dtype=torch.float64)
    ramp = torch.linspace(-0.5, 0.5, width, dtype=torch.float64)
    x = x - spec.shear_scale * (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * ramp
    x = _resample(x, torch.full((n,), width), _LENGTH)
    order = torch.randperm(n, generator=g)
    x, y = x[order], y[order]
    x = ((x - x.mean()) / x.std(unbiased=False)).float()
    n_train = min(max(int(n * spec.train_fraction), 1), n - 1)
    return Task(x[:n_train], y[:n_train], x[n_train:], y[n_train:], "cross_entropy", 10, {"templates": templates})

"""In-context linear regression: each sequence is a fresh linear problem, solved from its own examples.

One job: sequences of points (x_t, y_t = w . x_t + noise) with w drawn anew per
sequence, laid out so that a causal sequence model predicting y_t at position
t sees exactly (x_0, y_0, ..., x_{t-1}, y_{t-1}, x_t); plus the error of the
Bayes-optimal predictor at each position, the floor a model can reach. It
ignores other function classes (sparse, nonlinear) and Garg et al.'s curriculum.
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["InContextRegressionSpec", "make_in_context_regression", "bayes_predictions"]


class InContextRegressionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["in_context_regression"] = "in_context_regression"
    input_dim: int = Field(8, ge=1, le=65_536, description="D; Garg et al. use 20")
    n_points: int = Field(32, ge=1, le=65_536, description="T points per sequence")
    noise: float = Field(0.0, ge=0, description="sigma: y = w . x + sigma N(0, 1) (Garg et al.: 0)")
    n_train: int = Field(4096, ge=1, le=10_000_000, description="training sequences")
    n_test: int = Field(512, ge=1, le=10_000_000, description="test sequences")


def bayes_predictions(x: torch.Tensor, y: torch.Tensor, noise: float) -> torch.Tensor:
    """The posterior-mean prediction of y_t from the t points before it, for every t.

    Args:
        x: (N, T, D) float64 points; y: (N, T) float64 responses; noise: sigma.
    Returns:
        (N, T) float64: x_t . w_hat_t with w_hat_t = (X^T X + sigma^2 I)^-1 X^T Y over
        the first t points (X (t, D), Y (t,)), the posterior mean of w under the prior
        N(0, I_D) and Gaussian noise of variance sigma^2; for sigma = 0 the min-norm
        least-squares solution (its limit); 0 at t = 0.
    Algorithm: for t >= D one batched D x D solve over all positions, from prefix sums of
    x x^T and x y; for t < D (where X^T X is singular at sigma = 0) the dual form
    X^T (X X^T + sigma^2 I)^-1 Y, one batched t x t solve per position; O(T N D^3).
    Failure modes: at sigma = 0 and t = D the D x D system is as ill-conditioned as D
    Gaussian points make it (rarely a problem in float64).
    """
    n, t, d = x.shape
    out = torch.zeros(n, t, dtype=torch.float64)
    for i in range(1, min(d, t)):  # dual form: t x t systems, one size per position
        xs = x[:, :i]
        gram = xs @ xs.mT + noise**2 * torch.eye(i, dtype=torch.float64)
        w = xs.mT @ torch.linalg.solve(gram, y[:, :i].unsqueeze(-1))
        out[:, i] = (x[:, i].unsqueeze(1) @ w).reshape(n)
    if t > d:  # primal form: prefix sums of x x^T and x y, then one batched D x D solve
        gram = (x.unsqueeze(-1) * x.unsqueeze(-2)).cumsum(1)[:, d - 1:-1]  # (N, T - D, D, D), points < t
        moment = (x * y.unsqueeze(-1)).cumsum(1)[:, d - 1:-1]
        w = torch.linalg.solve(gram + noise**2 * torch.eye(d, dtype=torch.float64), moment)
        out[:, d:] = (x[:, d:] * w).sum(-1)
    return out


def make_in_context_regression(spec: InContextRegressionSpec, seed: int) -> Task:
    """Sequences of T points of one random linear map each, and the Bayes error per position.

    Per sequence: w ~ N(0, I_D); x_t ~ N(0, I_D); y_t = w . x_t + sigma eps_t.
    Layout (one token per point, shifted like next-token prediction): token t is
    [x_t, y_{t-1}] (D + 1 values, y_{-1} = 0) and the target at t is y_t, so a
    causal model at position t sees the same information as at the x_t token of
    Garg et al.'s interleaved prompt (x_0, y_0, ..., x_t), at half the length.
    Shapes: x (N, T, D + 1) float32; y (N, T, 1) float32; output_dim 1; loss "mse"
    (torch.nn.functional.mse_loss: the mean over sequences and positions of the
    squared error; Garg et al. plot it divided by D).
    extras: "train_weights" (N, D), "test_weights" (M, D) float64 the w of each sequence;
    "test_bayes_mse" (T,) float64: the mean over test sequences of the squared error of
    the Bayes predictor (`bayes_predictions`) at each position, the floor for a model's
    test error there; its mean over positions is the floor for the test "mse". For
    sigma = 0 its expectation is max(D - t, 0) (the unexplained share of ||w||^2).
    Algorithm: Gaussian draws from child seeds of `seed`; the baseline costs O(T M D^3).
    Source: Garg, Tsipras, Liang & Valiant 2022, "What can transformers learn in-context? A
    case study of simple function classes" (prompts, the per-position squared-error
    objective, and the least-squares baseline it is compared with).
    """
    d, t, sigma = spec.input_dim, spec.n_points, spec.noise

    def draw(n: int, purpose: str):
        g = generator(seed, purpose)
        w = torch.randn(n, d, generator=g, dtype=torch.float64)
        x = torch.randn(n, t, d, generator=g, dtype=torch.float64)
        y = (x @ w.unsqueeze(-1)).squeeze(-1) + sigma * torch.randn(n, t, generator=g, dtype=torch.float64)
        previous = torch.cat([torch.zeros(n, 1, dtype=torch.float64), y[:, :-1]], dim=1)
        tokens = torch.cat([x, previous.unsqueeze(-1)], dim=-1)
        return tokens.float(), y.unsqueeze(-1).float(), w, x, y

    x_train, y_train, w_train, _, _ = draw(spec.n_train, "in_context_regression-train")
    x_test, y_test, w_test, points, responses = draw(spec.n_test, "in_context_regression-test")
    bayes = (bayes_predictions(points, responses, sigma) - responses).pow(2).mean(0)
    extras = {"train_weights": w_train, "test_weights": w_test, "test_bayes_mse": bayes}
    return Task(x_train, y_train, x_test, y_test, "mse", 1, extras)

"""Max-lr forecast: the largest stable learning rate from the curvature at initialization.

One job: turn the top Hessian eigenvalue λ (GD, heavy-ball momentum) or Adam's preconditioned
sharpness λ_P at the model's current parameters into a learning-rate window: linear stability
of the local quadratic model gives the edge, and for MSE the catapult mechanism (Lewkowycz et
al. 2020) lets GD survive beyond it up to a few times 2/λ. It ignores progressive sharpening
after the first steps (a deep net whose curvature grows fast can diverge below 2/λ) and
stochastic gradients (full batch is assumed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.forecast._check import OptimizerChoice, bisect_divergence_lr
from lmech.forecast.result import Forecast, track_record
from lmech.instruments.preconditioned_sharpness import preconditioned_sharpness
from lmech.instruments.sharpness import sharpness

__all__ = ["CATAPULT_FACTOR", "RELU_CATAPULT_FACTOR", "MOMENTUM_TOLERANCE", "max_lr_window", "adam_init_preconditioner",
           "is_piecewise_linear", "forecast_max_lr", "check_max_lr", "PHENOMENON_NAME"]

PHENOMENON_NAME = "forecast-max-lr"
CATAPULT_FACTOR = 2.0  # GD on MSE survives up to ~4/λ0 = 2 x (2/λ0) (Lewkowycz et al. 2020, Sec. 2, smooth nets)
RELU_CATAPULT_FACTOR = 6.0  # ~12/λ0 for ReLU networks (Lewkowycz et al. 2020, Sec. 3, measured there)
MOMENTUM_TOLERANCE = 2.0  # stated factor either side of (2+2β)/λ: heavy ball takes ~1/(1-β) longer steps off the quadratic
_REGRESSION = ("mse", "half_sse")
_PIECEWISE = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.ReLU6, torch.nn.PReLU, torch.nn.Hardtanh)


def is_piecewise_linear(model: torch.nn.Module) -> bool:
    """True when the module contains a ReLU-family activation module (ReLU, LeakyReLU, ReLU6, PReLU,
    Hardtanh): the catapult window of such nets is wider. Functional activations are not seen."""
    return any(isinstance(m, _PIECEWISE) for m in model.modules())


def max_lr_window(curvature: float, choice: OptimizerChoice, loss_name: str, *,
                  piecewise_linear: bool = False) -> tuple[float, float, float]:
    """(forecast, low, high) learning rates for the divergence edge, from the curvature.

    Args:
        curvature: λ, the top Hessian eigenvalue (sgd, momentum), or λ_P, the top eigenvalue of
            P⁻¹H with Adam's P (adam); > 0, in the loss's units per parameter².
        choice: the optimizer (sgd = full-batch GD; momentum = PyTorch heavy ball, β = choice.momentum;
            adam: β1 = choice.betas[0]).
        loss_name: mse / half_sse (regression: the catapult window applies) or cross_entropy.
        piecewise_linear: ReLU-family activations (wider catapult window).

    Rules:
        sgd: forecast 2/λ (Cohen et al. 2021, Sec. 2); window [2/λ, c 2/λ], c = CATAPULT_FACTOR
            (4/λ0, Lewkowycz et al. 2020) or RELU_CATAPULT_FACTOR (12/λ0) for ReLU nets. For
            cross-entropy the same window is stated without the catapult theory behind it.
        momentum: forecast (2+2β)/λ (Cohen et al. 2021, App.); window within MOMENTUM_TOLERANCE either side.
        adam: forecast (2+2β1)/((1-β1) λ_P) = 38/λ_P for β1 = 0.9 (Cohen et al. 2022, Sec. 2): the rate
            at which Adam enters its edge of stability; Adam self-stabilizes there, so the forecast is a
            lower bound on the divergence rate: window [forecast, inf).
    """
    if not (math.isfinite(curvature) and curvature > 0):
        raise InputError(f"the curvature at initialization is {curvature:.3g}: a max-lr forecast needs a positive "
                         "top eigenvalue (is the loss flat or the model at a saddle?)")
    if choice.name == "adam":
        beta1 = choice.betas[0]
        edge = (2 + 2 * beta1) / ((1 - beta1) * curvature)
        return edge, edge, math.inf
    if choice.name == "momentum":
        edge = (2 + 2 * choice.momentum) / curvature
        return edge, edge / MOMENTUM_TOLERANCE, edge * MOMENTUM_TOLERANCE
    edge = 2.0 / curvature
    factor = RELU_CATAPULT_FACTOR if piecewise_linear else CATAPULT_FACTOR
    return edge, edge, edge * factor


def adam_init_preconditioner(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data,
                             eps: float) -> Tensor:
    """(P,) Adam's preconditioner after its first full-batch step, sqrt(v̂₁) + eps = |G| + eps (bias-corrected)."""
    params = [p for p in model.parameters() if p.requires_grad]
    from lmech.instruments._call import call_model

    with torch.enable_grad():
        grads = torch.autograd.grad(loss_fn(call_model(model, data[0]), data[1]), params)
    return torch.cat([g.detach().abs().reshape(-1) for g in grads]) + eps


def forecast_max_lr(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data, loss_name: str,
                    choice: OptimizerChoice = OptimizerChoice(), *, piecewise_linear: bool | None = None,
                    seed: int = 0, reports: str | None = "lmech-report") -> Forecast:
    """Forecast the largest stable learning rate of full-batch training from the curvature at the model's parameters.

    Args:
        model: any module at its initialization (or any point); not modified.
        loss_fn, loss_name: the loss and its name (mse / half_sse / cross_entropy).
        data: (inputs (N, ...), targets (N, ...)), the full batch.
        choice: optimizer and hyperparameters; piecewise_linear: None detects ReLU-family modules.
        seed: Lanczos start vector; reports: the atlas reports folder for the track record (None: skip).

    Algorithm: sharpness (Lanczos on HVPs, rel_tol 1e-4) of H, or of P⁻¹H with P = |G| + eps for
    Adam; then `max_lr_window`. Cost: one gradient plus about 20-60 HVPs.

    Source: Cohen et al. 2021 (2/λ and (2+2β)/λ), Lewkowycz et al. 2020 (catapult window for MSE),
    Cohen et al. 2022 (Adam's (2+2β1)/((1-β1)λ_P)).
    """
    piecewise = is_piecewise_linear(model) if piecewise_linear is None else bool(piecewise_linear)
    if choice.name == "adam":
        p_diag = adam_init_preconditioner(model, loss_fn, data, choice.eps)
        result = preconditioned_sharpness(model, loss_fn, data, p_diag, rel_tol=1e-4, seed=seed)
        what = "top eigenvalue of P⁻¹H, P = |G| + eps (Adam's preconditioner after its first step)"
    else:
        result = sharpness(model, loss_fn, data, rel_tol=1e-4, seed=seed)
        what = "top Hessian eigenvalue"
    curvature = float(result.eigenvalues[0])
    point, low, high = max_lr_window(curvature, choice, loss_name, piecewise_linear=piecewise)
    rule = {"sgd": f"2/λ, window to {RELU_CATAPULT_FACTOR if piecewise else CATAPULT_FACTOR:g} x 2/λ "
                   f"({'catapult, Lewkowycz et al. 2020' if loss_name in _REGRESSION else 'catapult window of MSE, assumed'})",
            "momentum": f"(2+2β)/λ with β = {choice.momentum:g}, window x/÷ {MOMENTUM_TOLERANCE:g}",
            "adam": f"(2+2β1)/((1-β1)λ_P) with β1 = {choice.betas[0]:g}: Adam's edge of stability, a lower bound "
                    "on divergence"}[choice.name]
    return Forecast(
        name="max-lr", forecast=point, interval=(low, high), unit="learning rate",
        basis=f"{what} {curvature:.4g} at the given parameters ({loss_name}, {data_size(data)} examples); {rule}",
        phenomenon=PHENOMENON_NAME,
        track_record=track_record(PHENOMENON_NAME, reports) if reports is not None else None,
        details={"curvature": curvature, "curvature_error_bound": float(result.error_bounds[0]),
                 "optimizer": choice.name, "momentum": choice.momentum, "betas": list(choice.betas),
                 "loss": loss_name, "piecewise_linear": int(piecewise), "rule": rule})


def data_size(data) -> int:
    from lmech.instruments._call import num_examples

    return num_examples(data[0])


def check_max_lr(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data, result: Forecast,
                 choice: OptimizerChoice, *, steps: int = 200, rel_tol: float = 0.05,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Held-out check: bisect the divergence lr of `steps` full-batch steps on copies of the model
    (`_check.bisect_divergence_lr`, started at the forecast) and score it against the window.

    Returns {"divergence_lr", "stable", "unstable", "runs", "steps", "ratio" (divergence / forecast),
    "inside" (in the interval), "error" (factor outside the window, 1 inside), "passed"}.
    """
    if steps < 1:
        raise InputError(f"--check-steps must be >= 1, got {steps}")
    bracket = bisect_divergence_lr(model, loss_fn, data, choice, result.forecast, steps=steps, rel_tol=rel_tol,
                                   progress=progress)
    low, high = result.interval
    lr = bracket.lr
    error = 1.0 if low <= lr <= high else (low / lr if lr < low else lr / high)
    return {"divergence_lr": lr, "stable": bracket.stable, "unstable": bracket.unstable, "runs": bracket.runs,
            "steps": steps, "ratio": lr / result.forecast, "inside": bool(low <= lr <= high),
            "error": float(error), "tolerance": 1.0, "passed": bool(low <= lr <= high)}

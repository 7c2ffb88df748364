"""Learning-rate transfer analysis shared by the width-transfer phenomena (mup-transfer on MLPs,
mup-transfer-transformer, muon-transfer): the loss-optimal log2 learning rate per width from a
log2-spaced sweep, how far it spreads and how far it drifts.

One job: turn stored sweep runs into seed-averaged log-loss curves, fit the optimum of each,
and summarise the optima across width. It ignores which optimizer or parameterization made the
runs (the caller labels each run with an arm, e.g. "sp", "mup", "muon") and what the
theory predicts.

Conventions: a sweep is G learning rates 2^x on an increasing grid x (G,), at W widths, for one
or more seeds; a curve is (G,) seed-mean log final training loss, +inf where any seed diverged
(a diverged run counts as +inf, so its mean is +inf). Optima and spreads are in octaves
(log2 units: one octave is a factor 2 in learning rate).

Source: Yang et al. 2022 (Tensor Programs V), Sec. 3 and Fig. 1: the optimum of the training
loss in log2 lr, per width, as the quantity that transfers.
"""

import math
from collections.abc import Callable

import numpy as np

from lmech.forecast.lr_transfer import optimal_log2_lr  # one parabola rule for the atlas and the forecast

__all__ = ["FINAL_FRACTION", "final_loss", "optimal_log2_lr", "run_log_loss", "log_loss_curves",
           "fit_optima", "trend_free_spread", "drift", "misleading_edges"]

FINAL_FRACTION = 0.2  # the loss is averaged over the last fifth of training


def final_loss(steps: list[int], values: list[float], total_steps: int) -> float:
    """Mean training loss over observations in the last FINAL_FRACTION of training (NaN if none)."""
    tail = [v for s, v in zip(steps, values) if s >= (1 - FINAL_FRACTION) * total_steps]
    return float(np.mean(tail)) if tail else float("nan")


def run_log_loss(store, spec) -> float:
    """log of one run's final training loss (`final_loss` of "loss/train"); +inf if it diverged."""
    if store.summary(spec.id)["status"] == "diverged":
        return math.inf
    steps, values = store.series(spec.id, "loss/train")
    loss = final_loss(steps, values, spec.steps)
    return math.log(loss) if loss > 0 else -math.inf


def log_loss_curves(store, specs: list, arm_of: Callable) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Seed-mean log final loss per arm, width and learning rate.

    Args: specs: the sweep's RunSpecs (every arm at every width and lr, any number of seeds);
    arm_of(spec) -> str, the arm a run belongs to.
    Returns (widths (W,) float64 increasing, log2_lrs (G,) float64 increasing,
    {arm: (W, G) float64 curves}). Raises KeyError when an arm lacks a (width, lr) cell.
    """
    log2_lrs = np.asarray(sorted({math.log2(s.optimizer.lr) for s in specs}))
    widths = np.asarray(sorted({s.model.width for s in specs}), dtype=float)
    cells: dict[tuple, list[float]] = {}
    for spec in specs:
        cells.setdefault((arm_of(spec), spec.model.width, math.log2(spec.optimizer.lr)), []).append(
            run_log_loss(store, spec))
    arms = sorted({key[0] for key in cells})
    curves = {arm: np.asarray([[np.mean(cells[(arm, int(w), x)]) for x in log2_lrs] for w in widths])
              for arm in arms}
    return widths, log2_lrs, curves


def fit_optima(log2_lrs: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """`optimal_log2_lr` of each row of curves (W, G): ((W,) log2 optima, W edge flags)."""
    fits = [optimal_log2_lr(log2_lrs, curve) for curve in curves]
    return np.asarray([f[0] for f in fits]), [f[1] for f in fits]


def trend_free_spread(widths: np.ndarray, log2_opt: np.ndarray, exponent: float) -> float:
    """max - min of log2 lr*(H) - exponent * log2(H / H_0), in octaves (0: the predicted trend exactly)."""
    residual = np.asarray(log2_opt, dtype=float) - exponent * np.log2(np.asarray(widths, dtype=float) / widths[0])
    return float(residual.max() - residual.min())


def drift(log2_opt: np.ndarray) -> float:
    """How far the optimum falls from the smallest to the largest width, in octaves (negative: it rises)."""
    return float(log2_opt[0] - log2_opt[-1])


def misleading_edges(widths: np.ndarray, edges: list[str | None]) -> list[int]:
    """Widths whose optimum sits on a sweep edge that could overstate a falling drift.

    An optimum clamped at the upper edge at the smallest width, or at the lower edge at the
    largest width, can only understate how far the optimum falls; any other edge (or a sweep
    that diverged everywhere) could hide the truth and is returned.
    """
    last = len(widths) - 1
    return [int(w) for i, (w, e) in enumerate(zip(widths, edges))
            if e is not None and not ((e == "high" and i == 0) or (e == "low" and i == last))]


def transfer_checks(widths: np.ndarray, flat: dict, flat_exponent: float,
                    drifting: dict, drifting_exponent: float) -> dict:
    """The verdict inputs every width-transfer phenomenon shares: one arm predicted flat, one drifting.

    Args: flat / drifting: {"log2_opt": (W,) optima, "edge": W edge flags} of the arm whose optimum
    theory predicts as H^flat_exponent (muP, Muon) and of the arm predicted to drift as
    H^drifting_exponent (SP); widths (W,).
    Returns {"spread": the flat arm's trend-free spread (octaves), "drift": how far the drifting arm
    moves in the predicted direction (octaves; 0 when no direction is predicted), "predicted_drift":
    the theory's drift over the widths (octaves), "flat_edges": widths where the flat arm's optimum
    is on a sweep edge, "bad_edges": the drifting arm's `misleading_edges`}.
    """
    widths = np.asarray(widths, dtype=float)
    direction = -math.copysign(1.0, drifting_exponent) if drifting_exponent else 0.0
    return {"spread": trend_free_spread(widths, flat["log2_opt"], flat_exponent),
            "drift": float(direction * drift(drifting["log2_opt"])),
            "predicted_drift": float(-drifting_exponent * math.log2(widths[-1] / widths[0])),
            "flat_edges": [int(w) for w, e in zip(widths, flat["edge"]) if e is not None],
            "bad_edges": misleading_edges(widths, drifting["edge"])}


def plot_loss_curves(ax, widths: np.ndarray, log2_lrs: np.ndarray, arm: dict, *, optimizer: str, title: str) -> None:
    """One panel: each width's seed-mean log loss against log2 lr, its fitted optimum dotted."""
    import matplotlib.pyplot as plt

    colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    for w, curve, opt, c in zip(widths, arm["log_loss"], arm["log2_opt"], colors):
        ax.plot(log2_lrs, curve, "o-", color=c, ms=3, label=f"H={w:g}")
        ax.axvline(opt, color=c, ls=":", lw=1)
    ax.set_xlabel(f"log2 learning rate ({optimizer})")
    ax.set_ylabel("log final training loss (seed mean)")
    ax.set_title(f"{title}: loss vs lr (dotted: fitted optimum)")
    ax.legend(fontsize=7)


def plot_optima(ax, widths: np.ndarray, arms: list[tuple[str, np.ndarray, float, str]], *,
                band_at: float, passed: bool) -> None:
    """One panel: the measured optimum of each arm against width beside its theory line.

    arms: (label, (W,) log2 optima, theory exponent, colour) per arm; band_at: the log2 lr at the
    centre of the shaded one-octave band (the flat arm's optimum at the smallest width).
    """
    widths = np.asarray(widths, dtype=float)
    for label, log2_opt, exponent, color in arms:
        ax.plot(widths, log2_opt, "o-", color=color, label=f"{label} measured optimum")
        ax.plot(widths, log2_opt[0] + exponent * np.log2(widths / widths[0]), "--", color=color,
                label=f"{label} theory: lr* ∝ H^{exponent:g}")
    ax.axhspan(band_at - 0.5, band_at + 0.5, color="C0", alpha=0.1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width H")
    ax.set_ylabel("log2 optimal lr")
    ax.set_title(f"optimal lr vs width ({'PASS' if passed else 'FAIL'})")
    ax.legend(fontsize=7)

"""The atlas: one file per phenomenon (spec + predict + measure + compare -> Verdict).

Adding one: a file defining PHENOMENON, plus one entry in `_ALL` below.
"""

from lmech.errors import InputError
from lmech.phenomena import (
    attention_vs_recurrence,
    benign_overfitting,
    catapult,
    critical_batch,
    deep_linear_dynamics,
    double_descent,
    edge_of_stability,
    edge_of_stability_transformer,
    emergence,
    flat_minima,
    forecast_batch,
    forecast_compute,
    forecast_curve,
    forecast_lr_transfer,
    forecast_max_lr,
    grokking,
    heavy_tails,
    lazy_vs_rich,
    llc_deep_linear,
    mode_connectivity,
    muon_transfer,
    mup_transfer,
    mup_transfer_transformer,
    pac_bayes,
    scaling_law,
    scaling_law_lm,
    universality,
)
from lmech.phenomena.atlas import apply_overrides, run_phenomenon
from lmech.phenomena.verdict import Comparison, Phenomenon, Verdict

__all__ = ["PHENOMENA", "get_phenomenon", "run_phenomenon", "apply_overrides",
           "Phenomenon", "Verdict", "Comparison"]

_ALL = (
    deep_linear_dynamics.PHENOMENON,
    double_descent.PHENOMENON,
    edge_of_stability.PHENOMENON,
    lazy_vs_rich.PHENOMENON,
    mup_transfer.PHENOMENON,
    grokking.PHENOMENON,
    scaling_law.PHENOMENON,
    critical_batch.PHENOMENON,
    # the atlas on transformers (and the optimizers of today's practice)
    mup_transfer_transformer.PHENOMENON,
    muon_transfer.PHENOMENON,
    edge_of_stability_transformer.PHENOMENON,
    scaling_law_lm.PHENOMENON,
    attention_vs_recurrence.PHENOMENON,
    # landscapes, representations and generalization
    mode_connectivity.PHENOMENON,
    catapult.PHENOMENON,
    flat_minima.PHENOMENON,
    llc_deep_linear.PHENOMENON,
    benign_overfitting.PHENOMENON,
    universality.PHENOMENON,
    heavy_tails.PHENOMENON,
    pac_bayes.PHENOMENON,
    emergence.PHENOMENON,
    # forecasts, each scored on held-out runs (lmech forecast ... prints this verdict as its track record)
    forecast_max_lr.PHENOMENON,
    forecast_lr_transfer.PHENOMENON,
    forecast_batch.PHENOMENON,
    forecast_curve.PHENOMENON,
    forecast_compute.PHENOMENON,
)
PHENOMENA: dict[str, Phenomenon] = {p.name: p for p in _ALL}


def get_phenomenon(name: str) -> Phenomenon:
    if name not in PHENOMENA:
        raise InputError(f"unknown phenomenon '{name}'; known: {', '.join(PHENOMENA)}")
    return PHENOMENA[name]

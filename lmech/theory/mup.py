"""muP scaling rules for Adam: how update sizes and the optimal learning rate scale with width.

One job: width exponents derived from an abc-parameterization table. A layer
with fan-in scaling like width^f (f = 1 for hidden and readout layers, 0 for
the input layer), an Adam learning-rate multiplier m^p and a forward multiplier
m^c (m = width / base_width) moves its output coordinates after one Adam step by

    Delta z = Theta(lr * m^(f + p + c)),

because an Adam update is Theta(lr) per entry and aligned with the incoming
activations, so its fan_in terms add coherently (Yang et al. 2022, Sec. 3 and
Appendix J; Yang & Hu 2021, Tensor Programs IV, Sec. 5). The largest stable
(and, in practice, loss-optimal) learning rate keeps the fastest-moving layer at
Theta(1): lr* ~ m^(-max_l e_l). It ignores constants, finite-width corrections,
the input layer's fixed fan-in D, and anything SGD-specific.

The exponent table here is written down independently of lmech.models (theory
imports no other lmech package); a test checks the two agree.
"""

import numpy as np
from jaxtyping import Float, Real

__all__ = ["ADAM_LAYER_EXPONENTS", "update_exponents", "optimal_lr_exponent", "predicted_optimal_lr"]

# (fan-in exponent f, Adam lr exponent p, forward multiplier exponent c) per layer role.
# Source: Yang et al. 2022 (Tensor Programs V), Table 3 / Table 8 (muP for Adam): hidden
# weights get Adam lr 1/fan_in; the readout gets multiplier 1/fan_in (in units of base width).
ADAM_LAYER_EXPONENTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "sp": {"input": (0.0, 0.0, 0.0), "hidden": (1.0, 0.0, 0.0), "output": (1.0, 0.0, 0.0)},
    "mup": {"input": (0.0, 0.0, 0.0), "hidden": (1.0, -1.0, 0.0), "output": (1.0, 0.0, -1.0)},
}


def _rules(parameterization: str) -> dict[str, tuple[float, float, float]]:
    if parameterization not in ADAM_LAYER_EXPONENTS:
        raise ValueError(f"no Adam width rules for parameterization '{parameterization}' "
                         f"(known: {', '.join(ADAM_LAYER_EXPONENTS)})")
    return ADAM_LAYER_EXPONENTS[parameterization]


def update_exponents(parameterization: str) -> dict[str, float]:
    """Width exponent e of one Adam step's change of each layer's pre-activations, Delta z ~ lr m^e.

    Returns {"input": e, "hidden": e, "output": e} (dimensionless). SP gives 1 for hidden and
    readout (the coordinate check grows linearly with width), muP gives 0 everywhere.

    Source: Yang et al. 2022, Sec. 3 ("coordinate check") with Table 3.
    Failure modes: holds for a few steps from init at fixed lr; after many steps or at
    widths near the input dimension the constants dominate.
    """
    return {role: f + p + c for role, (f, p, c) in _rules(parameterization).items()}


def optimal_lr_exponent(parameterization: str) -> float:
    """a in lr*(width) ~ width^a for Adam: minus the largest update exponent (SP: -1, muP: 0).

    Source: Yang et al. 2022, Sec. 1 and Fig. 1 (SP's optimum shifts, muP's is stable).
    Failure modes: at small widths the width-independent input layer can set the optimum,
    so SP's measured drift is weaker than 1/width there.
    """
    return -max(update_exponents(parameterization).values())


def predicted_optimal_lr(widths: Real[np.ndarray, "W"], base_width: int | float, base_lr: float,
                         parameterization: str) -> Float[np.ndarray, "W"]:
    """Optimal Adam learning rate at each width, anchored at base_lr for base_width.

    Args: widths (W,) hidden widths H; base_width, base_lr scalars (lr in the optimizer's units).
    Returns: (W,) float64 learning rates, base_lr * (H / base_width)^a.
    """
    widths = np.asarray(widths, dtype=np.float64)
    return base_lr * (widths / base_width) ** optimal_lr_exponent(parameterization)

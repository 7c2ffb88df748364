"""Closed-form predictions and fitters; no training here. Depends only on numpy/scipy/torch.

Each function's docstring names its source (paper and equation).
"""

from lmech.errors import NotIdentifiableError
from lmech.theory.coupled_scaling_law import CoupledScalingLawFit, fit_coupled_scaling_law
from lmech.theory.critical_batch import (
    CriticalBatchFit,
    fit_critical_batch,
    predicted_critical_batch,
    simple_noise_scale,
)
from lmech.theory.deep_linear import mode_strength_trajectory, time_to_learn
from lmech.theory.double_descent import min_norm_risk, optimal_ridge_penalty, ridge_risk
from lmech.theory.kernel_regression import KernelPrediction, kernel_regression_predictions
from lmech.theory.random_features import RandomFeatureExponents, random_feature_exponents
from lmech.theory.scaling_law import (
    Allocation,
    Forecast,
    PowerLawFit,
    ScalingLawFit,
    compute_optimal_allocation,
    fit_power_law,
    fit_scaling_law,
)
from lmech.theory.stability import (
    adam_sharpness_threshold,
    gd_sharpness_threshold,
    momentum_sharpness_threshold,
    preconditioned_sharpness,
)

__all__ = [
    "NotIdentifiableError",
    "mode_strength_trajectory", "time_to_learn",
    "min_norm_risk", "ridge_risk", "optimal_ridge_penalty",
    "gd_sharpness_threshold", "momentum_sharpness_threshold", "adam_sharpness_threshold",
    "preconditioned_sharpness",
    "kernel_regression_predictions", "KernelPrediction",
    "fit_scaling_law", "compute_optimal_allocation", "fit_power_law",
    "ScalingLawFit", "Allocation", "PowerLawFit", "Forecast",
    "fit_critical_batch", "predicted_critical_batch", "simple_noise_scale", "CriticalBatchFit",
    "random_feature_exponents", "RandomFeatureExponents",
]

"""Models as pure functions of stacked parameters; parameterizations (SP / NTK / muP) as data."""

from lmech.models.mlp import MemberModule, ModelPlan, ModelSpec, forward, init_params, plan_model
from lmech.models.parameterization import PARAMETERIZATIONS, LayerPlan, LayerRule, resolve_layers

__all__ = [
    "ModelSpec", "ModelPlan", "plan_model", "init_params", "forward", "MemberModule",
    "PARAMETERIZATIONS", "LayerRule", "LayerPlan", "resolve_layers",
]

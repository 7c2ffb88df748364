"""Models as pure functions of stacked parameters; parameterizations (SP / NTK / muP) as data."""

from lmech.models.cnn import CNN, CNNSpec, build_cnn, cnn_lr_multipliers
from lmech.models.factory import FactorySpec, build_factory, call_factory, factory_lr_multipliers, load_factory
from lmech.models.family import FAMILIES, AnyModelSpec, Family, build_model, lr_multipliers
from lmech.models.linear_recurrence import (
    LinearRecurrenceModel,
    LinearRecurrenceSpec,
    build_linear_recurrence,
    linear_recurrence_lr_multipliers,
)
from lmech.models.mlp import MemberModule, ModelPlan, ModelSpec, forward, init_params, plan_model
from lmech.models.parameterization import PARAMETERIZATIONS, LayerPlan, LayerRule, resolve_layers
from lmech.models.resmlp import ResMLP, ResMLPSpec, build_resmlp, resmlp_lr_multipliers
from lmech.models.transformer import Transformer, TransformerSpec, build_transformer, transformer_lr_multipliers

__all__ = [
    "ModelSpec", "ModelPlan", "plan_model", "init_params", "forward", "MemberModule",
    "PARAMETERIZATIONS", "LayerRule", "LayerPlan", "resolve_layers",
    "build_model", "lr_multipliers", "FAMILIES", "Family", "AnyModelSpec",
    "TransformerSpec", "Transformer", "build_transformer", "transformer_lr_multipliers",
    "CNNSpec", "CNN", "build_cnn", "cnn_lr_multipliers",
    "ResMLPSpec", "ResMLP", "build_resmlp", "resmlp_lr_multipliers",
    "LinearRecurrenceSpec", "LinearRecurrenceModel", "build_linear_recurrence", "linear_recurrence_lr_multipliers",
    "FactorySpec", "load_factory", "call_factory", "build_factory", "factory_lr_multipliers",
]

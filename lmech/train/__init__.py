"""Training: K stacked models in one vectorized step (one model is K = 1)."""

from lmech.train.functional import (
    StackedModel,
    clip_grad_norm_per_member,
    per_member_grad_norm,
    stack_members,
)
from lmech.train.loop import (MemberResult, TrainState, build_ensemble, losses_and_grads, member_module, train_ensemble,
                              train_run)
from lmech.train.losses import per_member_loss
from lmech.train.optim import OPTIMIZERS, MemberHyper, evaluation_params, init_optimizer_state, optimizer_step
from lmech.train.optimizers import OptimizerOptions, hidden_matrices, newton_schulz
from lmech.train.schedule import log_spaced_steps, lr_factor, observation_steps

__all__ = [
    "train_ensemble", "train_run", "member_module", "build_ensemble", "losses_and_grads", "TrainState", "MemberResult",
    "per_member_loss", "MemberHyper", "init_optimizer_state", "optimizer_step",
    "OPTIMIZERS", "OptimizerOptions", "evaluation_params", "hidden_matrices", "newton_schulz",
    "lr_factor", "log_spaced_steps", "observation_steps",
    "StackedModel", "stack_members", "clip_grad_norm_per_member", "per_member_grad_norm",
]

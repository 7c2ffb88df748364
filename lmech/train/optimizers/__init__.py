"""The optimizers of today's practice over stacked (K, ...) parameters: Muon, Lion, signSGD,
schedule-free AdamW, Shampoo and SOAP, one file each; `lmech.train.optim.optimizer_step`
dispatches to them."""

from lmech.train.optimizers.hidden_matrices import hidden_matrices
from lmech.train.optimizers.kronecker import factored_axes, inverse_root, mode_gram, mode_product
from lmech.train.optimizers.muon import Layout, muon_scale, muon_update
from lmech.train.optimizers.newton_schulz import NS_COEFFICIENTS, NS_EPS, newton_schulz
from lmech.train.optimizers.options import OptimizerOptions
from lmech.train.optimizers.schedule_free import averaging_weight, schedule_free_update
from lmech.train.optimizers.shampoo import shampoo_update
from lmech.train.optimizers.sign import lion_update, signsgd_update
from lmech.train.optimizers.soap import soap_update

__all__ = [
    "OptimizerOptions", "hidden_matrices", "Layout",
    "newton_schulz", "NS_COEFFICIENTS", "NS_EPS", "muon_update", "muon_scale",
    "lion_update", "signsgd_update", "averaging_weight", "schedule_free_update",
    "shampoo_update", "soap_update", "factored_axes", "mode_gram", "mode_product", "inverse_root",
]

"""The shared hyperparameters of the newer optimizers (muon, shampoo, soap), as plain data.

One job: carry what `OptimizerSpec` says about Newton-Schulz, Muon's AdamW side and the
Kronecker preconditioners into `optimizer_step`, which reads only the fields of the optimizer
it runs. Per-member hyperparameters (lr, weight decay, momentum) are not here: they are
`MemberHyper`'s (K,) tensors.
"""

from dataclasses import dataclass
from typing import Literal

__all__ = ["OptimizerOptions"]


@dataclass(frozen=True)
class OptimizerOptions:
    """Options shared by all members of an ensemble.

    Attributes:
        ns_steps: muon's Newton-Schulz iterations (5 in Jordan et al. 2024).
        nesterov: muon's Nesterov momentum (the reference recipe).
        muon_lr_scale: "original", sqrt(max(1, fan_out / fan_in)) (Jordan et al.), or
            "match_rms_adamw", 0.2 sqrt(max(fan_out, fan_in)) (Liu et al. 2025); torch.optim.Muon's
            adjust_lr_fn.
        adamw_lr_ratio: muon's AdamW parameters (embeddings, gains, biases, readout) take this
            times the member's lr.
        precondition_every: shampoo and soap refresh their preconditioners (inverse roots,
            eigenbases) every this many steps; statistics accumulate every step. None: 1 for
            shampoo (Gupta et al.: stale roots amplify unseen directions by eps^(-1/(2k))),
            10 for soap (Vyas et al.).
        precondition_beta: Kronecker statistics L <- beta L + (1 - beta) G G^T; 1 sums them
            (L <- L + G G^T). None: 1 for shampoo (Gupta et al. 2018), 0.95 for soap (Vyas et al. 2024).
        max_precondition_dim: axes longer than this carry no Kronecker factor.
    """

    ns_steps: int = 5
    nesterov: bool = True
    muon_lr_scale: Literal["original", "match_rms_adamw"] = "original"
    adamw_lr_ratio: float = 1.0
    precondition_every: int | None = None
    precondition_beta: float | None = None
    max_precondition_dim: int = 10_000

    @classmethod
    def from_spec(cls, spec) -> "OptimizerOptions":
        """The options an `lmech.spec.OptimizerSpec` names (its fields of the same names)."""
        return cls(**{name: getattr(spec, name) for name in cls.__dataclass_fields__})

    def statistics_beta(self, name: str) -> float:
        """precondition_beta, or the paper's default for `name` ("shampoo" or "soap")."""
        if self.precondition_beta is not None:
            return self.precondition_beta
        return 1.0 if name == "shampoo" else 0.95

    def refresh_every(self, name: str) -> int:
        """precondition_every, or the paper's default for `name` ("shampoo" or "soap")."""
        if self.precondition_every is not None:
            return self.precondition_every
        return 1 if name == "shampoo" else 10

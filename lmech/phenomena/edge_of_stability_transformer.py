"""Edge of stability on a transformer LM: full-batch GD sharpens to 2/lr and hovers; Adam at 38/lr.

Claim (Cohen et al. 2021, Sec. 3 and App. on transformers; Cohen et al. 2022 for Adam): the
same as `edge-of-stability`, on a decoder-only transformer (pre-LayerNorm, softmax attention)
trained with the token cross-entropy: full-batch GD's sharpness (top Hessian eigenvalue of the
training loss) first rises (progressive sharpening) until it reaches 2/lr, then hovers there
while the loss keeps decreasing non-monotonically; full-batch Adam's preconditioned sharpness
lambda_max(P^-1 H), P = (1 - beta1^t) diag(sqrt(v_hat) + eps), does the same at
(2 + 2 beta1) / ((1 - beta1) lr) = 38/lr for beta1 = 0.9.

Experiment: a one-block transformer (width 8, 2 heads, MLP ratio 2, learned positions) on an
order-1 Markov language over 8 tokens (Dirichlet(0.25) transition rows, entropy rate 1.017 nats;
8-token sequences, 256 training sequences: 2,048 scored tokens for about 800 parameters, so the
training loss cannot fall far below the entropy rate by memorizing). Full-batch GD at three
learning rates (one ensemble) and full-batch Adam (beta1 0.9, beta2 0.999, eps 1e-8) at one
rate; the full mode adds two Adam rates (0.01, 0.015) and longer horizons (1,000 GD and 800
Adam steps) on the same data. Sharpness and preconditioned sharpness by Lanczos on
Hessian-vector products every OBSERVE_EVERY steps, the training loss every 5.

Prediction (theory only): the thresholds 2/lr and 38/lr (lmech.theory.stability).

Verdict per setting, the MLP phenomenon's rule (shared code, `edge_of_stability.compare`):
after the first measured crossing of the threshold the median of sharpness / threshold lies
within 1 +- 0.10; the first measurement is below 0.9 of the threshold (sharpening, not a
catapult); at least 5 measurements after the crossing; the training loss lower at the end than
at the crossing while rising at least once by more than 1%. The error is the worst |median - 1|.

Scope: on this design. Measured while choosing it (seed 0 is the verdict; seeds 1 and 2, which
draw another chain, data and initialization, as a robustness check; fast sizes): GD lr 0.2 /
0.25 / 0.3 medians 1.015 / 1.034 / 1.056 (seed 0), 1.004 / 1.079 / 1.072 (seed 1), 0.973 /
0.974 / 1.025 (seed 2), largest loss rise after the crossing 1.7-12%; Adam lr 0.02 medians
1.034 / 0.933 / 1.036 with loss rises 1.5 / 2.9 / 1.9%.
With cross-entropy the sharpness hovers "just above" 2/lr, as Cohen et al. write, and how far
above grows with memorization: width 32 on 1,024 tokens memorized (train loss 0.2, far below
the entropy rate) and hovered at medians 1.1-1.4; width 16 on 2,048 tokens at 1.04-1.10. Larger
learning rates cross earlier and drift further above over a fixed horizon (GD lr 0.35: 1.10 on
seeds 1 and 2; Adam lr 0.03: 1.11 and 1.17). The chain's concentration decides Adam's
non-monotone-loss check: with Dirichlet(0.5) rows (entropy rate 1.38 nats) Adam's ratio hovered
at 1.01 but its training loss rose by at most 0.2-0.7% between observations (also observed every
step, with beta2 0.99 or 0.95, at lr 0.003-0.02), under the 1% of the shared rule: near the
cross-entropy floor a relative rise of the total loss understates the oscillation, so a
lower-entropy chain (a smaller floor) makes the same instability a larger fraction of the loss.
Dirichlet(0.1) rows (0.81 nats) gave Adam rises of 2-4% but GD overshot 2/lr and relaxed slowly
(medians 0.86-1.16 at lr 0.15-0.3); Dirichlet(0.25) passes both. Full mode (seed 0): GD medians
1.023 / 1.049 / 1.075, Adam lr 0.01 / 0.015 / 0.02 at 1.036 / 0.997 / 1.053 (loss rises 2.2-4.8%);
GD lr 0.3 drifts up to 1.18 by step 1,000 (memorization), so longer horizons would fail it.
Twice the data (512 sequences, 1,000 steps) does not pass: after overshooting to 1.16-1.24 x 2/lr
GD settles below it at lr 0.25 and 0.3 (medians 0.909, 0.924) and above it at lr 0.2 (1.110);
lr 0.15 crosses only at step 800 and lr 0.35 hovers at 1.149.

Sources: Cohen, Kaur, Li, Kolter & Talwalkar 2021 (ICLR, arXiv 2103.00065), Sec. 3 and
App. (Transformer on WikiText-2); Cohen et al. 2022 (arXiv 2207.14484), Sec. 3 (Adam's
preconditioned sharpness threshold).
"""

from lmech.models.transformer import TransformerSpec
from lmech.phenomena.edge_of_stability import BETA1, compare, figure, measure, predict
from lmech.phenomena.verdict import Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.markov_language import MarkovLanguageSpec

__all__ = ["PHENOMENON", "runs"]

OBSERVE_EVERY = 20
CONCENTRATION = 0.25  # Dirichlet alpha of the transition rows: entropy rate 1.017 nats (see Scope)
_LANCZOS = {"rel_tol": 1e-3, "max_iter": 40}  # ~1e-3 relative accuracy is 100x below the tolerance


def _settings(fast: bool) -> dict:
    if fast:
        return {"gd_lrs": [0.2, 0.25, 0.3], "adam_lrs": [0.02], "gd_steps": 600, "adam_steps": 500,
                "n_train": 256}
    return {"gd_lrs": [0.2, 0.25, 0.3], "adam_lrs": [0.01, 0.015, 0.02], "gd_steps": 1000,
            "adam_steps": 800, "n_train": 256}


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    task = MarkovLanguageSpec(vocab_size=8, order=1, concentration=CONCENTRATION, seq_len=8,
                              n_train=s["n_train"], n_test=16)
    model = TransformerSpec(width=8, heads=2, depth=1, context=8, mlp_ratio=2.0)
    specs = []
    for lr in s["gd_lrs"]:
        observe = {"sharpness": ObserveSpec(every=OBSERVE_EVERY, **_LANCZOS), "loss": ObserveSpec(every=5)}
        specs.append(RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=lr),
                             steps=s["gd_steps"], seed=0, observe=observe))
    for lr in s["adam_lrs"]:
        observe = {"preconditioned_sharpness": ObserveSpec(every=OBSERVE_EVERY, **_LANCZOS),
                   "loss": ObserveSpec(every=5)}
        specs.append(RunSpec(task=task, model=model,
                             optimizer=OptimizerSpec(name="adam", lr=lr, beta1=BETA1, eps=1e-8),
                             steps=s["adam_steps"], seed=0, observe=observe))
    return specs


PHENOMENON = Phenomenon(
    name="edge-of-stability-transformer",
    claim="On a transformer LM (cross-entropy), full-batch GD sharpens until sharpness reaches 2/lr, then hovers "
          "there while the loss keeps decreasing non-monotonically; Adam's preconditioned sharpness does the same "
          "at 38/lr.",
    formula="λ_max(H) → 2/η (GD);  λ_max(P⁻¹H) → (2+2β₁)/((1−β₁)η) (Adam)",
    source="Cohen, Kaur, Li, Kolter & Talwalkar 2021 (ICLR), Sec. 3 and App. (Transformer); "
           "Cohen et al. 2022 (arXiv:2207.14484), Sec. 3",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)

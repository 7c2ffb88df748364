"""Scaling law of a transformer language model: fit on the small runs, forecast the largest held-out run.

Claim (Kaplan et al. 2020; Hoffmann et al. 2022): the test loss of a language
model trained to completion is a smooth function L(N, D) of its parameter
count N and the number of training tokens D, so a law fitted on small runs
forecasts a larger one.

Experiment: task ``markov_language`` (a random first-order chain over V = 32
tokens, Dirichlet(0.3) rows, T = 32; its entropy rate H is the loss floor no
model beats), one-block transformers (one head, MLP ratio 4) of widths 4..16
(fast: 4, 6, 8, 12, 16) / 4..32 (full: seven widths) under muP (base width 4,
so one Adam lr, 3e-2, serves every width), batch 64, each width trained for
S in {32, 64, 128, 256} (fast) / {32, ..., 512} (full) steps, 2 / 4 seeds.
Every (N, D) point is its own run with its own cosine schedule decaying to 0
at its own last step -- not checkpoints of one long run, the caveat Hoffmann
et al. (2022, Sec. 3 and App. A) raise about Kaplan et al. (whose fixed
schedule makes a checkpoint at D < D_max a model still at a high learning
rate). Seeds are ensemble members, so each (width, steps) pair is one job.
D = S x batch x T scored next-token predictions (an order-1 chain masks
none), N = every trained parameter (embeddings included, ``parameter_count``).
The width bottleneck is real here: the logits of a width-H model pass through
H dimensions, while the chain's 32 x 32 log-transition table has full rank.

Measurement: the final test cross-entropy (nats/token) of every run, mean
over seeds, per (N, D) cell; ``_scaling_forecast.forecast_from_cells`` fits
the coupled law L = E + ((A/N^a)^(1/p) + (B/D^b)^(1/p))^p
(``theory.fit_coupled_scaling_law``, 95% bootstrap interval) on every width
but the widest and forecasts the widest at every D; the additive Chinchilla
law L = E + A/N^a + B/D^b (``theory.fit_scaling_law``, Hoffmann et al. 2022
Eq. 2) is fitted on the same rows and reported beside it.

Verdict: at the largest runs (the widest at D >= D_max / 4) the coupled
forecast's relative error <= 5% and its 95% interval overlaps the measured
mean +- 2 standard errors. Reported beside it, not in the verdict: the
additive law's errors and the fitted floor E beside the chain's entropy rate
H (the fitted E may sit above H: the law's floor is that of this model family
and budget, not the Bayes loss).

Sub-check: the measured losses of the grid span at least 3 tolerances (15%),
so that a flat grid (nothing learned) cannot pass by a trivially good forecast.

Cost: the fast mode's 40 runs (20 jobs) train in about 26 CPU-s and the fit's
40 bootstrap refits take about 6 CPU-s (single thread); end to end, figure and
imports included, 41 CPU-s measured on a loaded machine (load 18 on 2 cores).
Measured (fast, one thread): coupled forecast error 1.3% at the largest run
(0.9%, 0.3%, 1.3% at D = 131k, 262k, 524k), interval covering 3/3; additive
law 0.01%, 1.4%, 1.5%; the fitted E (0.07) sits far below the entropy rate
(2.58): at these sizes the law is a local interpolant, its floor not
identified by the data (with one width fewer, 4, 6, 10, 16, the same recipe
missed by 2.1% and covered 2 of 3: the verdict can fail on this grid).

Scope: widths 4..32, up to 512 steps, one chain; a forecast, not an exponent
claim (the fitted exponents and E are reported, not judged).

Sources: Kaplan et al. 2020 (arXiv:2001.08361) Eq. 1.5; Hoffmann et al. 2022
(arXiv:2203.15556) Eq. 2 and App. D.2 (Huber-in-log-space fit), Sec. 3 on
per-run cosine schedules; Yang et al. 2022 (muP, so one lr serves all widths).
"""

from __future__ import annotations

import math

import numpy as np

from lmech.models.transformer import TransformerSpec
from lmech.phenomena._scaling_forecast import FORECAST_TOLERANCE, forecast_from_cells
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.markov_language import MarkovLanguageSpec, make_markov_language

__all__ = ["PHENOMENON", "VOCAB", "compare_lm_forecast", "lm_cells", "parameter_count", "tokens_seen"]

VOCAB, ORDER, CONCENTRATION, SEQ_LEN = 32, 1, 0.3, 32
MIN_SPREAD = 3.0  # the grid's losses must span >= 3 tolerances, so that a flat forecast cannot pass
BATCH, LR, BASE_WIDTH, HEADS = 64, 3e-2, 4, 1


def _design(fast: bool) -> dict:
    if fast:
        return {"widths": [4, 6, 8, 12, 16], "steps": [32, 64, 128, 256], "seeds": 2, "bootstrap": 40}
    return {"widths": [4, 6, 8, 12, 16, 24, 32], "steps": [32, 64, 128, 256, 512], "seeds": 4,
            "bootstrap": 100}


def _model(width: int) -> TransformerSpec:
    return TransformerSpec(width=width, heads=HEADS, depth=1, context=SEQ_LEN, mlp_ratio=4.0,
                           parameterization="mup", base_width=BASE_WIDTH)


def runs(fast: bool) -> list[RunSpec]:
    d = _design(fast)
    task = MarkovLanguageSpec(vocab_size=VOCAB, order=ORDER, concentration=CONCENTRATION, seq_len=SEQ_LEN,
                              n_train=BATCH * max(d["steps"]), n_test=512)
    return [RunSpec(task=task, model=_model(w),
                    optimizer=OptimizerSpec(name="adam", lr=LR, batch_size=BATCH, schedule="cosine"),
                    steps=s, seed=seed, observe={"loss": ObserveSpec(every=s, train=False)})
            for w in d["widths"] for s in d["steps"] for seed in range(d["seeds"])]


def parameter_count(width: int, vocab: int = VOCAB, context: int = SEQ_LEN, mlp_ratio: float = 4.0) -> int:
    """Trained parameters of a one-block transformer with biases and an untied readout (closed form).

    token (V H) + position (T H) embeddings; q, k, v, out (4 (H^2 + H)); MLP up / down
    (H M + M + M H + H, M = mlp_ratio H); two block layer norms and the final one (6 H);
    readout (H V, no bias).
    """
    h, m = width, round(mlp_ratio * width)
    return vocab * h + context * h + 4 * (h * h + h) + (h * m + m + m * h + h) + 6 * h + h * vocab


def tokens_seen(spec: RunSpec) -> int:
    """D: scored next-token predictions seen in training (order - 1 positions a sequence are masked)."""
    return spec.steps * spec.optimizer.batch_size * (spec.task.seq_len - (spec.task.order - 1))


def predict(specs: list[RunSpec]) -> dict:
    """The loss floor of the language (its entropy rate, nats/token), beside the forecast rule."""
    task = make_markov_language(specs[0].task, specs[0].data_seed or 0)
    return {"entropy_rate": float(task.extras["entropy_rate"]), "tolerance": FORECAST_TOLERANCE}


def lm_cells(store, specs: list[RunSpec]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, mean final test loss, its standard error over seeds), each (G,), one entry per (N, D) cell."""
    cells: dict[tuple[int, int], list[float]] = {}
    for spec in specs:
        key = (parameter_count(spec.model.width), tokens_seen(spec))
        cells.setdefault(key, []).append(store.series(spec.id, "loss/test")[1][-1])
    keys = sorted(cells)
    mean = np.array([np.mean(cells[k]) for k in keys])
    se = np.array([np.std(cells[k], ddof=1) / math.sqrt(len(cells[k])) if len(cells[k]) > 1 else 0.0
                   for k in keys])
    return np.array([k[0] for k in keys], float), np.array([k[1] for k in keys], float), mean, se


def measure(store, specs: list[RunSpec]) -> dict:
    n, d, mean, se = lm_cells(store, specs)
    fast = max(s.model.width for s in specs) == max(_design(True)["widths"])
    return forecast_from_cells(n, d, mean, se, bootstrap=_design(fast)["bootstrap"])


def compare_lm_forecast(prediction: dict, m: dict) -> Comparison:
    """The coupled forecast at the largest held-out runs vs their measured loss; additive law beside it."""
    tol = prediction["tolerance"]
    if m["error"] is not None:
        return Comparison(prediction=f"forecast within {tol:.0%}", measurement=f"coupled fit failed: {m['error']}",
                          metric="max relative forecast error at the largest runs", error=math.inf,
                          tolerance=tol, passed=False, details={"interval_covers": False})
    held, largest = m["held"], m["largest"][m["held"]]
    measured, se = m["loss"][held], m["stderr"][held]
    rel = np.abs(m["forecast"] / measured - 1)
    covered = (m["lo"] <= measured + 2 * se) & (m["hi"] >= measured - 2 * se)
    worst = float(rel[largest].max())
    covers = bool(covered[largest].all())
    rows = m["fit_rows"] | held
    spread = float(m["loss"][rows].max() / m["loss"][rows].min() - 1)
    spans = spread >= MIN_SPREAD * tol
    fit = m["fit"]
    details = {
        "interval_covers": covers,
        "grid_spans_3x_tolerance": spans,
        "grid_loss_spread": round(spread, 4),
        "forecast_relative_error_largest": rel[largest].round(4).tolist(),
        "forecast_relative_error_all_held_out": rel.round(4).tolist(),
        "coupled_fit": {k: round(float(getattr(fit, k)), 4) for k in ("E", "A", "B", "alpha", "beta", "p")},
        "entropy_rate": round(prediction["entropy_rate"], 4),
    }
    additive = "additive fit failed"
    if m["chinchilla"] is not None:
        add_rel = np.abs(m["chinchilla"] / measured - 1)
        details["additive_relative_error_largest"] = add_rel[largest].round(4).tolist()
        additive = f"additive (Chinchilla) law: max rel. error {float(add_rel[largest].max()):.3f}"
    largest_n, largest_d = m["n"][held][largest], m["d"][held][largest]
    return Comparison(
        prediction=(f"coupled law fitted on N < {m['n'].max():.0f} forecasts the largest runs within {tol:.0%}, "
                    f"95% interval covering; loss floor >= entropy rate {prediction['entropy_rate']:.3f}"),
        measurement=(f"largest runs (N={largest_n.max():.0f}, D={', '.join(f'{x:.0f}' for x in largest_d)}): "
                     f"measured {', '.join(f'{x:.3f}' for x in measured[largest])}, forecast "
                     f"{', '.join(f'{x:.3f}' for x in m['forecast'][largest])}; coupled max rel. error "
                     f"{worst:.3f}, interval covers {int(covered[largest].sum())}/{int(largest.sum())}; "
                     f"{additive}; fitted E={fit.E:.3f}"),
        metric="max relative forecast error of the coupled law at the largest held-out runs",
        error=worst, tolerance=tol, passed=bool(worst <= tol and covers and spans), details=details,
    )


def compare(prediction: dict, measurement: dict) -> Comparison:
    return compare_lm_forecast(prediction, measurement)


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    from lmech.phenomena._scaling_forecast import forecast_panel

    fig, ax = plt.subplots(figsize=(7, 4.5))
    forecast_panel(ax, measurement)
    ax.axhline(prediction["entropy_rate"], color="grey", lw=0.8, label="entropy rate H (loss floor)")
    ax.set_xlabel("training tokens D (each point its own cosine run)")
    ax.set_ylabel("final test cross-entropy (nats/token)")
    ax.set_title("transformer LM on a Markov language: forecast of the widest from the rest")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="scaling-law-lm",
    claim=("A scaling law fitted on small transformer language models, each (N, D) point its own run with its "
           "own cosine schedule, forecasts the test loss of the largest held-out runs within 5%."),
    formula="L(N, D) = E + ((A/N^a)^(1/p) + (B/D^b)^(1/p))^p  (p = 1: Chinchilla's E + A/N^a + B/D^b)",
    source=("Kaplan et al. 2020 (arXiv:2001.08361) Eq. 1.5; Hoffmann et al. 2022 (arXiv:2203.15556) Eq. 2, "
            "Sec. 3 and App. D.2"),
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)

"""Learning-rate schedules and observation schedules (which steps to measure at)."""

import math

import numpy as np

__all__ = ["lr_factor", "log_spaced_steps", "observation_steps", "WSD_DECAY_FRACTION"]

# wsd: the last fifth of training decays linearly to zero (Hägele et al. 2024, "Scaling Laws and
# Compute-Optimal Training Beyond Fixed Training Durations", Sec. 3: a 20% cooldown matches cosine).
WSD_DECAY_FRACTION = 0.2


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at `step` (0-based, the step about to be taken).

    constant: 1. warmup: linear from 1/warmup to 1 over warmup_steps, then 1.
    cosine: 0.5 (1 + cos(pi step / total)). warmup_cosine: warmup, then cosine over the rest.
    wsd (warmup-stable-decay): warmup, then 1, then over the last WSD_DECAY_FRACTION of the
    total steps (rounded to a whole number of steps, at least 1) linearly down to 0:
    factor (total - step) / decay at step >= total - decay.
    """
    if schedule in ("warmup", "warmup_cosine", "wsd") and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule in ("constant", "warmup"):
        return 1.0
    if schedule == "wsd":
        decay = max(round(WSD_DECAY_FRACTION * total_steps), 1)
        return min(1.0, max(total_steps - step, 0) / decay)
    start = warmup_steps if schedule == "warmup_cosine" else 0
    span = max(total_steps - start, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - start, span) / span))


def log_spaced_steps(total_steps: int, count: int) -> list[int]:
    """About `count` distinct integer steps from 0 to total_steps, log-spaced (0 and the end included)."""
    if total_steps <= 0:
        return [0]
    grid = np.unique(np.round(np.logspace(0, math.log10(total_steps), max(count - 1, 1))).astype(int))
    return sorted({0, total_steps, *grid.tolist()})


def observation_steps(every: str | int, count: int, total_steps: int) -> list[int]:
    """Steps at which to measure: log-spaced ('log') or every N steps, always including 0 and the end."""
    if every == "log":
        return log_spaced_steps(total_steps, count)
    return sorted({*range(0, total_steps + 1, int(every)), total_steps})

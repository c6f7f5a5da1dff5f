"""The learning-rate schedule: a half cosine from ``lr`` at the first step to ``lr * end`` at
the last.

A constant rate leaves Adam's steps as large at the end of a run as at its start: the
generator keeps moving about a minimum and its held-out error with it (docs/benchmarks.md,
"Choosing the defaults"). The rate is a function of the step number and the run's total
only, so a resumed run (or N processes) uses the rate an uninterrupted one would.
"""

from __future__ import annotations

import math


def lr_at(step: int, total: int, lr: float, end: float) -> float:
    """The learning rate of ABP iteration ``step`` (0-based) of ``total``; steps past the
    total keep the final rate."""
    if end >= 1.0 or total <= 1:
        return lr
    t = min(max(step, 0) / (total - 1), 1.0)
    return lr * (end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t)))

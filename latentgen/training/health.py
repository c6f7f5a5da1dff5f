"""Whether a run is learning: the error a generator must beat, and the verdict on a collapse.

A generator that fits nothing reproduces the mean example, whatever its latent: its error is
the data's own variance per entry. A run whose training error stays at or above that (a
Langevin step too large for the posterior, a learning rate too high) has collapsed, and
finishing its epochs only produces a useless model that exits 0. The trainer stops it with
one line instead, keeping the last checkpoint written before, as it does on divergence.
"""

from __future__ import annotations

import torch

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.model.observation import GaussianObservation

#: examples read to estimate the data's variance (a fixed, spread-out subset of larger sets)
VARIANCE_SAMPLE = 4096
#: epochs and generator steps a run gets before it is judged (both: the first epochs start
#: from random latents, and a small data set's epoch is a few steps)
GRACE_EPOCHS = 3
GRACE_STEPS = 100


@torch.no_grad()
def data_variance(data: Examples, observation: GaussianObservation,
                  masks: Masks | None = None) -> float:
    """The mean squared deviation of the (observed) training data from its mean example, per
    entry, in model space: the training error of a generator that ignores its latent."""
    n = len(data)
    index = (torch.arange(n) if n <= VARIANCE_SAMPLE
             else torch.linspace(0, n - 1, VARIANCE_SAMPLE).round().long())
    sums = sq = count = None
    for chunk in index.split(512):
        y = observation.measure(data.get(chunk)).double()
        m = (masks.for_indices(chunk).double().expand_as(y) if masks is not None
             else torch.ones_like(y))
        s, q, c = (y * m).sum(0), (y * y * m).sum(0), m.sum(0)
        sums = s if sums is None else sums + s
        sq = q if sq is None else sq + q
        count = c if count is None else count + c
    assert sums is not None and sq is not None and count is not None
    seen = count > 0
    mean = sums[seen] / count[seen]
    variance = (sq[seen] - count[seen] * mean * mean).sum() / count[seen].sum()
    return float(variance.clamp_min(0.0))


def collapse(epoch: int, step: int, error: float, variance: float) -> str | None:
    """Why a run whose training error after epoch ``epoch`` (1-based) and ``step`` generator
    steps is ``error`` has collapsed, or None while it may still be learning; ``variance``
    is ``data_variance`` in the same units as ``error``."""
    if (epoch < GRACE_EPOCHS or step < GRACE_STEPS or not variance > 0
            or error < variance):
        return None
    return (f"its training error {error:.4g} is at or above the data's own variance "
            f"{variance:.4g} (the error of drawing the mean example)")

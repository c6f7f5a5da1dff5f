"""The measures there are (the built-in ones and any registered since) and running them.

Built-in measures register when their modules are imported, here; they run and read first, in
the order of ``BUILTIN``: reconstruction error (with PCA, anomaly detection and the regime),
the latents against the prior, the log-likelihood and synthesis. Others follow in the order
they registered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from latentgen.assembly.trained import Trained
from latentgen.errors import UserError
from latentgen.measures import latent_gap, likelihood, reconstruction, synthesis  # noqa: F401
from latentgen.measures.registry import MEASURES, Block, Measure, Request

BUILTIN = ("reconstruction", "latents", "nll", "synthesis")


def _ordered() -> list[Measure]:
    rank = {name: i for i, name in enumerate(BUILTIN)}
    listed = list(MEASURES)
    return sorted(MEASURES.values(), key=lambda m: (rank.get(m.name, len(rank)),
                                                    listed.index(m.name)))


def measure(name: str) -> Measure:
    """The measure registered as ``name``."""
    if name not in MEASURES:
        raise UserError(f"`measures`: no measure named {name!r}; known: "
                        f"{', '.join(MEASURES)}")
    return MEASURES[name]


def measure_names() -> list[str]:
    """Every measure's name, in the order they run."""
    return [m.name for m in _ordered()]


def default_measures() -> list[str]:
    """The measures `evaluate` runs unasked."""
    return [m.name for m in _ordered() if m.default]


def report_measures() -> list[str]:
    """The measures the report shows."""
    return [m.name for m in _ordered() if m.report]


def run_measures(trained: Trained, names: Sequence[str], request: Request,
                 on_measure: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Each named measure's dict (all names checked first), merged in the measures' order;
    ``on_measure(name, seconds)`` after each."""
    order = measure_names()
    chosen = sorted((measure(name) for name in dict.fromkeys(names)),
                    key=lambda m: order.index(m.name))
    result: dict[str, Any] = {}
    for m in chosen:
        start = time.perf_counter()
        result.update(m.compute(trained, request))
        if on_measure is not None:
            on_measure(m.name, time.perf_counter() - start)
    return result


def present(result: dict[str, Any], trained: Trained, request: Request) -> list[Block]:
    """The blocks of every measure whose keys ``result`` holds, in the measures' order."""
    blocks: list[Block] = []
    for m in _ordered():
        if m.ran(result):
            blocks += m.blocks(result, trained, request)
    return blocks


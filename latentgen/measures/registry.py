"""Measures of a trained model, registered by name: each a plain function of the trained model
and a ``Request`` (the data and options of one evaluation) that returns a dict, merged into
what ``Run.evaluate`` returns (and ``evaluate --json`` prints).

A measure also says how it reads: ``present`` turns its part of the result into ``Table`` and
``Line`` blocks, which the command line prints and the report lays out (``html``, when given,
is the measure's own report section). A new measure is one module with one
``register_measure`` call; ``latentgen evaluate --measure NAME``, its table and the report pick
it up (``latentgen.measures.catalog``)::

    from latentgen import Request, Table, register_measure

    @register_measure("mean_latent_norm", title="Latent norms")
    def mean_latent_norm(trained, request):
        return {"mean_latent_norm": float(trained.latents.flatten(1).norm(dim=1).mean())}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latentgen.assembly.trained import Source, Trained
from latentgen.measures.defaults import (
    DEFAULT_NLL_SAMPLES,
    DEFAULT_POSTERIOR_SAMPLES,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    DEFAULT_SYNTHESIS_N,
    TRAIN_SAMPLE,
)


@dataclass(frozen=True)
class Request:
    """The data and options of one evaluation; each measure reads the ones it needs.
    ``test_data`` and ``negative_data``: held-out data and data of another category;
    ``options``: those of measures registered outside latentgen, by name."""

    test_data: Source = None
    negative_data: Source = None
    train: bool = True
    infer_steps: int = DEFAULT_STEPS
    sampler: str = DEFAULT_SAMPLER
    mask: str | None = None
    posterior_samples: int = DEFAULT_POSTERIOR_SAMPLES
    train_examples: int | None = TRAIN_SAMPLE
    reference: Source = None
    n: int = DEFAULT_SYNTHESIS_N
    seed: int = 0
    scale: int = 1
    extractor: str | None = None
    extractor_weights: str | None = None
    nll_samples: int = DEFAULT_NLL_SAMPLES
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A table of formatted cells; the first column names the rows."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Line:
    """A sentence under a table; ``dim``: a side note (how it was measured)."""

    text: str
    dim: bool = False


Block = Table | Line
Compute = Callable[[Trained, Request], dict[str, Any]]
Present = Callable[[dict[str, Any], Trained, Request], list[Block]]
Html = Callable[[dict[str, Any], Trained, Request], str]


@dataclass(frozen=True)
class Measure:
    """A registered measure: ``compute(trained, request) -> dict`` (its keys join the
    evaluation's result), how it reads (``present``; default: a table of its numbers; ``html``:
    its own report section, default: the blocks under ``title``), whether the report shows it
    (``report``) and whether `evaluate` runs it unasked (``default``). Measures run and read
    in the order they registered, after the built-in ones."""

    name: str
    compute: Compute
    title: str
    present: Present | None = None
    html: Html | None = None
    report: bool = True
    default: bool = False
    #: keys of the result whose presence shows it ran (default: its name)
    keys: tuple[str, ...] = ()

    def ran(self, result: dict[str, Any]) -> bool:
        return any(k in result for k in (self.keys or (self.name,)))

    def blocks(self, result: dict[str, Any], trained: Trained, request: Request
               ) -> list[Block]:
        if self.present is not None:
            return self.present(result, trained, request)
        return [numbers_table(self.title, result.get(self.name, result))]


#: every measure, in the order they registered
MEASURES: dict[str, Measure] = {}


def register_measure(name: str, *, title: str, present: Present | None = None,
                     html: Html | None = None, report: bool = True,
                     default: bool = False, keys: tuple[str, ...] = ()
                     ) -> Callable[[Compute], Compute]:
    """Register the decorated ``compute(trained, request) -> dict`` as measure ``name``."""

    def add(compute: Compute) -> Compute:
        held = MEASURES.get(name)
        # the same function defined again (a module reloaded, a notebook cell run twice)
        # replaces its registration; another one may not take the name
        if held is not None and (held.compute.__module__, held.compute.__qualname__) != (
                compute.__module__, compute.__qualname__):
            raise ValueError(f"a measure named {name!r} is registered already "
                             f"({held.compute.__module__}.{held.compute.__qualname__})")
        MEASURES[name] = Measure(name, compute, title, present, html, report, default, keys)
        return compute

    return add


def numbers_table(title: str, found: Any) -> Table:
    """A measure's numbers as a two-column table (nested dicts as dotted names)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, float):
            rows.append((prefix, f"{value:.5g}"))
        else:
            rows.append((prefix, str(value)))

    walk("", found)
    return Table(title, ("measure", "value"), tuple(rows))


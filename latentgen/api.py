"""The Python API: train a run, load one, pack data, measure speed, write a report. The command
line is a shell over these calls.

    import latentgen
    run = latentgen.train(modality="image", epochs=30, out="runs/faces")
    run = latentgen.load_run("runs/faces")

docs/python-api.md is the reference; its examples run in the test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentgen.assembly.config import TrainConfig
from latentgen.assembly.model import Model
from latentgen.assembly.resolve import ConfigSource, default_out, resolve_config, resume_config
from latentgen.errors import UserError
from latentgen.measures.defaults import DEFAULT_STEPS, DEFAULT_SYNTHESIS_N
from latentgen.outputs.report import Report, build_report, report_evaluation, report_request
from latentgen.run import Run
from latentgen.training.curves import CurveObserver
from latentgen.training.observers import Observer
from latentgen.training.trainer import Trainer

__all__ = ["bench", "load_run", "prepare", "report", "resolve_config", "train"]


def train(config: ConfigSource = None, /, *, out: str | Path | None = None,
          resume: bool = False, observers: Sequence[Observer | str] = (),
          device: str | None = None, **settings: Any) -> Run | None:
    """Train a generator by alternating back-propagation; returns the trained ``Run``.

    Settings resolve exactly as ``latentgen train`` resolves its flags: ``config`` (a TOML
    file, a mapping or a ``TrainConfig``), then ``settings`` (training settings such as
    ``epochs=3``, or modality options such as ``image_size=32``), then the modality's
    training defaults, then the schema's. ``out`` defaults to ``runs/MODALITY-TIME``.

    ``resume=True`` continues the run in ``out`` exactly where it stopped; only the settings
    that change how it runs (epochs, device, compile, observers, max_steps, latents_on,
    workers, synthesis_every) may be given then. ``observers`` are told of progress:
    ``latentgen.Observer`` objects, or names of registered observers (``"tensorboard"``;
    names are the ``observers`` setting, stored in the config; the command line adds its
    progress bar as one). The arguments are never changed.
    """
    if device is not None:
        settings["device"] = device
    names = [o for o in observers if isinstance(o, str)]
    objects = [o for o in observers if not isinstance(o, str)]
    if names:
        settings["observers"] = [*settings.get("observers", []), *names]
    if resume:
        if out is None:
            raise UserError("`resume` needs `out`, the run directory to continue")
        cfg = resume_config(out, config, **settings)
    else:
        cfg = resolve_config(config, **settings)
        out = default_out(cfg) if out is None else out
    extra: list[Observer] = [CurveObserver()]  # first: the metrics writers record its columns
    extra += objects
    trainer = Trainer(cfg, out, resume=resume, observers=extra)
    run_dir = trainer.fit()
    if not trainer.shard.is_main:
        return None  # under torchrun only the first process gets the run
    return Run.load(run_dir.path, device=cfg.device)


def load_run(path: str | Path, device: str = "auto") -> Run:
    """The run in ``path`` (a ``latentgen train`` output folder), ready to synthesize,
    reconstruct, interpolate and evaluate on ``device``."""
    return Run.load(path, device=device)


def prepare(out: str | Path, modality: str = "image", data: str | None = None,
            **options: Any) -> dict[str, Any]:
    """Pack ``data`` (opened as ``modality`` opens training data, with its ``options``; None:
    its embedded default) into the array file ``out`` with its description ``out.json``;
    ``train(data=out)`` then reads batches from it as they are needed. Returns what was
    written: ``file``, ``sidecar``, ``examples``, ``shape``, ``dtype``, ``bytes``,
    ``seconds``."""
    from latentgen.data.prepared import prepare as pack

    cfg = TrainConfig.from_dict({"modality": modality, "data": data,
                                 "modality_options": options}, source="options")
    return pack(Model.from_config(cfg), data, out)


def bench(modality: str = "image", options: dict[str, Any] | None = None, repeats: int = 5,
          **settings: Any) -> dict[str, Any]:
    """Measure ABP iterations of ``modality``'s default generator on random data
    (``latentgen.benchmark``): examples/s, Langevin steps/s, FLOP/s against a measured peak and the
    engine against a plain loop, as a JSON-ready dict. ``settings``: those of
    ``BENCH_DEFAULTS`` (latent_dim, batch_size, langevin_steps, device, precision, ...)."""
    from latentgen.benchmark import BENCH_DEFAULTS, run_bench

    return run_bench(options=options, repeats=repeats,
                     **{**BENCH_DEFAULTS, "modality": modality, **settings})


def report(run: Run | str | Path, test_data: str | None = None,
           negative_data: str | None = None, infer_steps: int = DEFAULT_STEPS,
           out: str | Path | None = None, synthesis_n: int = DEFAULT_SYNTHESIS_N,
           device: str = "auto") -> Report:
    """Write one self-contained HTML page about ``run`` (a ``Run`` or its folder; default
    file: RUN/report.html) with the measures registered for it, against ``test_data`` and
    ``negative_data`` (default: the run's own, when still there). Returns the ``Report``:
    its ``path``, the ``evaluation`` it shows and the ``request`` measured."""
    trained = run if isinstance(run, Run) else Run.load(run, device=device)
    request = report_request(trained, test_data, negative_data, infer_steps, synthesis_n)
    evaluation = report_evaluation(trained, request)
    path = build_report(trained, request, out=Path(out) if out is not None else None,
                        evaluation=evaluation)
    return Report(path, evaluation, request)

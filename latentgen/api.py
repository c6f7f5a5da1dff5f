"""The Python API: train a run, load one. The command line is a shell over these calls.

    import latentgen
    run = latentgen.train(modality="image", epochs=30, out="runs/faces")
    run = latentgen.load_run("runs/faces")

docs/python-api.md is the reference; its examples run in the test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentgen.errors import UserError
from latentgen.evaluation.curves import CurveObserver
from latentgen.evaluation.run import Run
from latentgen.training.observers import Observer
from latentgen.training.resolve import ConfigSource, default_out, resolve_config, resume_config
from latentgen.training.trainer import Trainer

__all__ = ["load_run", "resolve_config", "train"]


def train(config: ConfigSource = None, /, *, out: str | Path | None = None,
          resume: bool = False, observers: Sequence[Observer | str] = (), progress: bool = False,
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
    names are the ``observers`` setting, stored in the config). ``progress=True`` draws the
    rich progress bar. The arguments are never changed.
    """
    if device is not None:
        settings["device"] = device
    names = [o for o in observers if isinstance(o, str)]
    objects = [o for o in observers if not isinstance(o, str)]
    if names:
        settings["observers"] = [*settings.get("observers", []), *names]
    if resume:
        if out is None:
            raise UserError("--resume needs --out, the run directory to continue")
        cfg = resume_config(out, config, **settings)
    else:
        cfg = resolve_config(config, **settings)
        out = default_out(cfg) if out is None else out
    extra: list[Observer] = [CurveObserver()]  # first: the metrics writers record its columns
    extra += objects
    if progress:
        from latentgen.training.progress import TrainingProgress

        extra.append(TrainingProgress())
    trainer = Trainer(cfg, out, resume=resume, observers=extra)
    run_dir = trainer.fit()
    if not trainer.shard.is_main:
        return None  # under torchrun only the first process gets the run
    return Run.load(run_dir.path, device=cfg.device)


def load_run(path: str | Path, device: str = "auto") -> Run:
    """The run in ``path`` (a ``latentgen train`` output folder), ready to synthesize,
    reconstruct, interpolate and evaluate on ``device``."""
    return Run.load(path, device=device)

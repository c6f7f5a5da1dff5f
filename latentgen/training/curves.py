"""Train / test / negative reconstruction error tracked during training (the seed's Fig. 9-11).

Every ``eval_every`` epochs the generator is held fixed and:
  - train: the training examples are reconstructed at MAP latents refined from their banked
    ones (``eval_warm_steps`` steps: the banked latents are Langevin samples of the current
    model, near their mode);
  - test, negative: MAP latents (sampler "map", the procedure of ``latentgen evaluate``) are
    inferred and those examples reconstructed. The held-out latents are kept from one
    evaluation to the next, as the training bank keeps its chains: the first evaluation runs
    ``eval_steps`` steps from the prior's mode, each later one ``eval_warm_steps`` steps from
    where the previous one ended (the generator moved a little since). Inference from scratch
    at every evaluation cost seven times the training itself; warm, the curves cost a fraction
    of it, and the last evaluation was measured against cold inference (docs/benchmarks.md).
    The kept latents go to ``checkpoints/eval_latents.pt``, so a resumed run goes on from them.
Each set is measured on at most ``eval_examples`` examples (an evenly spread subset, the same
at every evaluation): inference of an example costs as much as training it, and the curves
need the trend, not every example. ``evaluate`` and ``report`` measure whole held-out sets.
``eval_seconds`` in metrics.csv is what each evaluation took.
The errors go into ``metrics.csv`` (eval_train_mse, test_mse, negative_mse) and a plot of them
over epochs into ``curves.png`` (redrawn at each evaluation, at the end, and at most every 30 s
in between), with PCA at the same number of latent factors (on the same
examples) as dashed lines, beside the running training error of every epoch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.rundir import RunDir
from latentgen.assembly.trained import Trained
from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.measures.baselines import baseline_pca
from latentgen.measures.defaults import TRAIN_SAMPLE
from latentgen.measures.inference import infer_latents, per_example_mse, spread_subset
from latentgen.measures.synthesis import synthesis_quality
from latentgen.outputs.curves import CURVE_COLUMNS, PCA_TEST_COLUMN, curves_png, synthesis_png
from latentgen.outputs.plot import write_chart
from latentgen.runtime.files import atomic_write
from latentgen.training.observers import EpochEvent, Observer, StartEvent, TrainingContext

#: MAP steps refining the banked latents of the training examples the curves measure (they
#: are Langevin samples of the current model, near its mode)
CURVE_REFINE_STEPS = 10
#: curves.png is redrawn at every evaluation and the last epoch, and otherwise after an epoch
#: only once this many seconds have passed since it was last drawn
REDRAW_SECONDS = 30.0
#: where the held-out latents of the last evaluation are kept (in the run's checkpoints folder)
WARM_LATENTS = "eval_latents.pt"
#: the synthesis measures in metrics.csv (``synthesis_every``)
SYNTHESIS_COLUMNS = ("swd", "swd_pca", "swd_floor")


class CurveTracker:
    def __init__(self, model: Any, device: torch.device, train: Examples,
                 held_out: dict[str, Examples], steps: int, masks: Masks | None = None,
                 examples: int | None = None, warm_steps: int | None = None) -> None:
        self.model, self.device, self.train = model, device, train
        self.steps, self.masks = steps, masks
        #: MAP steps of an evaluation that starts from the previous one's latents
        self.warm_steps = steps if warm_steps is None else warm_steps
        #: each held-out set's latents at the last evaluation (warm starts for the next)
        self.warm: dict[str, torch.Tensor] = {}
        limit = examples or TRAIN_SAMPLE
        #: the training examples measured (all, or an evenly spread subset without masks)
        self.train_index = spread_subset(len(train), limit) if masks is None else None
        # held-out sets are cut the same way, unless masks are given per example of a set
        self.held_out = {name: self._cut(data, limit) for name, data in held_out.items()}
        self.pca: dict[str, float] = {}
        if held_out:
            pca = baseline_pca(model, train, device)  # fit on the whole training set
            scale = model.metric_scale
            measured = (train if self.train_index is None
                        else train.subset(self.train_index))
            for name, data in {"train": measured, **self.held_out}.items():
                self.pca[name] = float(pca.per_example_mse(data, device, scale).mean())

    def _cut(self, data: Examples, limit: int) -> Examples:
        if self.masks is not None and self.masks.fits(len(data)) and not self.masks.fits(
                len(data) + 1):  # one mask per example of this set: keep them aligned
            return data
        index = spread_subset(len(data), limit)
        return data if index is None else data.subset(index)

    def measure(self, latents: torch.Tensor) -> dict[str, float]:
        """The eval columns of a metrics row, for the generator as it is now."""
        where = "observed" if self.masks is not None else "all"
        train, masks, index = self.train, self.masks, self.train_index
        if index is not None:  # an evenly spread subset of a large training set
            train, latents = train.subset(index), latents[index.to(latents.device)]
        z = infer_latents(self.model, self.device, train, min(CURVE_REFINE_STEPS,
                                                              self.warm_steps),
                          masks=masks, start=latents)
        row = {"eval_train_mse": float(per_example_mse(
            self.model, self.device, train, z, masks=masks, where=where).nanmean())}
        for name, data in self.held_out.items():
            # Learning from occluded data: held-out sets are occluded the same way (when the
            # masks cover them) and measured on observed entries, like the training set.
            m = self.masks if self.masks is not None and self.masks.fits(len(data)) else None
            start = self.warm.get(name)
            z = infer_latents(self.model, self.device, data,
                              self.steps if start is None else self.warm_steps, masks=m,
                              start=start)
            self.warm[name] = z
            row[CURVE_COLUMNS[name]] = float(per_example_mse(
                self.model, self.device, data, z, masks=m,
                where="observed" if m is not None else "all").nanmean())
        if "test" in self.pca:  # the verdict's reference: PCA's held-out error at equal d
            row[PCA_TEST_COLUMN] = self.pca["test"]
        return {k: round(v, 8) for k, v in row.items()}

    def save_warm(self, path: Path, epoch: int) -> None:
        """Keep the held-out latents (with the epoch they belong to) for a resumed run."""
        state = {"epoch": epoch, "latents": {k: v.cpu() for k, v in self.warm.items()}}
        atomic_write(path, lambda fh: torch.save(state, fh))

    def load_warm(self, path: Path, epoch: int) -> None:
        """The held-out latents of the evaluation at ``epoch``, if they were kept and fit."""
        if not path.is_file():
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # damaged: the next evaluation starts from the mode
            return
        if int(state.get("epoch", -1)) != epoch:
            return
        for name, z in dict(state.get("latents", {})).items():
            data = self.held_out.get(name)
            if data is not None and len(z) == len(data):
                self.warm[name] = z.to(self.device)

    def plot(self, rows: list[dict[str, Any]], path: Path) -> None:
        write_chart(path, curves_png(rows, self.pca, self.model.metric_units))


class CurveObserver(Observer):
    """The error curves as a training observer: every ``eval_every`` epochs (and after the
    last) it adds the eval columns to the epoch's metrics row; it redraws ``curves.png`` then,
    after the first and the last epoch, and at most every ``REDRAW_SECONDS`` in between. Put
    it before the metrics writers, so that they record its columns."""

    def __init__(self) -> None:
        self.tracker: CurveTracker | None = None
        self.context: TrainingContext
        #: when curves.png was last drawn (``time.monotonic``), None before the first time
        self._drawn_at: float | None = None

    def on_start(self, event: StartEvent) -> None:
        c = self.context = event.context
        self.run = RunDir(c.run_dir)
        self.tracker = CurveTracker(c.model, c.device, c.data, dict(c.held_out),
                                    c.config.eval_steps, c.masks, c.config.eval_examples,
                                    c.config.eval_warm_steps)
        evaluated = [int(r["epoch"]) for r in c.rows if r.get("test_mse") not in (None, "")
                     or r.get("negative_mse") not in (None, "")]
        if evaluated:  # resumed: go on from the last evaluation's latents
            self.tracker.load_warm(self._warm_path, evaluated[-1])

    @property
    def _warm_path(self) -> Path:
        return self.run.checkpoints_dir / WARM_LATENTS

    def on_epoch(self, event: EpochEvent) -> None:
        assert self.tracker is not None, "on_start comes first"
        cfg = self.context.config
        evaluated = self.tracker.held_out and (event.epoch % cfg.eval_every == 0
                                               or event.epoch == cfg.epochs)
        if evaluated:
            start = time.perf_counter()
            event.row.update(self.tracker.measure(event.latents))
            event.row["eval_seconds"] = round(time.perf_counter() - start, 3)
            self.tracker.save_warm(self._warm_path, event.epoch)
        # drawing the chart takes about a third of a second: with short epochs, every epoch's
        # redraw would cost more than the evaluations
        now = time.monotonic()
        if (evaluated or event.epoch == cfg.epochs or self._drawn_at is None
                or now - self._drawn_at >= REDRAW_SECONDS):
            self.tracker.plot(event.rows, self.run.curves_path)
            self._drawn_at = now
        every = cfg.synthesis_every
        if every and (event.epoch % every == 0 or event.epoch == cfg.epochs):
            event.row.update(self._synthesis(event))
            write_chart(self.run.path / "synthesis.png", synthesis_png(event.rows))

    def _synthesis(self, event: EpochEvent) -> dict[str, float]:
        """The synthesis measures of the generator as it is (seeded: no training randomness
        is drawn, so a resumed run stays equal to an uninterrupted one)."""
        c = self.context
        test = c.held_out.get("test")
        generator = c.model.generator
        generator.eval()
        try:
            trained = Trained(c.model, event.latents, c.device, epoch=event.epoch,
                              training_data=c.data)
            found = synthesis_quality(trained, test if test is not None else c.data,
                                      "test" if test is not None else "train",
                                      reference_is_train=test is None, train=c.data,
                                      seed=c.config.seed)
        finally:
            generator.train()
        return {k: round(found[k], 4) for k in SYNTHESIS_COLUMNS}


__all__ = ["CurveObserver", "CurveTracker"]

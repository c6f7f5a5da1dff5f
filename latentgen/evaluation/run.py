"""A trained run, loaded from its directory alone: the object the Python API hands back.

    run = latentgen.load_run("runs/faces")
    x = run.synthesize(64)                        # a tensor of 64 samples
    rec = run.reconstruct("held_out/", n=16)      # originals, latents, f(Z), errors
    run.evaluate(test="held_out/", negative="other/")   # the dict `evaluate --json` prints

Methods compute and return tensors (on the CPU, in the modality's model range) and dicts;
the ``save_*`` methods write what they computed as files a person opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.evaluation import outputs, work
from latentgen.evaluation.defaults import (
    DEFAULT_NLL_SAMPLES,
    DEFAULT_SYNTHESIS_N,
    INFERENCE_BATCH,
    TRAIN_SAMPLE,
)
from latentgen.evaluation.inference import DEFAULT_SAMPLER, DEFAULT_STEPS
from latentgen.evaluation.work import Reconstruction, Source
from latentgen.model.generator import Generator
from latentgen.model.priors import Prior
from latentgen.model.tuning import tune
from latentgen.runtime.devices import resolve_device
from latentgen.runtime.speed import prepare_generator
from latentgen.training.assembly import Model
from latentgen.training.config import TrainConfig
from latentgen.training.rundir import RunDir


class Run:
    """A run directory's model: config (``config.toml``, the one stored copy), generator with
    the weights of ``checkpoints/last.pt``, prior and the latent bank of its training data."""

    def __init__(self, run: RunDir, model: Model, latents: torch.Tensor, epoch: int,
                 device: torch.device) -> None:
        self.run, self.model, self.latents = run, model, latents
        self.epoch, self.device = epoch, device
        self._ppca_fit: Any = None

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Run:
        run = RunDir(path)
        dev = resolve_device(device)
        state = run.load_checkpoint()
        config = run.read_config()
        run.check_unedited(config, state)
        try:
            model = Model.from_config(config)
            # the moving average of the weights (--ema) is the model a run hands on
            model.generator.load_state_dict(state.get("generator_ema") or state["generator"])
            model.prior.load_state_dict(state.get("prior") or {})
            model.observation.load_state_dict(state.get("observation") or {})
            latents = state["latents"]
            if tuple(latents.shape[1:]) != tuple(model.generator.latent_shape):
                raise ValueError(f"latents of shape {tuple(latents.shape)}")
            epoch = int(state["epoch"])
        except UserError:
            raise
        except (KeyError, TypeError, IndexError, ValueError, RuntimeError) as exc:
            said = " ".join(str(exc).split())  # state_dict errors run over many lines
            said = said if len(said) <= 300 else said[:297] + "..."
            raise UserError(f"{run.last_checkpoint} is not a usable latentgen checkpoint "
                            f"({type(exc).__name__}: {said}); give the folder of a training "
                            "run") from None
        model.generator.to(dev).eval()
        model.prior.to(dev)
        # inference runs in fp32, in the memory format and forms fastest here
        prepare_generator(model.generator)
        tune(model.generator, torch.randn((INFERENCE_BATCH, *model.generator.latent_shape),
                                          generator=torch.Generator().manual_seed(0)), dev)
        return cls(run, model, latents.to(dev), epoch, dev)

    # -- what it is ----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def config(self) -> TrainConfig:
        return self.model.config

    @property
    def generator(self) -> Generator:
        return self.model.generator

    @property
    def prior(self) -> Prior:
        return self.model.prior

    def metrics(self) -> list[dict[str, str]]:
        """The rows of ``metrics.csv``, one per epoch."""
        return self.run.read_metrics()

    def training_examples(self) -> Examples:
        """The run's training data, opened the way training opened it."""
        cfg = self.model.config
        data = self.model.open_data(cfg.data, "the run's training data (pass --data to use "
                                    "other data)")
        if len(data) != self.latents.shape[0]:
            raise UserError(f"the training data {cfg.data or '(embedded default)'} now holds "
                            f"{len(data)} examples but the run has {self.latents.shape[0]} "
                            "latents; pass --data to use other data")
        return data

    def examples(self, data: Source) -> Examples:
        """``data`` (a path, tensor or Dataset; None: the training data) as Examples."""
        return work.open_source(self, data, "data")[0]

    # -- the seed's verbs: tensors and dicts ---------------------------------------------
    def synthesize(self, n: int = 64, seed: int = 0, batch_size: int = 256,
                   scale: int = 1) -> torch.Tensor:
        """``n`` samples f(Z), Z ~ prior: a (n, *data_shape) tensor. ``scale`` K > 1 draws
        latent fields K times larger, which a fully convolutional generator (``--latent-field``
        pictures: a texture model) renders K times larger."""
        return torch.cat(list(self.synthesis_batches(n, seed, batch_size, scale)))

    def synthesis_batches(self, n: int, seed: int = 0, batch_size: int = 256,
                          scale: int = 1) -> Iterator[torch.Tensor]:
        """The same samples as ``synthesize``, a batch at a time (memory stays flat)."""
        return work.synthesis_batches(self, n, seed=seed, batch_size=batch_size, scale=scale)

    def reconstruct(self, data: Source = None, n: int | None = None,
                    infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                    mask: str | None = None) -> Reconstruction:
        """Latents inferred for the first ``n`` examples of ``data`` (all when None; training
        data starts from its banked latents) and their reconstructions; ``mask`` occludes
        them first (see ``Reconstruction``)."""
        return work.reconstruct(self, data, n=n, steps=infer_steps, sampler=sampler, mask=mask)

    def interpolate(self, a: Source, b: Source, steps: int = 8,
                    mode: str = "linear", infer_steps: int = DEFAULT_STEPS,
                    sampler: str = DEFAULT_SAMPLER) -> torch.Tensor:
        """f along the latent path between example ``a`` and example ``b`` (model-space
        tensors of the data shape, or batches of them): (steps + 1, *data_shape), or
        (pairs, steps + 1, *data_shape) for batches. Endpoints are f of the inferred latents."""
        if mode not in work.INTERPOLATION_MODES:
            raise UserError(f"mode must be linear or spherical, got '{mode}'")
        if steps < 1:
            raise UserError(f"steps must be at least 1, got {steps}")
        ea, eb = self.examples(a), self.examples(b)
        if len(ea) != len(eb):
            raise UserError(f"a holds {len(ea)} examples and b {len(eb)}; give as many of each")
        from latentgen.evaluation.inference import infer_latents

        za = infer_latents(self.model, self.device, ea, infer_steps, sampler)
        zb = infer_latents(self.model, self.device, eb, infer_steps, sampler)
        x = work.path_outputs(self, za, zb, steps, mode)
        single = isinstance(a, torch.Tensor) and tuple(a.shape) == tuple(
            self.generator.data_shape)
        return x[0] if single else x

    def interpolation_table(self, data: Source = None, steps: int = 8, pairs: int = 4,
                            infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                            mode: str = "linear") -> torch.Tensor:
        """Paths between consecutive examples of ``data``, originals at both ends: a
        (pairs, steps + 3, *data_shape) table (what `latentgen interpolate` writes)."""
        return work.interpolation_table(self, data, steps=steps, pairs=pairs,
                                        infer_steps=infer_steps, sampler=sampler, mode=mode)

    def evaluate(self, test: Source = None, negative: Source = None, train: bool = True,
                 infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                 mask: str | None = None, synthesis: bool = False,
                 reference: Source = None, n: int = DEFAULT_SYNTHESIS_N,
                 seed: int = 0, reconstruction: bool = True, nll: bool = False,
                 nll_samples: int = DEFAULT_NLL_SAMPLES, extractor: str | None = None,
                 extractor_weights: str | None = None, scale: int = 1,
                 train_examples: int | None = TRAIN_SAMPLE) -> dict[str, Any]:
        """Per-element reconstruction error of the training data (from its banked latents;
        ``train_examples`` of them, evenly spread, or None: all),
        ``test`` and ``negative`` beside PCA's at the same d: the dict `evaluate --json`
        prints (its keys: train, test, negative, pca, and regime when all three are there).
        ``synthesis=True`` adds ``"synthesis"``: ``synthesis_quality(reference, n, seed)``
        (``reference`` defaults to ``test`` when it is given, else the training data);
        ``reconstruction=False`` leaves the reconstruction errors out. ``nll=True`` adds
        ``"nll"``: for ``test`` and ``negative``, ``log_likelihood`` with ``nll_samples``.
        ``"latents"`` is always there: ``latent_gap()``, how far the banked latents are from
        the prior that synthesis draws from. ``scale``: of the synthesis measures
        (``synthesis_quality``)."""
        result: dict[str, Any] = {"latents": self.latent_gap(seed=seed)}
        if nll:
            held = {k: v for k, v in (("test", test), ("negative", negative)) if v is not None}
            if not held:
                raise UserError("--nll needs held-out data: give --test-data (and "
                                "--negative-data)")
            result["nll"] = {name: self.log_likelihood(source, samples=nll_samples,
                                                       steps=infer_steps, seed=seed)
                             for name, source in held.items()}
        if synthesis:
            ref = reference if reference is not None else ("test" if test is not None
                                                           else "train")
            result["synthesis"] = self.synthesis_quality(
                ref, n=n, seed=seed, test=test, extractor=extractor,
                extractor_weights=extractor_weights, scale=scale)
        if not reconstruction:
            return result
        return {**self._reconstruction_errors(test, negative, train, infer_steps, sampler,
                                              mask, train_examples), **result}

    def score(self, data: Source = None, infer_steps: int = DEFAULT_STEPS,
              sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
              score: str | None = None) -> dict[str, torch.Tensor]:
        """Anomaly scores of every example of ``data`` (None: the training data): a dict of
        (n,) tensors after inferring Z* (higher: more unlike the training data): ``score``
        (the one named ``score``, default ``anomaly.DEFAULT_SCORE``), ``joint`` = -log p(Y, Z*),
        its ``reconstruction`` and ``prior`` parts, ``norm`` = ||Z*||^2 / 2, the per-element
        ``mse`` and ``pca_residual``, PCA's error at the same d (the baseline score;
        ``latentgen.evaluation.anomaly``). `latentgen score` writes them as a CSV."""
        from latentgen.evaluation.anomaly import DEFAULT_SCORE

        return work.score(self, data, steps=infer_steps, sampler=sampler, mask=mask,
                          score=score or DEFAULT_SCORE)

    def latent_gap(self, seed: int = 0) -> dict[str, Any]:
        """How far the aggregate posterior (the banked latents of the training data) is from
        the prior: ``{"mean_distance", "cov_eig_min", "cov_eig_max", "bank_var",
        "prior_var", "kl", "mmd", "mmd_threshold", "n", "matches"}``
        (``latentgen.evaluation.latent_gap``). Prior samples are poor where they differ."""
        from latentgen.evaluation.latent_gap import latent_gap

        return latent_gap(self.latents, self.prior, seed=seed)

    def log_likelihood(self, data: Source, samples: int = DEFAULT_NLL_SAMPLES,
                       steps: int = DEFAULT_STEPS, seed: int = 0) -> dict[str, Any]:
        """The marginal log-likelihood of ``data`` by importance sampling around each
        example's posterior mode (``samples`` draws), beside probabilistic PCA's exact one at
        the same number of latent numbers: ``{"nll", "nll_se", "bits_per_dim",
        "bits_per_dim_se", "pca_nll", "pca_bits_per_dim", "n", "samples"}`` (nats per
        example; ``latentgen.evaluation.likelihood``)."""
        from latentgen.evaluation.likelihood import likelihood_summary

        if samples < 2:
            raise UserError(f"--nll-samples must be at least 2, got {samples}")
        if self.model.observation.operator is not None:
            raise UserError("--nll is not available for a run learned from indirect "
                            "observations (--observe); compare it by recovery error")
        if not self.prior.normalized:
            raise UserError(f"--nll needs a prior with a normalised density; the run's "
                            f"'{self.config.prior}' prior is known up to its constant only "
                            "(compare such runs by --synthesis or by reconstruction error)")
        examples, _ = work.open_source(self, data, "--test-data")
        return likelihood_summary(self.model, self._ppca(), examples, self.device, samples,
                                  steps, seed)

    def _ppca(self) -> Any:
        """Probabilistic PCA of the training data at the generator's number of latent
        numbers, fit once per loaded run (every held-out set is compared with the same)."""
        import math

        from latentgen.evaluation.synthesis import fit_ppca

        if self._ppca_fit is None:
            self._ppca_fit = fit_ppca(self.training_examples(),
                                      int(math.prod(self.generator.latent_shape)), self.device)
        return self._ppca_fit

    def synthesis_quality(self, reference: Source = "train", n: int = DEFAULT_SYNTHESIS_N,
                          seed: int = 0, test: Source = None, extractor: str | None = None,
                          extractor_weights: str | None = None, scale: int = 1
                          ) -> dict[str, Any]:
        """How far ``n`` prior samples are from ``reference`` ("train", "test" for ``test``
        or the run's --test-data, or data: a path, a tensor, a Dataset), beside probabilistic
        PCA at the same number of latent numbers and the floor of real data: ``{"swd",
        "swd_levels", "swd_pca", "swd_floor", "rel", "n", "reference"}``
        (``latentgen.evaluation.synthesis``); with ``extractor`` (e.g. "inception") also
        FID and KID. ``scale`` K > 1 measures samples K times larger (``synthesize(scale=K)``)
        against the reference and training data opened K times larger (a texture model:
        larger crops of its pictures)."""
        from latentgen.evaluation.synthesis import synthesis_quality

        if scale != 1:
            return self._synthesis_quality_at_scale(reference, n, seed, test, extractor,
                                                    extractor_weights, scale)
        if isinstance(reference, str) and reference == "train":
            return synthesis_quality(self, self.training_examples(), "train", n, seed,
                                     reference_is_train=True, extractor=extractor,
                                     extractor_weights=extractor_weights)
        if isinstance(reference, str) and reference == "test":
            test = test if test is not None else self.config.test_data
            if test is None:
                raise UserError("--reference test needs held-out data: give --test-data (or "
                                "train with it), or use --reference train or a path")
            data, _ = work.open_source(self, test, "--test-data")
            return synthesis_quality(self, data, "test", n, seed, extractor=extractor,
                                     extractor_weights=extractor_weights)
        data, _ = work.open_source(self, reference, "--reference")
        name = str(reference) if isinstance(reference, (str, Path)) else "data"
        return synthesis_quality(self, data, name, n, seed, extractor=extractor,
                                 extractor_weights=extractor_weights)

    def _synthesis_quality_at_scale(self, reference: Source, n: int, seed: int, test: Source,
                                    extractor: str | None, extractor_weights: str | None,
                                    scale: int) -> dict[str, Any]:
        from latentgen.evaluation.synthesis import synthesis_quality

        options = work.at_scale(self, scale)[0]
        cfg = self.model.config
        train = self.model.open_data(cfg.data, "the run's training data", options)
        if isinstance(reference, str) and reference == "train":
            return synthesis_quality(self, train, "train", n, seed, reference_is_train=True,
                                     extractor=extractor, extractor_weights=extractor_weights,
                                     scale=scale)
        if isinstance(reference, str) and reference == "test":
            reference = test if test is not None else cfg.test_data
            if reference is None:
                raise UserError("--reference test needs held-out data: give --test-data (or "
                                "train with it), or use --reference train or a path")
        if not isinstance(reference, (str, Path)):
            raise UserError("--scale measures against data given by path (or train / test), "
                            "opened at the larger size; not tensors or datasets")
        data = self.model.open_data(str(reference), "--reference", options)
        return synthesis_quality(self, data, str(reference), n, seed, extractor=extractor,
                                 extractor_weights=extractor_weights, train=train, scale=scale)

    def _reconstruction_errors(self, test: Source, negative: Source, train: bool,
                               infer_steps: int, sampler: str, mask: str | None,
                               train_examples: int | None = TRAIN_SAMPLE) -> dict[str, Any]:
        sets: dict[str, Source] = {"train": None} if train else {}
        if test is not None:
            sets["test"] = test
        if negative is not None:
            sets["negative"] = negative
        if not sets:
            raise UserError("nothing to evaluate: keep train=True or give test or negative")
        return work.evaluate(self, sets, steps=infer_steps, sampler=sampler, mask=mask,
                             train_examples=train_examples)

    # -- files ---------------------------------------------------------------------------
    def save_synthesis(self, out: str | Path, n: int = 64, seed: int = 0,
                       batch_size: int = 256, fmt: str | None = None,
                       on_progress: Callable[[int, int], None] | None = None,
                       scale: int = 1) -> list[Path]:
        """``n`` samples written as files (streamed, a batch at a time) plus a grid."""
        return outputs.write_synthesis(self, n, out, seed=seed, batch_size=batch_size,
                                       on_progress=on_progress, fmt=fmt, scale=scale)

    def save_scores(self, scores: dict[str, torch.Tensor], out: str | Path,
                    names: list[str] | None = None) -> Path:
        """``score``'s dict as the CSV file ``out``, one row per example (with its file name
        from ``names``, e.g. ``run.examples(path).names``), written atomically."""
        return outputs.write_scores(scores, out, names)

    def save_reconstruction(self, rec: Reconstruction, out: str | Path,
                            fmt: str | None = None) -> list[Path]:
        return outputs.write_reconstruction(self, rec, out, fmt=fmt)

    def save_interpolation(self, table: torch.Tensor, out: str | Path,
                           fmt: str | None = None) -> list[Path]:
        return outputs.write_interpolation(self, table, out, fmt=fmt)

    def save_examples(self, x: torch.Tensor, out: str | Path, prefix: str = "example",
                      fmt: str | None = None) -> list[Path]:
        """Any batch of model-space examples (e.g. ``synthesize``'s) as files."""
        model = self.model
        return model.modality.save_examples(x.cpu(), outputs.output_folder(out), prefix,
                                            model.options, fmt=fmt)

    def __repr__(self) -> str:
        cfg = self.config
        return (f"Run({str(self.path)!r}, modality={cfg.modality!r}, epoch={self.epoch}, "
                f"latent_dim={cfg.latent_dim}, device={str(self.device)!r})")

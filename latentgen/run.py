"""A trained run, loaded from its directory alone: the object the Python API hands back.

    run = latentgen.load_run("runs/faces")
    x = run.synthesize(64)                        # a tensor of 64 samples
    rec = run.reconstruct("held_out/", n=16)      # originals, latents, f(Z), errors
    run.evaluate(test_data="held_out/", negative_data="other/")   # what `evaluate --json` prints

A ``Run`` is a ``Trained`` model with the verbs as methods over the measures
(``latentgen.measures``) and the writers (``latentgen.outputs``), which take the trained model,
never the run. Methods compute and return tensors (on the CPU, in the modality's model range)
and dicts; the ``save_*`` methods write what they computed as files a person opens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.config import TrainConfig
from latentgen.assembly.model import Model
from latentgen.assembly.rundir import RunDir
from latentgen.assembly.trained import Source, Trained
from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.measures import interpolation, latent_gap, likelihood, scores, synthesis
from latentgen.measures.anomaly import DEFAULT_SCORE
from latentgen.measures.catalog import default_measures, run_measures
from latentgen.measures.defaults import (
    DEFAULT_NLL_SAMPLES,
    DEFAULT_POSTERIOR_SAMPLES,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    DEFAULT_SYNTHESIS_N,
    INFERENCE_BATCH,
)
from latentgen.measures.inference import infer_latents
from latentgen.measures.reconstruction import Reconstruction, reconstruct
from latentgen.measures.registry import Request
from latentgen.model.generator import Generator
from latentgen.model.priors import Prior
from latentgen.model.tuning import tune
from latentgen.outputs import export, files
from latentgen.runtime.devices import resolve_device
from latentgen.runtime.speed import prepare_generator


class Run(Trained):
    """A run directory's model: config (``config.toml``, the one stored copy), generator with
    the weights of ``checkpoints/last.pt``, prior and the latent bank of its training data."""

    def __init__(self, run: RunDir, model: Model, latents: torch.Tensor, epoch: int,
                 device: torch.device) -> None:
        super().__init__(model, latents, device, epoch=epoch, run_dir=run)
        #: the run directory (``config.toml``, checkpoints, metrics) this model was loaded from;
        #: for an exported folder (``export``), that folder (its metrics.csv, report.html)
        self.run_dir: RunDir = run
        #: whether it was loaded from an exported folder rather than a run directory
        self.exported = export.is_export(run.path) and not run.last_checkpoint.exists()

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Run:
        """The run in ``path``: a run directory, an exported folder (``export``) or
        ``hf://OWNER/NAME``, an export on the Hugging Face Hub (needs ``latentgen[hub]``)."""
        if export.is_hub(path):
            path = export.hub_download(path)
        run = RunDir(path)
        dev = resolve_device(device)
        source = run.last_checkpoint
        if export.is_export(run.path) and not source.exists():
            config, state = export.read_export(run.path)  # safetensors and JSON: no pickle
            source = run.path / export.WEIGHTS
        else:
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
            raise UserError(f"{source} is not a usable latentgen checkpoint "
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
        return self.run_dir.path

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
        return self.run_dir.read_metrics()

    def examples(self, data: Source) -> Examples:
        """``data`` (a path, tensor or Dataset; None: the training data) as Examples."""
        return self.open_source(data, "`data`")[0]

    # -- the seed's verbs: tensors and dicts ---------------------------------------------
    def synthesize(self, n: int = 64, seed: int = 0, batch_size: int = 256,
                   scale: int = 1) -> torch.Tensor:
        """``n`` samples f(Z), Z ~ prior: a (n, *data_shape) tensor. ``scale`` K > 1 draws
        latent fields K times larger, which a fully convolutional generator (``--latent-field``
        pictures: a texture model) renders K times larger. ``synthesis_batches`` gives the
        same samples a batch at a time (memory stays flat)."""
        return torch.cat(list(self.synthesis_batches(n, seed, batch_size, scale)))

    def reconstruct(self, data: Source = None, n: int | None = None,
                    infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                    mask: str | None = None,
                    posterior_samples: int = DEFAULT_POSTERIOR_SAMPLES) -> Reconstruction:
        """Latents inferred for the first ``n`` examples of ``data`` (all when None; training
        data starts from its banked latents) and their reconstructions; ``mask`` occludes
        them first (see ``Reconstruction``), and the holes are filled with the mean of
        ``posterior_samples`` posterior draws (0: f at the MAP latent)."""
        return reconstruct(self, data, n=n, steps=infer_steps, sampler=sampler, mask=mask,
                           posterior_samples=posterior_samples)

    def interpolate(self, a: Source, b: Source, steps: int = 8,
                    mode: str = "linear", infer_steps: int = DEFAULT_STEPS,
                    sampler: str = DEFAULT_SAMPLER) -> torch.Tensor:
        """f along the latent path between example ``a`` and example ``b`` (model-space
        tensors of the data shape, or batches of them): (steps + 1, *data_shape), or
        (pairs, steps + 1, *data_shape) for batches. Endpoints are f of the inferred latents."""
        if mode not in interpolation.INTERPOLATION_MODES:
            raise UserError(f"`mode` must be linear or spherical, got '{mode}'")
        if steps < 1:
            raise UserError(f"`steps` must be at least 1, got {steps}")
        ea, eb = self.examples(a), self.examples(b)
        if len(ea) != len(eb):
            raise UserError(f"a holds {len(ea)} examples and b {len(eb)}; give as many of each")
        za = infer_latents(self.model, self.device, ea, infer_steps, sampler)
        zb = infer_latents(self.model, self.device, eb, infer_steps, sampler)
        x = interpolation.path_outputs(self, za, zb, steps, mode)
        single = isinstance(a, torch.Tensor) and tuple(a.shape) == tuple(
            self.generator.data_shape)
        return x[0] if single else x

    def interpolation_table(self, data: Source = None, steps: int = 8, pairs: int = 4,
                            infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                            mode: str = "linear") -> torch.Tensor:
        """Paths between consecutive examples of ``data``, originals at both ends: a
        (pairs, steps + 3, *data_shape) table (what `latentgen interpolate` writes)."""
        return interpolation.interpolation_table(self, data, steps=steps, pairs=pairs,
                                                 infer_steps=infer_steps, sampler=sampler,
                                                 mode=mode)

    def evaluate(self, measures: Sequence[str] | None = None, *,
                 on_measure: Callable[[str, float], None] | None = None, **request: Any
                 ) -> dict[str, Any]:
        """The named measures (``latentgen.measure_names()``; default: reconstruction and
        latents), each a dict merged into the one returned, which `evaluate --json` prints.
        ``request``: the fields of ``latentgen.Request`` (``test_data``, ``negative_data``,
        ``infer_steps``, ``sampler``, ``mask``, ``train_examples``, ``reference``, ``n``,
        ``seed``, ``scale``, ``extractor``, ``extractor_weights``, ``nll_samples``,
        ``options``); ``test`` and ``negative`` are taken for ``test_data`` and
        ``negative_data``. ``on_measure(name, seconds)`` is called after each measure.

        reconstruction: the per-element error of the training data (from its banked
        latents; ``train_examples`` of them, evenly spread, or None: all), ``test_data`` and
        ``negative_data`` beside PCA's at the same d (keys train, test, negative, pca, anomaly
        with both held-out sets, regime with all three); latents: ``latent_gap()``;
        synthesis: ``synthesis_quality(reference, n, seed)`` (``reference`` defaults to the
        test data when given, else the training data); nll: ``log_likelihood`` of the
        held-out sets."""
        for old, new in (("test", "test_data"), ("negative", "negative_data")):
            if old in request:
                request[new] = request.pop(old)
        try:
            asked = Request(**request)
        except TypeError:
            known = ", ".join(f.name for f in dataclasses.fields(Request))
            unknown = sorted(set(request) - {f.name for f in dataclasses.fields(Request)})
            raise UserError(f"evaluate: no option {', '.join(unknown)}; it takes {known}"
                            ) from None
        return run_measures(self, default_measures() if measures is None else measures,
                            asked, on_measure)

    def score(self, data: Source = None, infer_steps: int = DEFAULT_STEPS,
              sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
              score: str | None = None) -> dict[str, torch.Tensor]:
        """Anomaly scores of every example of ``data`` (None: the training data): a dict of
        (n,) tensors after inferring Z* (higher: more unlike the training data): ``score``
        (the one named ``score``, default ``anomaly.DEFAULT_SCORE``), ``joint`` = -log p(Y, Z*),
        its ``reconstruction`` and ``prior`` parts, ``norm`` = ||Z*||^2 / 2, the per-element
        ``mse`` and ``pca_residual``, PCA's error at the same d (the baseline score;
        ``latentgen.measures.anomaly``). `latentgen score` writes them as a CSV."""
        return scores.score(self, data, steps=infer_steps, sampler=sampler, mask=mask,
                            score=score or DEFAULT_SCORE)

    def latent_gap(self, seed: int = 0) -> dict[str, Any]:
        """How far the aggregate posterior (the banked latents of the training data) is from
        the prior: ``{"mean_distance", "cov_eig_min", "cov_eig_max", "bank_var",
        "prior_var", "kl", "mmd", "mmd_threshold", "n", "matches"}``
        (``latentgen.measures.latent_gap``). Prior samples are poor where they differ."""
        return latent_gap.latent_gap(self.latents, self.prior, seed=seed)

    def log_likelihood(self, data: Source, samples: int = DEFAULT_NLL_SAMPLES,
                       steps: int = DEFAULT_STEPS, seed: int = 0) -> dict[str, Any]:
        """The marginal log-likelihood of ``data`` by importance sampling around each
        example's posterior mode (``samples`` draws), beside probabilistic PCA's exact one at
        the same number of latent numbers: ``{"nll", "nll_se", "bits_per_dim",
        "bits_per_dim_se", "pca_nll", "pca_bits_per_dim", "n", "samples"}`` (nats per
        example; ``latentgen.measures.likelihood``)."""
        return likelihood.log_likelihood(self, data, samples=samples, steps=steps, seed=seed)

    def synthesis_quality(self, reference: Source = "train", n: int = DEFAULT_SYNTHESIS_N,
                          seed: int = 0, test: Source = None, extractor: str | None = None,
                          extractor_weights: str | None = None, scale: int = 1
                          ) -> dict[str, Any]:
        """How far ``n`` prior samples are from ``reference`` ("train", "test" for ``test``
        or the run's --test-data, or data: a path, a tensor, a Dataset), beside probabilistic
        PCA at the same number of latent numbers and the floor of real data: ``{"swd",
        "swd_levels", "swd_pca", "swd_floor", "rel", "n", "reference"}``
        (``latentgen.measures.synthesis``); with ``extractor`` (e.g. "inception") also
        FID and KID. ``scale`` K > 1 measures samples K times larger (``synthesize(scale=K)``)
        against the reference and training data opened K times larger (a texture model:
        larger crops of its pictures)."""
        return synthesis.quality_against(self, reference, n=n, seed=seed, test=test,
                                         extractor=extractor,
                                         extractor_weights=extractor_weights, scale=scale)

    # -- files ---------------------------------------------------------------------------
    def export(self, out: str | Path) -> Path:
        """The model as a portable folder ``out``: ``model.safetensors`` (generator, prior,
        observation, latent bank), ``config.json``, a model card ``README.md`` and a sample
        grid; ``latentgen.load_run(out)`` loads it back, without pickle
        (``latentgen.outputs.export``). Written whole or not at all."""
        return export.export_run(self, out)

    def push_to_hub(self, repo_id: str, private: bool = False, token: str | None = None
                    ) -> str:
        """Export the model and upload it to the Hugging Face Hub repository ``repo_id``
        (OWNER/NAME); ``latentgen.load_run("hf://OWNER/NAME")`` loads it. Needs
        ``latentgen[hub]``. Returns the repository's address."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="latentgen-push-") as tmp:
            folder = export.export_run(self, Path(tmp) / "export")
            return export.push_export(folder, repo_id, private=private, token=token)

    def save_synthesis(self, out: str | Path, n: int = 64, seed: int = 0,
                       batch_size: int = 256, fmt: str | None = None,
                       on_progress: Callable[[int, int], None] | None = None,
                       scale: int = 1, shard: str | tuple[int, int] | None = None
                       ) -> list[Path]:
        """``n`` samples written as files (streamed, a batch at a time) plus a grid, each
        file whole or not at all, listed in ``manifest.jsonl`` as it is written: running the
        same call again after a kill writes only what is missing. ``shard``: ``"K/N"``,
        ``"auto"`` (job-array variables) or None, see ``latentgen.outputs.files.
        write_synthesis``."""
        return files.write_synthesis(self, n, out, seed=seed, batch_size=batch_size,
                                       on_progress=on_progress, fmt=fmt, scale=scale,
                                       shard=shard)

    def save_scores(self, scores: dict[str, torch.Tensor], out: str | Path,
                    names: list[str] | None = None) -> Path:
        """``score``'s dict as the CSV file ``out``, one row per example (with its file name
        from ``names``, e.g. ``run.examples(path).names``), written atomically."""
        return files.write_scores(scores, out, names)

    def save_reconstruction(self, rec: Reconstruction, out: str | Path,
                            fmt: str | None = None) -> list[Path]:
        return files.write_reconstruction(self, rec, out, fmt=fmt)

    def save_interpolation(self, table: torch.Tensor, out: str | Path,
                           fmt: str | None = None) -> list[Path]:
        return files.write_interpolation(self, table, out, fmt=fmt)

    def save_examples(self, x: torch.Tensor, out: str | Path, prefix: str = "example",
                      fmt: str | None = None) -> list[Path]:
        """Any batch of model-space examples (e.g. ``synthesize``'s) as files."""
        model = self.model
        return model.modality.save_examples(x.cpu(), files.output_folder(out), prefix,
                                            model.options, fmt=fmt)

    def __repr__(self) -> str:
        cfg = self.config
        return (f"Run({str(self.path)!r}, modality={cfg.modality!r}, epoch={self.epoch}, "
                f"latent_dim={cfg.latent_dim}, device={str(self.device)!r})")

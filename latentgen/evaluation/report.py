"""`latentgen report`: one self-contained HTML page about a run, opened straight from disk.

Everything the seed judges a model by, on one page: the configuration, the error curves, the
fixed-noise sample grids over epochs, fresh samples, reconstructions, interpolations (linear
and spherical) and the evaluation table with the PCA baseline. Pictures, sounds and videos are
embedded as data URIs, so the file can be mailed or archived alone; the modality's writers make
them, and each is shown by its file type (image, audio player or video player).
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from latentgen.errors import UserError
from latentgen.evaluation.curves import curves_png
from latentgen.evaluation.defaults import DEFAULT_SYNTHESIS_N
from latentgen.evaluation.inference import DEFAULT_STEPS
from latentgen.evaluation.run import Run
from latentgen.runtime.files import atomic_write
from latentgen.version import __version__

MEDIA = {".png": ("img", "image/png"), ".gif": ("img", "image/gif"),
         ".jpg": ("img", "image/jpeg"), ".wav": ("audio", "audio/wav"),
         ".flac": ("audio", "audio/flac"), ".mp4": ("video", "video/mp4"),
         ".webm": ("video", "video/webm")}
MAX_SAMPLE_GRIDS = 12

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ccc; padding: .25em .7em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .4em; vertical-align: top; }
figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; image-rendering: pixelated; }
.note { color: #555; font-size: .9em; }
"""


def media_tag(path: Path, caption: str) -> str:
    """An embedded <img>, <audio> or <video> for a file a writer made ('' for other types)."""
    kind = MEDIA.get(path.suffix.lower())
    if kind is None:
        return ""
    tag, mime = kind
    uri = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    alt = html.escape(caption, quote=True)
    if tag == "img":
        body = f'<img src="{uri}" alt="{alt}">'
    else:
        body = f'<{tag} controls preload="metadata" src="{uri}"></{tag}>'
    return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _media(paths: Iterable[Path], caption: str) -> str:
    return "".join(media_tag(p, f"{caption} ({p.suffix[1:]})") for p in paths)


def _table(header: list[str], rows: list[list[Any]], fmt: Any = None) -> str:
    fmt = fmt or _fmt
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.5f}" if isinstance(v, float) else str(v)


def report_evaluation(trained: Run, test: str | None = None, negative: str | None = None,
                      steps: int = DEFAULT_STEPS,
                      synthesis_n: int = DEFAULT_SYNTHESIS_N) -> dict[str, Any]:
    """What the report's tables show: ``trained.evaluate`` of the training data, ``test`` and
    ``negative`` (the run's own held-out data when they are None and it is still there), with
    the synthesis measures against ``test`` (else the training data)."""
    cfg = trained.model.config
    test = test if test is not None else _existing(cfg.test_data)
    negative = negative if negative is not None else _existing(cfg.negative_data)
    return trained.evaluate(test=test, negative=negative, infer_steps=steps, synthesis=True,
                            n=synthesis_n)


def _synthesis_section(found: dict[str, Any]) -> str:
    """The synthesis measures against the held-out data (else the training data)."""
    rows = [[name, found[key], *found[key + "_levels"]] for name, key in
            (("model (prior samples)", "swd"), ("PCA (probabilistic, same d)", "swd_pca"),
             ("floor (training examples)", "swd_floor"))]
    levels = [f"level {i + 1}" for i in range(len(found["swd_levels"]))]
    rel = found["rel"]
    return ("<h2>Synthesis, measured</h2>" + _table(["samples", "SWD (x 1e3)", *levels], rows,
                                          fmt=lambda v: f"{v:.2f}" if isinstance(v, float)
                                          else str(v)) +
            f'<p class="note">Sliced Wasserstein distance of {found["n"]} examples from '
            f'{html.escape(str(found["reference"]))} (levels from the finest to the coarsest); '
            f"rel = (model - floor) / (PCA - floor) = "
            f"{f'{rel:.3f}' if rel == rel else 'undefined'}: 0 is as close as real data, 1 "
            "no closer than PCA.</p>")


def build_report(trained: Run, test: str | None = None, negative: str | None = None,
                 steps: int = DEFAULT_STEPS, out: Path | None = None,
                 synthesis_n: int = DEFAULT_SYNTHESIS_N,
                 evaluation: dict[str, Any] | None = None) -> Path:
    """Write the report of ``trained`` (default: RUN/report.html) and return its path.
    ``evaluation``: ``report_evaluation(trained, test, negative, steps, synthesis_n)`` when the
    caller has it already (the CLI prints its tables), else it is computed here."""
    run, model, cfg = trained.run, trained.model, trained.model.config
    out = Path(out) if out is not None else run.report_path
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the path of an .html file")
    try:  # fail before the work, not after it
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out.parent, prefix=".latentgen-", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror or exc}); give a "
                        "writable path") from None
    test = test if test is not None else _existing(cfg.test_data)
    negative = negative if negative is not None else _existing(cfg.negative_data)
    sets: dict[str, str | None] = {"train": None}
    if test:
        sets["test"] = test
    if negative:
        sets["negative"] = negative
    units = model.metric_units
    sections: list[str] = []

    config_rows = [[k, v] for k, v in cfg.to_dict().items() if k != "modality_options"]
    config_rows += [[f"{model.modality.name}.{k}", v] for k, v in cfg.modality_options.items()]
    sections.append("<h2>Configuration</h2>" + _table(["setting", "value"], config_rows,
                                                              fmt=str))

    with tempfile.TemporaryDirectory(prefix="latentgen-report-") as tmp_name:
        tmp = Path(tmp_name)
        result = evaluation if evaluation is not None else report_evaluation(
            trained, sets.get("test"), sets.get("negative"), steps, synthesis_n)
        rows = []
        for name in sets:
            r = result[name]
            pca = result["pca"][name]
            rows.append([name, r["n"], r["mse"], pca, r["mse"] / pca if pca > 0 else "-"])
        text = _table(["set", "examples", "model MSE", "PCA MSE", "model / PCA"], rows)
        text += (f'<p class="note">{html.escape(units)}. train: MAP latents refined '
                 f"from the banked ones after {trained.epoch} epochs; others: {steps} MAP steps "
                 "from the prior's mode. "
                 "PCA keeps as many components as the generator has latent numbers.</p>")
        if "regime" in result:
            text += (f"<p><b>Regime: {html.escape(result['regime']['verdict'])}</b> "
                     f'<span class="note">({html.escape(result["regime"]["rule"])})</span></p>')
        if "anomaly" in result:
            a = result["anomaly"]
            text += (f"<p>Telling the negative set from the held-out one by the score "
                     f"-log p(Y, Z*): AUROC {a['auroc']:.3f}, AUPRC {a['auprc']:.3f}; by the PCA "
                     f"residual: AUROC {a['pca_auroc']:.3f}, AUPRC {a['pca_auprc']:.3f} "
                     f"(chance AUPRC {a['chance_auprc']:.3f}).</p>")
        gap = result["latents"]
        text += (f"<p>Banked latents {'follow' if gap['matches'] else 'differ from'} the prior: "
                 f"mean {gap['mean_distance']:.2f} prior standard deviations off, covariance "
                 f"eigenvalues {gap['cov_eig_min']:.2f} to {gap['cov_eig_max']:.2f} of the "
                 f"prior's, KL {gap['kl']:.2f} nats, MMD<sup>2</sup> {gap['mmd']:.4f} (noise "
                 f"level {gap['mmd_threshold']:.4f}).</p>")
        sections.append("<h2>Reconstruction error</h2>" + text)
        sections.append(_synthesis_section(result["synthesis"]))

        metrics = run.read_metrics()
        if metrics:
            curves = tmp / "curves.png"
            curves.write_bytes(curves_png(metrics, result["pca"], units))
            last = metrics[-1]
            sections.append("<h2>Error curves</h2>" + media_tag(curves, "per-element error over "
                            "epochs; dashed: PCA at the same d") +
                            _table(list(last), [list(last.values())]))

        grids = sorted(p for p in run.samples_dir.glob("epoch_*") if p.suffix in MEDIA)
        epochs = sorted({p.stem for p in grids})
        if len(epochs) > MAX_SAMPLE_GRIDS:  # evenly spaced, always with the last
            step = len(epochs) / MAX_SAMPLE_GRIDS
            epochs = [epochs[int(i * step)] for i in range(MAX_SAMPLE_GRIDS - 1)] + [epochs[-1]]
        shown = "".join(_media([p for p in grids if p.stem == e],
                               f"epoch {int(e.split('_')[1])}") for e in epochs)
        sections.append("<h2>Samples over training (fixed noise)</h2>" + shown)

        synth = trained.save_synthesis(tmp / "synth", 16, seed=0)
        sections.append("<h2>Synthesis: Z ~ prior</h2>" +
                        _media([p for p in synth if p.parent == tmp / "synth" and
                                p.stem == "grid"], "16 samples"))
        recon = trained.save_reconstruction(trained.reconstruct(None, n=16, infer_steps=steps),
                                            tmp / "recon")
        text = _media(_grid_files(recon), "training examples | reconstructions")
        if test:
            rt = trained.save_reconstruction(trained.reconstruct(test, n=16, infer_steps=steps),
                                             tmp / "recon-test")
            text += _media(_grid_files(rt), "held-out examples | reconstructions")
        sections.append("<h2>Reconstruction</h2>" + text)
        text = "" if trained.latents.shape[0] >= 2 else (
            "<p class='note'>a single training example: nothing to interpolate</p>")
        modes = ("linear", "spherical") if trained.latents.shape[0] >= 2 else ()
        for mode in modes:
            table = trained.interpolation_table(None, steps=8, pairs=4, mode=mode)
            res = trained.save_interpolation(table, tmp / f"interp-{mode}")
            text += _media(_grid_files(res), f"{mode} interpolation, originals at both ends")
        sections.append("<h2>Interpolation</h2>" + text)

        title = f"latentgen report — {html.escape(str(run.path))}"
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
                f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
                f"<p class='note'>modality {html.escape(model.modality.name)}, "
                f"{trained.epoch} epochs, d = {cfg.latent_dim}, latentgen {__version__}</p>"
                + "".join(sections) + "</body></html>")
    atomic_write(out, lambda fh: fh.write(page), mode="w")
    return out


def _grid_files(files: list[Path]) -> list[Path]:
    return [p for p in files if p.stem == "grid"]


def _existing(path: str | None) -> str | None:
    """The run's own held-out data, when it is still there (or embedded)."""
    return path if path and (path.startswith("builtin:") or Path(path).exists()) else None

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentgen.assembly.trained import Trained
from latentgen.errors import UserError
from latentgen.measures.catalog import measure, report_measures, run_measures
from latentgen.measures.defaults import DEFAULT_STEPS, DEFAULT_SYNTHESIS_N
from latentgen.measures.interpolation import interpolation_table
from latentgen.measures.reconstruction import reconstruct
from latentgen.measures.registry import Block, Line, Request, Table
from latentgen.outputs.curves import curves_png
from latentgen.outputs.files import write_interpolation, write_reconstruction, write_synthesis
from latentgen.runtime.files import atomic_write
from latentgen.runtime.html import html_table
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


def blocks_html(title: str, blocks: list[Block]) -> str:
    """A measure's section when it has no ``html`` of its own: its tables and lines under
    its title."""
    parts = [f"<h2>{html.escape(title)}</h2>"]
    for block in blocks:
        if isinstance(block, Table):
            parts.append(f"<h3>{html.escape(block.title)}</h3>" +
                         html_table(list(block.header), [list(r) for r in block.rows], fmt=str))
        elif isinstance(block, Line):
            css = ' class="note"' if block.dim else ""
            parts.append(f"<p{css}>{html.escape(block.text)}</p>")
    return "".join(parts)


@dataclass(frozen=True)
class Report:
    """A written report: its file, the evaluation it shows and what was measured."""

    path: Path
    evaluation: dict[str, Any]
    request: Request


def report_request(trained: Trained, test: str | None = None, negative: str | None = None,
                   steps: int = DEFAULT_STEPS, synthesis_n: int = DEFAULT_SYNTHESIS_N
                   ) -> Request:
    """What the report measures: the training data, ``test`` and ``negative`` (the run's own
    held-out data when they are None and it is still there), with the synthesis measures
    against ``test`` (else the training data)."""
    cfg = trained.model.config
    test = test if test is not None else _existing(cfg.test_data)
    negative = negative if negative is not None else _existing(cfg.negative_data)
    return Request(test_data=test, negative_data=negative, infer_steps=steps, n=synthesis_n)


def report_evaluation(trained: Trained, request: Request) -> dict[str, Any]:
    """The measures the report shows (every registered one with ``report=True``)."""
    return run_measures(trained, report_measures(), request)


def build_report(trained: Trained, request: Request, out: Path | None = None,
                 evaluation: dict[str, Any] | None = None) -> Path:
    """Write the report of ``trained`` (a run loaded from its directory) for ``request``
    (``report_request``) to ``out`` (default: RUN/report.html) and return its path.
    ``evaluation``: ``report_evaluation(trained, request)`` when the caller has it already
    (the CLI prints its tables), else it is computed here."""
    run, model, cfg = trained.run_dir, trained.model, trained.model.config
    if run is None:
        raise UserError("a report is of a run loaded from its folder (latentgen.load_run)")
    out = Path(out) if out is not None else run.report_path
    if out.is_dir():
        raise UserError(f"`out` {out} is a folder; give the path of an .html file")
    try:  # fail before the work, not after it
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out.parent, prefix=".latentgen-", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(f"`out` {out}: cannot write there ({exc.strerror or exc}); give a "
                        "writable path") from None
    test, steps = request.test_data, request.infer_steps
    units = model.metric_units
    sections: list[str] = []

    config_rows = [[k, v] for k, v in cfg.to_dict().items() if k != "modality_options"]
    config_rows += [[f"{model.modality.name}.{k}", v] for k, v in cfg.modality_options.items()]
    sections.append("<h2>Configuration</h2>" + html_table(["setting", "value"], config_rows,
                                                                  fmt=str))

    with tempfile.TemporaryDirectory(prefix="latentgen-report-") as tmp_name:
        tmp = Path(tmp_name)
        result = evaluation if evaluation is not None else report_evaluation(trained, request)
        for name in report_measures():
            m = measure(name)
            sections.append(m.html(result, trained, request) if m.html is not None else
                            blocks_html(m.title, m.blocks(result, trained, request)))

        metrics = run.read_metrics()
        if metrics:
            curves = tmp / "curves.png"
            curves.write_bytes(curves_png(metrics, result["pca"], units))
            last = metrics[-1]
            sections.append("<h2>Error curves</h2>" + media_tag(curves, "per-element error over "
                            "epochs; dashed: PCA at the same d") +
                            html_table(list(last), [list(last.values())]))

        grids = sorted(p for p in run.samples_dir.glob("epoch_*") if p.suffix in MEDIA)
        epochs = sorted({p.stem for p in grids})
        if len(epochs) > MAX_SAMPLE_GRIDS:  # evenly spaced, always with the last
            step = len(epochs) / MAX_SAMPLE_GRIDS
            epochs = [epochs[int(i * step)] for i in range(MAX_SAMPLE_GRIDS - 1)] + [epochs[-1]]
        shown = "".join(_media([p for p in grids if p.stem == e],
                               f"epoch {int(e.split('_')[1])}") for e in epochs)
        sections.append("<h2>Samples over training (fixed noise)</h2>" + shown)

        synth = write_synthesis(trained, 16, tmp / "synth", seed=0)
        sections.append("<h2>Synthesis: Z ~ prior</h2>" +
                        _media([p for p in synth if p.parent == tmp / "synth" and
                                p.stem == "grid"], "16 samples"))
        recon = write_reconstruction(trained, reconstruct(trained, None, n=16, steps=steps),
                                     tmp / "recon")
        text = _media(_grid_files(recon), "training examples | reconstructions")
        if test:
            rt = write_reconstruction(trained, reconstruct(trained, test, n=16, steps=steps),
                                      tmp / "recon-test")
            text += _media(_grid_files(rt), "held-out examples | reconstructions")
        sections.append("<h2>Reconstruction</h2>" + text)
        text = "" if trained.latents.shape[0] >= 2 else (
            "<p class='note'>a single training example: nothing to interpolate</p>")
        modes = ("linear", "spherical") if trained.latents.shape[0] >= 2 else ()
        for mode in modes:
            table = interpolation_table(trained, None, steps=8, pairs=4, mode=mode)
            res = write_interpolation(trained, table, tmp / f"interp-{mode}")
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

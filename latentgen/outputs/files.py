"""Files a person opens, from what a run computed: samples, reconstructions, interpolations.

Every writer takes results already computed (``latentgen.measures``), so bad input has
failed before anything is written; the modality's writers make the files (PNG, WAV, MP4...).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import torch

from latentgen.assembly.trained import Trained
from latentgen.errors import UserError
from latentgen.measures.reconstruction import Reconstruction
from latentgen.runtime.files import atomic_write, staged_files, unstaged


def output_folder(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"`out` {out} is a file; give a folder")
    return out


def _whole(out: str | Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """``write(folder)`` into a private folder, then every file it wrote moved into ``out``."""
    target = output_folder(out)
    with staged_files(target) as stage:
        files = write(stage)
    return unstaged(files, stage, target)


def write_scores(scores: dict[str, torch.Tensor], out: str | Path,
                 names: list[str] | None = None) -> Path:
    """Per-example columns (``Run.score``) as a CSV file: ``index``, ``name`` when given,
    then one column per score, in full precision."""
    path = Path(out)
    if path.is_dir():
        raise UserError(f"`out` {path} is a folder; give the path of a .csv file")
    columns = {k: v.tolist() for k, v in scores.items()}
    n = len(next(iter(columns.values()))) if columns else 0
    if names is not None and len(names) != n:
        names = None
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", *(["name"] if names is not None else []), *columns])
    for i in range(n):
        writer.writerow([i, *([names[i]] if names is not None else []),
                         *(repr(float(c[i])) for c in columns.values())])
    atomic_write(path, lambda fh: fh.write(text.getvalue()), mode="w")
    return path


def write_synthesis(trained: Trained, n: int, out: str | Path, seed: int = 0,
                    batch_size: int = 256,
                    on_progress: Callable[[int, int], None] | None = None,
                    fmt: str | None = None, scale: int = 1) -> list[Path]:
    """Z ~ prior, output f(Z): ``n`` files plus a grid of the first ones.

    A batch job: each batch is written before the next is made, so memory stays flat for any
    ``n``; ``on_progress(done, n)`` is called after each batch. ``fmt`` picks the file format
    for modalities that write several (e.g. mp4 or gif for video). The files appear in
    ``out`` when all are written (a full disk or a kill leaves none of them). ``scale``: data
    that many times larger, from larger latent fields (``Run.synthesize``).
    """
    options = trained.at_scale(scale)[0]  # refused before anything is written
    return _whole(out, lambda folder: _synthesis_into(trained, n, folder, seed, batch_size,
                                                      on_progress, fmt, scale, options))


def _synthesis_into(trained: Trained, n: int, out: Path, seed: int, batch_size: int,
                    on_progress: Callable[[int, int], None] | None,
                    fmt: str | None, scale: int, options: object) -> list[Path]:
    model = trained.model
    model.modality.check_format(fmt)
    written: list[Path] = []
    grid: torch.Tensor | None = None
    done = 0
    for x in trained.synthesis_batches(n, seed=seed, batch_size=batch_size, scale=scale):
        if grid is None:
            grid = x[:64]
        written += model.modality.save_examples(x, out, "sample", options, start=done,
                                                fmt=fmt)
        done += len(x)
        if on_progress is not None:
            on_progress(done, n)
    assert grid is not None
    side = max(1, int(len(grid) ** 0.5))
    rows = len(grid) // side
    written += model.modality.save_grid(grid[:rows * side].reshape(rows, side, *grid.shape[1:]),
                                        out / "grid", options, fmt=fmt)
    return written


def write_reconstruction(trained: Trained, rec: Reconstruction, out: str | Path,
                         fmt: str | None = None) -> list[Path]:
    """Originals beside reconstructions (or original / occluded / recovered when masked), one
    file each, and a grid of the tuples; all of them, or none."""
    return _whole(out, lambda folder: _reconstruction_into(trained, rec, folder, fmt))


def _reconstruction_into(trained: Trained, rec: Reconstruction, out: Path, fmt: str | None
                         ) -> list[Path]:
    modality, opts = trained.model.modality, trained.model.options
    modality.check_format(fmt)
    y = rec.originals
    files = modality.save_examples(y, out, "original", opts, fmt=fmt)
    if rec.occluded is None or rec.recovered is None:
        files += modality.save_examples(rec.reconstructions, out, "reconstruction", opts,
                                        fmt=fmt)
        files += modality.save_grid(tuples_table([y, rec.reconstructions]), out / "grid", opts,
                                    fmt=fmt)
        return files
    files += modality.save_examples(rec.occluded, out, "occluded", opts, fmt=fmt)
    files += modality.save_examples(rec.recovered, out, "recovered", opts, fmt=fmt)
    files += modality.save_grid(tuples_table([y, rec.occluded, rec.recovered], cols=9),
                                out / "grid", opts, fmt=fmt)
    return files


def write_interpolation(trained: Trained, table: torch.Tensor, out: str | Path,
                        fmt: str | None = None) -> list[Path]:
    """Each pair's row (original, path, original) as files, and the rows as one grid; all of
    them, or none."""
    return _whole(out, lambda folder: _interpolation_into(trained, table, folder, fmt))


def _interpolation_into(trained: Trained, table: torch.Tensor, out: Path, fmt: str | None
                        ) -> list[Path]:
    modality, opts = trained.model.modality, trained.model.options
    modality.check_format(fmt)
    files: list[Path] = []
    for p in range(len(table)):
        files += modality.save_examples(table[p], out, f"pair{p:02d}_step", opts, fmt=fmt)
    files += modality.save_grid(table, out / "grid", opts, fmt=fmt)
    return files


def tuples_table(parts: list[torch.Tensor], cols: int = 8) -> torch.Tensor:
    """Matching examples of ``parts`` side by side (original | reconstruction | ...), as many
    tuples per row as fit in ``cols`` columns."""
    k, y = len(parts), parts[0]
    per_row = max(1, cols // k)
    n = (len(y) // per_row) * per_row or len(y)
    per_row = min(per_row, n)
    inter = torch.stack([p[:n] for p in parts], dim=1)
    return inter.reshape(n // per_row, k * per_row, *y.shape[1:])

"""Files a person opens, from what a run computed: samples, reconstructions, interpolations.

Every writer takes results already computed (``latentgen.measures``), so bad input has
failed before anything is written; the modality's writers make the files (PNG, WAV, MP4...).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.trained import Trained, synthesis_latents
from latentgen.errors import UserError
from latentgen.measures.reconstruction import Reconstruction
from latentgen.runtime.files import (
    STAGING,
    atomic_write,
    remove_stale_temporaries,
    staged_files,
    unstaged,
    write_error,
)


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
                    fmt: str | None = None, scale: int = 1,
                    shard: str | tuple[int, int] | None = None) -> list[Path]:
    """Z ~ prior, output f(Z): ``n`` files plus a grid of the first ones (of the first batch,
    at most 64).

    A batch job: each batch is written before the next is made, so memory stays flat for any
    ``n``; ``on_progress(done, total)`` is called after each batch (``total``: the shard's
    examples). ``fmt`` picks the file format for modalities that write several (e.g. mp4 or
    gif for video). ``scale``: data that many times larger, from larger latent fields
    (``Run.synthesize``).

    ``shard``: ``"K/N"`` (or ``(K, N)``) writes only slice K of N contiguous slices of the
    ``n`` examples, exactly the files one unsharded job writes for them; ``"auto"`` (or
    ``"auto/N"``) reads it from a job array's variables (``resolve_shard``); None: all of
    them. Shard 0 writes the grid.

    Restartable: each file appears whole or not at all, and ``manifest.jsonl`` (a shard's:
    ``manifest-K-of-N.jsonl``) gets a line per file as it is written (index, seed, n, path,
    latent); run the same job again and it writes only what the manifest lacks.
    """
    index, count = resolve_shard(shard)
    options = trained.at_scale(scale)[0]  # refused before anything is written
    if n < 1 or batch_size < 1:
        raise UserError(f"`n` and `batch_size` must be at least 1, got {n} and {batch_size}")
    trained.model.modality.check_format(fmt)
    folder = output_folder(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, folder) from None
    return _synthesis_shard(trained, n, folder, seed, batch_size, on_progress, fmt, scale,
                            options, index, count)


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
    """The examples ``[start, stop)`` of shard ``index`` of ``count`` in an ``n``-example job:
    contiguous slices whose sizes differ by at most one."""
    return index * n // count, (index + 1) * n // count


#: job-array variables ``resolve_shard("auto")`` reads, first found first
SHARD_VARIABLES = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "RANK")


def resolve_shard(spec: str | tuple[int, int] | None,
                  environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(K, N)``: shard K of N, from ``"K/N"``, ``(K, N)``, None (the whole job: ``(0, 1)``) or
    ``"auto"`` / ``"auto/N"``, which read the environment: a Slurm job array
    (``SLURM_ARRAY_TASK_ID`` - ``SLURM_ARRAY_TASK_MIN``, divided by ``SLURM_ARRAY_TASK_STEP``,
    of ``SLURM_ARRAY_TASK_COUNT``), a Kubernetes indexed job (``JOB_COMPLETION_INDEX``; its
    count from ``auto/N`` or ``JOB_COMPLETION_COUNT``) or torchrun (``RANK`` of
    ``WORLD_SIZE``); none of them: the whole job. ``N`` of ``auto/N`` must agree with the
    count the environment gives."""
    env = os.environ if environ is None else environ
    if spec is None or spec == "":
        return 0, 1
    if isinstance(spec, tuple):
        k, total = spec
        return _checked_shard(k, total, f"{k}/{total}")
    text = str(spec).strip()
    head, sep, tail = text.partition("/")
    given: int | None = None
    if sep:
        given = _shard_int(tail, text)
    if head.strip().lower() != "auto":
        if given is None:
            raise UserError(f"`shard` must be K/N (e.g. 0/4), auto or auto/N, got '{text}'")
        return _checked_shard(_shard_int(head, text), given, text)
    found = _shard_from_environment(env, given, text)
    if found is None:
        return 0, 1
    return _checked_shard(*found, text)


def _shard_from_environment(env: Mapping[str, str], given: int | None, text: str
                            ) -> tuple[int, int] | None:
    def read(name: str, default: str | None = None) -> int:
        value = env.get(name, default)
        try:
            return int(str(value).strip())
        except ValueError:
            raise UserError(f"`shard` {text}: {name}={value!r} is not an integer") from None

    if env.get("SLURM_ARRAY_TASK_ID", "").strip():
        if not env.get("SLURM_ARRAY_TASK_COUNT", "").strip() and given is None:
            raise UserError(f"`shard` {text}: SLURM_ARRAY_TASK_ID is set without "
                            "SLURM_ARRAY_TASK_COUNT; give the count as auto/N")
        step = max(1, read("SLURM_ARRAY_TASK_STEP", "1"))
        k = (read("SLURM_ARRAY_TASK_ID") - read("SLURM_ARRAY_TASK_MIN", "0")) // step
        total = read("SLURM_ARRAY_TASK_COUNT") if env.get("SLURM_ARRAY_TASK_COUNT") else given
        source = "SLURM_ARRAY_TASK_COUNT"
    elif env.get("JOB_COMPLETION_INDEX", "").strip():
        k = read("JOB_COMPLETION_INDEX")
        total = read("JOB_COMPLETION_COUNT") if env.get("JOB_COMPLETION_COUNT") else given
        if total is None:
            raise UserError(f"`shard` {text}: JOB_COMPLETION_INDEX is set but not the number "
                            "of completions; give it as auto/N (N: the job's completions)")
        source = "JOB_COMPLETION_COUNT"
    elif env.get("RANK", "").strip():
        k, total, source = read("RANK"), read("WORLD_SIZE", "1"), "WORLD_SIZE"
    else:
        if given is not None and given != 1:
            raise UserError(f"`shard` {text}: no job array variable is set (SLURM_ARRAY_TASK_ID, "
                            "JOB_COMPLETION_INDEX, RANK); give K/N")
        return None
    assert total is not None
    if given is not None and given != total:
        raise UserError(f"`shard` {text}: {source} says {total} shards, not {given}")
    return k, total


def _shard_int(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"`shard` must be K/N (e.g. 0/4), auto or auto/N, got '{spec}'"
                        ) from None


def _checked_shard(k: int, total: int, spec: str) -> tuple[int, int]:
    if total < 1 or not 0 <= k < total:
        raise UserError(f"`shard` {spec}: K must be 0 to N-1 and N at least 1, got shard {k} "
                        f"of {total}")
    return k, total


def manifest_name(index: int, count: int) -> str:
    """The manifest of shard ``index`` of ``count`` (the whole job: ``manifest.jsonl``)."""
    return "manifest.jsonl" if count == 1 else f"manifest-{index}-of-{count}.jsonl"


def _manifest_done(path: Path, folder: Path, n: int, seed: int, start: int, stop: int
                   ) -> dict[int, list[dict[str, Any]]]:
    """The examples a manifest says are written, whose files are all there, and the manifest
    rewritten (atomically) to just their lines: a line a kill cut short, or one whose file
    is gone, is dropped (its example is written again)."""
    if not path.exists():
        return {}
    done: dict[int, list[dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
                i = int(entry["index"])
                entry_seed, entry_n, rel = int(entry["seed"]), int(entry["n"]), entry["path"]
            except (ValueError, KeyError, TypeError):
                continue  # the tail of a killed append
            if entry_seed != seed or entry_n != n:
                raise UserError(f"`out` {folder} holds {path.name} of another job (seed "
                                f"{entry_seed}, n {entry_n}); run that job again, or give "
                                "another folder")
            if start <= i < stop and not any(e["path"] == rel for e in done.get(i, [])):
                done.setdefault(i, []).append(entry)
    done = {i: lines for i, lines in sorted(done.items())
            if all((folder / e["path"]).is_file() for e in lines)}
    text = "".join(json.dumps(e) + "\n" for lines in done.values() for e in lines)
    atomic_write(path, lambda fh: fh.write(text), mode="w")
    return done


def _synthesis_shard(trained: Trained, n: int, out: Path, seed: int, batch_size: int,
                     on_progress: Callable[[int, int], None] | None, fmt: str | None,
                     scale: int, options: object, index: int, count: int) -> list[Path]:
    modality = trained.model.modality
    start, stop = shard_range(n, index, count)
    manifest = out / manifest_name(index, count)
    for target in (STAGING, manifest.name):  # what killed jobs left half-written
        remove_stale_temporaries(out, target)
    done = _manifest_done(manifest, out, n, seed, start, stop)
    # whole batches of the unsharded job, as it makes them: the same inputs, the same bytes
    wanted = [j for j in range(start // batch_size, -(-stop // batch_size))
              if any(i not in done for i in range(max(start, j * batch_size),
                                                  min(stop, (j + 1) * batch_size)))]
    if index == 0 and 0 not in wanted:
        wanted.insert(0, 0)  # the grid: the first batch's first 64
    prior = trained.at_scale(scale)[1]
    cache: dict[int, torch.Tensor] = {}
    grid_files: list[Path] = []
    finished = len(done)
    if on_progress is not None and finished:
        on_progress(finished, stop - start)
    with open(manifest, "a", encoding="utf-8") as log:
        for j, x in zip(wanted, trained.synthesis_batches(n, seed=seed, batch_size=batch_size,
                                                          scale=scale, batches=wanted)):
            first = j * batch_size
            if j == 0 and index == 0:
                grid = x[:64]
                side = max(1, int(len(grid) ** 0.5))
                rows = len(grid) // side
                table = grid[:rows * side].reshape(rows, side, *grid.shape[1:])
                grid_files = modality.save_grid(table, out / "grid", options, fmt=fmt)
            todo = [i for i in range(max(start, first), min(stop, first + len(x)))
                    if i not in done]
            if not todo:
                continue
            z = synthesis_latents(prior, n, seed, todo[0], todo[-1] + 1, cache)
            for i in todo:
                paths = modality.save_examples(x[i - first:i - first + 1], out, "sample",
                                               options, start=i, fmt=fmt)
                latent = z[i - todo[0]].flatten().tolist()
                lines = [{"index": i, "seed": seed, "n": n,
                          "path": Path(p).relative_to(out).as_posix(), "latent": latent}
                         for p in paths]
                log.write("".join(json.dumps(e) + "\n" for e in lines))  # one append each
                log.flush()
                done[i] = lines
            finished += len(todo)
            if on_progress is not None:
                on_progress(finished, stop - start)
    return [out / e["path"] for i in sorted(done) for e in done[i]] + grid_files


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

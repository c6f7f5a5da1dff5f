"""The run directory: resolved config, metrics, sample grids and checkpoints of one run.

    RUN/config.toml            the resolved configuration
    RUN/metrics.csv            one row per epoch
    RUN/curves.png             reconstruction error over epochs (train / test / negative)
    RUN/samples/epoch_NNNN.png fixed-noise samples during training
    RUN/checkpoints/last.pt    latest state (+ epoch_NNNN.pt every --checkpoint-every epochs)

A checkpoint holds the full latent bank, whatever the number of processes that trained it. With
``--latents-on disk`` the bank is a ``.npy`` file beside the checkpoint instead
(``last.latents-STEP.npy``, named in the checkpoint's ``latents_file``), which readers map
rather than load; while training, the bank's working rows live in ``checkpoints/bank-*.npy``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentgen.errors import UserError
from latentgen.runtime.files import atomic_write, link_or_copy
from latentgen.training.config import TrainConfig, read_toml

CHECKPOINT_FORMAT = 1


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.toml")
    metrics_path = property(lambda self: self.path / "metrics.csv")
    curves_path = property(lambda self: self.path / "curves.png")
    report_path = property(lambda self: self.path / "report.html")
    samples_dir = property(lambda self: self.path / "samples")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.checkpoints_dir / "last.pt")

    def holds_run(self) -> bool:
        # A folder whose first epoch never finished (config.toml only) may be trained afresh.
        return self.last_checkpoint.exists()

    # -- config --------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        atomic_write(self.config_path, lambda fh: fh.write(config.to_toml()), mode="w")

    def read_config(self) -> TrainConfig:
        """The run's configuration: ``config.toml``, the one stored copy."""
        if not self.config_path.is_file():
            raise UserError(f"{self.path} holds no config.toml; give the folder of a complete "
                            "latentgen run")
        values = read_toml(self.config_path)
        values["modality_options"] = values.pop("modality_options", {})
        return TrainConfig.from_dict(values, source=str(self.config_path))

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], keep_as: str | None = None) -> None:
        """Write ``last.pt`` (and ``keep_as``). A bank saved beside it (``latents_file``) is
        linked under the kept checkpoint's name too, and banks no checkpoint names are removed."""
        state = {"format": CHECKPOINT_FORMAT, **state}
        atomic_write(self.last_checkpoint, lambda fh: torch.save(state, fh))
        if keep_as:
            kept = dict(state)
            if state.get("latents_file"):
                name = Path(keep_as).stem + ".latents.npy"
                link_or_copy(self.checkpoints_dir / state["latents_file"],
                              self.checkpoints_dir / name)
                kept["latents_file"] = name
            atomic_write(self.checkpoints_dir / keep_as, lambda fh: torch.save(kept, fh))
        current = state.get("latents_file")
        for old in self.checkpoints_dir.glob("last.latents-*.npy"):
            if old.name != current:
                old.unlink(missing_ok=True)

    def write_latents_file(self, step: int, shape: tuple[int, ...],
                           fill: Callable[[Callable[[int, torch.Tensor], object] | None], None],
                           main: bool) -> str:
        """Write a full bank as ``checkpoints/last.latents-STEP.npy`` through a temporary file:
        ``fill(sink)`` hands rows over in order (``LatentBank.gather``; ranks other than the
        main one pass None and write nothing). Returns the file's name."""
        name = f"last.latents-{step:09d}.npy"
        if not main:
            fill(None)
            return name
        path = self.checkpoints_dir / name
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape).flush()
            header = tmp.stat().st_size - int(np.prod(shape)) * 4
            with open(tmp, "r+b") as fh:  # rows arrive in order: written, not mapped
                fh.seek(header)
                fill(lambda first, rows: fh.write(
                    np.ascontiguousarray(rows.float().numpy()).data))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return name

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist; give the --out folder "
                            "of a training run")
        if not self.last_checkpoint.exists():
            raise UserError(f"{self.path} holds no checkpoint (checkpoints/last.pt); give the "
                            "folder of a run that finished at least one epoch")
        try:
            # mmap: a large latent bank is mapped, not read, until rows are used
            state = torch.load(self.last_checkpoint, map_location=map_location,
                               weights_only=True, mmap=True)
        except Exception as exc:  # corrupt or foreign file
            raise UserError(f"cannot read checkpoint {self.last_checkpoint} ({exc}); "
                            "it is damaged or not a latentgen checkpoint") from None
        if isinstance(state, dict) and state.get("latents_file"):
            state["latents"] = self.load_checkpoint_latents(state["latents_file"])
        return state

    def load_checkpoint_latents(self, name: str) -> torch.Tensor:
        """A bank saved beside a checkpoint; rows are read from the file as they are used
        (``RowFile``: a tensor-like view, ``[:]`` or ``.to(device)`` loads it all)."""
        from latentgen.data.rowfile import RowFile

        path = self.checkpoints_dir / name
        try:
            array = np.load(path, mmap_mode="r")
            shape, dtype, offset = array.shape, array.dtype, array.offset
            del array
            if dtype != np.float32 or not path.stat().st_size >= offset + 4 * np.prod(shape):
                raise ValueError("not a float32 array of the size its header states")
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the latent bank {path} ({exc}); it is missing or "
                            "damaged") from None
        return RowFile(path, dtype, shape, offset=offset)  # type: ignore[return-value]

    # -- metrics -------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, newline="") as fh:
            return list(csv.DictReader(fh))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the whole table (it is small): keeps the file consistent on resume."""
        fields: list[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]

        def write(fh: Any) -> None:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

        atomic_write(self.metrics_path, write, mode="w")

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
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentgen.assembly.config import TrainConfig, learned_settings, read_toml
from latentgen.errors import UserError
from latentgen.plugins.registry import get_registry
from latentgen.runtime.files import atomic_write, link_or_copy, temporary_name, write_error

CHECKPOINT_FORMAT = 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(exc: BaseException) -> str:
    """The first line of an error's text, without advice to load with weights_only=False."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return type(exc).__name__ if "weights_only" in text else text[:200]


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
        # runs written before the learning-rate schedule existed trained at a constant rate
        values.setdefault("lr_end", 1.0)
        # and those written before sigma could be learned kept it fixed
        values.setdefault("learn_sigma", False)
        # modality options added since the run was written read as they were then
        modality = get_registry().modalities.get(str(values.get("modality")))
        if modality is not None:
            values["modality_options"] = {**modality.legacy_options,
                                          **values["modality_options"]}
        return TrainConfig.from_dict(values, source=str(self.config_path))

    def check_unedited(self, config: TrainConfig, state: dict[str, Any], prefix: str = ""
                       ) -> None:
        """Refuse a config.toml whose learning settings differ from those the checkpoint
        ``state`` was trained with (``learned_settings``; checkpoints of earlier versions
        record none): it would rebuild, or go on training, another model."""
        recorded = state.get("settings")
        if not isinstance(recorded, dict):
            return
        now = learned_settings(config)
        changed = [k for k in now if k in recorded and now[k] != recorded[k]]
        if changed:
            said = ", ".join(f"{k} = {_short(now[k])} (trained with {_short(recorded[k])})"
                             for k in changed[:4])
            raise UserError(f"{prefix}{self.config_path} was edited since its checkpoint: "
                            f"{said}; restore those values, or start a new run to train with "
                            "them")

    # -- checkpoints ---------------------------------------------------------------------
    def kept_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints_dir / f"epoch_{epoch:04d}.pt"

    def save_checkpoint(self, state: dict[str, Any], keep_as: str | None = None) -> None:
        """Write ``last.pt`` (and ``keep_as``). A bank saved beside it (``latents_file``) is
        linked under the kept checkpoint's name too, and banks no checkpoint names are removed.

        The kept one is written first: a crash between the two leaves ``last.pt`` at the
        epoch before, so the resumed run trains that epoch again and writes both."""
        state = {"format": CHECKPOINT_FORMAT, **state}
        if keep_as:
            self._write_kept(state, keep_as)
        atomic_write(self.last_checkpoint, lambda fh: torch.save(state, fh))
        current = state.get("latents_file")
        for old in self.checkpoints_dir.glob("last.latents-*.npy"):
            if old.name != current:
                old.unlink(missing_ok=True)

    def _write_kept(self, state: dict[str, Any], keep_as: str) -> None:
        kept = dict(state)
        if state.get("latents_file"):
            name = Path(keep_as).stem + ".latents.npy"
            link_or_copy(self.checkpoints_dir / state["latents_file"],
                         self.checkpoints_dir / name)
            kept["latents_file"] = name
        atomic_write(self.checkpoints_dir / keep_as, lambda fh: torch.save(kept, fh))

    def restore_kept(self, epoch: int) -> bool:
        """Write ``epoch_NNNN.pt`` from ``last.pt`` when ``last.pt`` ends that epoch and the
        kept copy is missing (runs whose kept write was cut short by an earlier version of
        this order). Returns whether it wrote one."""
        kept = self.kept_checkpoint(epoch)
        if kept.exists():
            return False
        state = self._load(self.last_checkpoint, mmap=False)
        if int(state.get("epoch", -1)) != epoch or state.get("progress"):
            return False
        self._write_kept(state, kept.name)
        return True

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
        tmp = path.with_name(temporary_name(path))
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
        except OSError as exc:
            raise write_error(exc, path) from None
        finally:
            tmp.unlink(missing_ok=True)
        return name

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist; give the `out` folder "
                            "of a training run")
        if not self.last_checkpoint.exists():
            raise UserError(f"{self.path} holds no checkpoint (checkpoints/last.pt); give the "
                            "folder of a run that finished at least one epoch")
        state = self._load(self.last_checkpoint, map_location)
        if isinstance(state, dict) and state.get("latents_file"):
            state["latents"] = self.load_checkpoint_latents(state["latents_file"])
        return state

    @staticmethod
    def _load(path: Path, map_location: str | torch.device = "cpu", mmap: bool = True
              ) -> dict[str, Any]:
        """A checkpoint's state, loaded without running code: a file that holds pickled
        objects other than tensors and plain values is refused, never executed."""
        try:
            # mmap: a large latent bank is mapped, not read, until rows are used
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        except pickle.UnpicklingError:
            # PyTorch's own message suggests weights_only=False, which would run that code
            raise UserError(f"{path} holds Python code (pickled objects), so it is not a "
                            "latentgen checkpoint; it was not loaded") from None
        except Exception as exc:  # corrupt, truncated or foreign
            if "_use_new_zipfile_serialization" in str(exc):
                # a plain (pre-zip) pickle: latentgen always wrote the zip form
                raise UserError(f"{path} is an old-style PyTorch pickle file, not a latentgen "
                                "checkpoint; it was not loaded") from None
            raise UserError(f"cannot read checkpoint {path} ({_first_line(exc)}); it is "
                            "damaged or not a latentgen checkpoint") from None
        if not isinstance(state, dict) or "epoch" not in state:
            raise UserError(f"{path} is not a latentgen checkpoint (no training state in it)")
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

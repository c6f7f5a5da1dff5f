"""Arrays kept in files and read (or written) a few rows at a time: prepared datasets
(``latentgen prepare``) and latent banks on disk (``--latents-on disk``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentgen.errors import UserError


class RowFile:
    """The rows of an array stored in a file (C order, from byte ``offset``), read and written
    on demand with ``pread`` / ``pwrite``: what ``Examples.storage`` and a latent bank need of
    a tensor (``len``, ``shape``, indexing by an index tensor, an int or a slice, assignment,
    ``to``).

    Why not ``mmap``: a page faulted in maps its whole page-cache folio, and on current kernels
    (large folios) reading one random 768-byte picture mapped up to 2 MB; 5 batches of 64
    random rows of a 150 MB file raised the process's RSS by 150 MB. Reads into a fresh buffer
    leave the resident set at one batch; the kernel's page cache still keeps hot rows, and
    ``numpy.memmap`` still maps the file for anyone who wants it.
    """

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], offset: int = 0,
                 writable: bool = False) -> None:
        self.path = Path(path)
        self.offset = offset
        self.writable = writable
        self.np_dtype = np.dtype(dtype)
        self.shape = torch.Size(shape)
        self.dtype = torch.from_numpy(np.empty(0, self.np_dtype)).dtype
        self.device = torch.device("cpu")
        self.row_bytes = int(np.prod(shape[1:])) * self.np_dtype.itemsize
        self._fd: int | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own descriptor
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            flags = os.O_RDWR if self.writable else os.O_RDONLY
            self._fd, self._pid = os.open(self.path, flags), os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def flush(self) -> None:
        if self._fd is not None and self.writable:
            os.fsync(self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def element_size(self) -> int:
        return self.np_dtype.itemsize

    def is_pinned(self) -> bool:
        return False

    def _rows(self, index: Any) -> tuple[list[int], bool]:
        """Row numbers for ``index``, and whether it picks a single row (an int)."""
        n = self.shape[0]
        if isinstance(index, slice):
            return list(range(*index.indices(n))), False
        single = isinstance(index, int)
        idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu()
        if len(idx) and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return torch.where(idx < 0, idx + n, idx).tolist(), single

    @staticmethod
    def _runs(ids: list[int]) -> list[tuple[int, int, int]]:
        """(first row, first position, count) for each run of consecutive rows at consecutive
        positions: one system call each."""
        runs: list[tuple[int, int, int]] = []
        for pos, row in enumerate(ids):
            if runs and runs[-1][0] + runs[-1][2] == row and runs[-1][1] + runs[-1][2] == pos:
                runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((row, pos, 1))
        return runs

    def __getitem__(self, index: Any) -> torch.Tensor:
        ids, single = self._rows(index)
        out = np.empty((len(ids), *self.shape[1:]), self.np_dtype)
        flat = out.reshape(len(ids), self.row_bytes // self.np_dtype.itemsize)
        for row, pos, count in self._runs(ids):
            self._transfer(row, flat[pos:pos + count], write=False)
        result = torch.from_numpy(out)
        return result[0] if single else result

    def __setitem__(self, index: Any, value: torch.Tensor) -> None:
        if not self.writable:
            raise TypeError(f"{self.path} is open read-only")
        ids, _ = self._rows(index)
        rows = value.detach().to("cpu", self.dtype).expand(len(ids), *self.shape[1:])
        flat = np.ascontiguousarray(rows.numpy()).reshape(len(ids),
                                                          self.row_bytes // self.np_dtype.itemsize)
        for row, pos, count in self._runs(ids):
            self._transfer(row, flat[pos:pos + count], write=True)

    def _transfer(self, first: int, rows: np.ndarray, write: bool) -> None:
        view = rows.data.cast("B")  # rows are C-contiguous: a flat byte view
        offset, done = self.offset + first * self.row_bytes, 0
        while done < len(view):
            if write:
                got = os.pwritev(self._file(), [view[done:]], offset + done)
            else:
                got = os.preadv(self._file(), [view[done:]], offset + done)
            if got <= 0:
                raise UserError(f"{self.path} ended early (truncated while in use?); "
                                "recreate it")
            done += got

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Every row, loaded (e.g. onto a GPU that holds the whole set)."""
        return self[:].to(device, *args, **kwargs)

    def contiguous(self) -> torch.Tensor:
        return self[:]

    def numpy(self) -> np.ndarray:
        return self[:].numpy()

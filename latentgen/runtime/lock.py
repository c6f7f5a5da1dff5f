"""An exclusive lock on a folder, held by one process for its whole life.

``flock`` on ``FOLDER/.lock``: the kernel drops the lock when the process ends, however it
ends (kill -9 included), so a stale file never blocks the next run. The file names the holder
(PID, host, start time) for the message the second process prints. On systems without
``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from types import TracebackType

from latentgen.errors import UserError
from latentgen.runtime.files import write_error

LOCK_NAME = ".lock"


class FolderLock:
    """``with FolderLock(folder, what="latentgen train"):`` — or ``acquire()`` / ``release()``.
    A second holder, in this process or another, is refused with ``UserError``."""

    def __init__(self, folder: str | Path, what: str = "latentgen train") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, self.folder) from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise write_error(exc, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise UserError(f"{self.folder} is in use by {holder}; wait for it to end, or "
                                "give another `out`") from None
            # the holder before us removes the file as it releases: if the name now points
            # elsewhere (or nowhere), we locked a file no one else will look at; start over
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.what} (process {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: see ``acquire``
        except OSError:
            pass
        os.close(self._fd)  # drops the lock
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"

"""Files written whole or not at all: a reader, or a crash, never sees a half-written one.

Every temporary file or folder is named ``.NAME.PID.*.tmp`` beside its target, so that
``remove_stale_temporaries`` can tell the leftovers of a killed process (whose PID no longer
runs) from the work in progress of a live one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from latentgen.errors import UserError

_TEMPORARY = re.compile(r"^\.(.+)\.(\d+)\.[^.]*\.?tmp$")
#: the target name of a staging folder (``staged_files``)
STAGING = "partial"

#: errors that mean "this place cannot take the file", not a bug: told in one line
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.EFBIG, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


def check_utf8_path(path: str | os.PathLike[str], what: str) -> None:
    """Raise ``UserError`` when ``path`` is not UTF-8 text: config.toml stores paths as text
    and PyTorch opens files by UTF-8 names, so such a run could never be read back."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise UserError(f"{what} {shown}: the name is not UTF-8 text; rename it (or a folder "
                        "above it)") from None


def temporary_name(target: Path) -> str:
    """A temporary name for ``target``, in its folder, that tells which process made it."""
    return f".{target.name}.{os.getpid()}.tmp"


def atomic_write(path: Path, write: Any, mode: str = "wb") -> None:
    """Write through a temporary file in the same folder, then rename over ``path``: a reader
    (or a crash) never sees a half-written file, and a failed write leaves ``path`` as it was
    (and no temporary file). An ``OSError`` that means the place cannot take the file (full
    disk, read-only folder) becomes a ``UserError`` naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise write_error(exc, path) from None
    sink: _Recording | None = None
    try:
        # mkstemp creates the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode) as fh:
            sink = _Recording(fh)
            write(sink)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # writers such as torch.save report a failed write as their own error type
        cause = exc if isinstance(exc, OSError) else sink.error if sink is not None else None
        if cause is not None:
            raise write_error(cause, path) from None
        raise


class _Recording:
    """A file object that remembers the ``OSError`` a write raised."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self._fh.write(data))
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` with ``src``'s content: a hard link (banks are never changed once written)."""
    tmp = dst.with_name(temporary_name(dst))
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, dst) from None


class WriteError(UserError):
    """A file could not be written for a reason the user can fix (full disk, read-only
    folder); ``path`` names it."""

    def __init__(self, message: str, path: Path | str, reason: str) -> None:
        super().__init__(message)
        self.path = Path(path)
        #: what went wrong, e.g. "No space left on device"
        self.reason = reason


def write_error(exc: OSError, path: Path | str) -> Exception:
    """``exc`` as one line naming ``path`` and what to do, when it means the place cannot
    take the file; other errors are returned unchanged."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return exc
    # the target, rather than the temporary file or folder through which it was written
    named = Path(exc.filename) if exc.filename else None
    where = path if named is None or any(_TEMPORARY.match(p) for p in named.parts) else named
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free some space (or choose a folder on another disk) and run the command again"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "give a folder you can write to"
    else:
        advice = "give another path"
    reason = exc.strerror or str(exc)
    return WriteError(f"cannot write {where}: {reason}; {advice}", where, reason)


def reserve(path: Path, target: Path | None = None) -> None:
    """Allocate the disk blocks of ``path`` (a sparse file about to be mapped): a full disk is
    then an error here, instead of a crash (SIGBUS) at the first write through the map.
    ``target``: what the error names (the file ``path`` will be renamed to)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise write_error(exc, target or path) from None
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no such support: map anyway
            raise write_error(exc, target or path) from None
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(folder: Path, target: str | None = None) -> list[Path]:
    """Remove the temporary files and folders of interrupted writes in ``folder`` (not below):
    those whose process is gone; with ``target``, only those meant to become that name (in a
    folder latentgen does not own). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if (found is None or (target is not None and found.group(1) != target)
                or _pid_alive(int(found.group(2)))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass  # another process got there first, or it is not ours to remove
    return removed


_CLEANED: set[Path] = set()


@contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """A private folder in which to write files meant for ``folder``: when the block ends
    without error, each file in it is renamed into ``folder`` (keeping subfolders); when it
    fails, nothing of it reaches ``folder``, and a ``folder`` the block created is removed
    again. For writers that cannot write atomically themselves (picture, sound and video
    encoders)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.resolve() not in _CLEANED:  # once per folder: a batch job writes many times
            remove_stale_temporaries(folder, STAGING)
            _CLEANED.add(folder.resolve())
        stage = Path(tempfile.mkdtemp(prefix=f".{STAGING}.{os.getpid()}.", suffix=".tmp",
                                      dir=folder))
    except OSError as exc:
        raise write_error(exc, folder) from None
    done = False
    try:
        yield stage
        for written in sorted(p for p in stage.rglob("*") if not p.is_dir()):
            target = folder / written.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, target)
        done = True
    except OSError as exc:
        raise write_error(exc, folder) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:
            for created in missing:  # innermost first; only while they stay empty
                try:
                    created.rmdir()
                except OSError:
                    break


def unstaged(paths: list[Path], stage: Path, folder: Path) -> list[Path]:
    """Where ``paths`` written in ``stage`` (``staged_files``) end up in ``folder``."""
    out = []
    for p in paths:
        try:
            out.append(folder / Path(p).relative_to(stage))
        except ValueError:
            out.append(Path(p))  # written elsewhere
    return out

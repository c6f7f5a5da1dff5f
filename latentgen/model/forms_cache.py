"""Where the layers' forms and the precision chosen by measuring (``tuning.py``) are kept
between processes: a JSON file keyed by the machine, read once per process.

``$LATENTGEN_FORMS_CACHE`` names the file (``off``: nothing is kept), else
``$XDG_CACHE_HOME/latentgen/forms.json`` (``~/.cache/latentgen/forms.json``). A file that cannot
be read or written only costs measuring again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from latentgen.runtime.files import atomic_write

CACHE_VARIABLE = "LATENTGEN_FORMS_CACHE"

_memory: dict[str, Any] | None = None  # the cache file's content, read once per process


def cache_path() -> Path | None:
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen:
        return None if chosen.strip().lower() == "off" else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latentgen" / "forms.json"


def machine(device: torch.device) -> str:
    """What a form's speed depends on besides the layer: the device, its kernel library,
    PyTorch's version and the threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda:{name}|cudnn {torch.backends.cudnn.version()}|torch {torch.__version__}"
    from latentgen.runtime.speed import cpu_features

    cpu = cpu_features()
    return (f"{device.type}:{cpu['model']}|{cpu['capability']}|torch {torch.__version__}"
            f"|threads {torch.get_num_threads()}")


def load() -> dict[str, Any]:
    global _memory
    if _memory is None:
        _memory = {}
        path = cache_path()
        if path is not None and path.is_file():
            try:
                _memory = dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                _memory = {}  # unreadable: measure again and write it anew
    return _memory


def store(new: dict[str, Any]) -> None:
    """Add ``new`` to the cache, in memory and (merged with what is there now) on disk; a cache
    that cannot be written only costs measuring again."""
    memory = load()
    memory.update(new)
    path = cache_path()
    if path is None:
        return
    try:
        on_disk = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        on_disk = {}
    on_disk.update(new)
    text = json.dumps(on_disk, indent=1, sort_keys=True).encode()
    with contextlib.suppress(Exception):
        atomic_write(path, lambda fh: fh.write(text))


def forget() -> None:
    """Drop what this process has read of the cache (tests, and after changing the variables)."""
    global _memory
    _memory = None



__all__ = ["CACHE_VARIABLE", "cache_path", "forget", "load", "machine", "store"]

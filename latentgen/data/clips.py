"""Cutting long sequences (a sound's samples, a video's frames) into fixed-length clips.

Clips start every clip length (hop = one clip, no overlap). A sequence shorter than one clip,
or a last piece at least half a clip long, is padded to full length; a shorter last piece is
dropped, so no clip is mostly padding.
"""

from __future__ import annotations

import numpy as np


def cut_clips(seq: np.ndarray, length: int, pad: str = "zeros") -> list[np.ndarray]:
    """Clips of ``length`` along axis 0 of ``seq``; ``pad`` is "zeros" (silence) or "last"
    (repeat the last entry, e.g. hold the last video frame)."""
    def padded(c: np.ndarray) -> np.ndarray:
        width = [(0, length - len(c))] + [(0, 0)] * (c.ndim - 1)
        return np.pad(c, width, mode="constant" if pad == "zeros" else "edge")

    if pad not in ("zeros", "last"):
        raise ValueError(f"pad must be 'zeros' or 'last', got {pad!r}")
    if len(seq) == 0:
        return []
    if len(seq) <= length:
        return [padded(seq)]
    out = [seq[s:s + length] for s in range(0, len(seq) - length + 1, length)]
    tail = seq[len(out) * length:]
    if len(tail) >= length / 2:
        out.append(padded(tail))
    return out

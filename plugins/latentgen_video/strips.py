"""Still and animated overviews of clips: frame strips and tiled grids, as uint8 arrays."""

from __future__ import annotations

import numpy as np

PAD = 2
WHITE = 255


def frames_last(clips: np.ndarray) -> np.ndarray:
    """uint8 (..., C, T, H, W) -> (..., T, H, W, C)."""
    return np.moveaxis(clips, -4, -1)


def frame_strip(clip: np.ndarray, keep: int | None = None) -> np.ndarray:
    """One clip (T, H, W, C) as its frames side by side, (H, T' * W, C); ``keep`` picks that
    many evenly spaced frames (first and last included)."""
    t = clip.shape[0]
    if keep is not None and keep < t:
        clip = clip[np.linspace(0, t - 1, keep).round().astype(int)]
    return np.concatenate(list(clip), axis=1)


def tile(cells: np.ndarray, enlarge: int = 1) -> np.ndarray:
    """(rows, cols, ..., H, W, C) pictures -> one picture per leading index left after the
    table, with a white gap between cells: (..., rows * (H + PAD) + PAD, cols * ..., C)."""
    rows, cols = cells.shape[:2]
    h, w, c = cells.shape[-3:]
    lead = cells.shape[2:-3]
    out = np.full((*lead, rows * (h + PAD) + PAD, cols * (w + PAD) + PAD, c), WHITE, np.uint8)
    for r in range(rows):
        for k in range(cols):
            top, left = PAD + r * (h + PAD), PAD + k * (w + PAD)
            out[..., top:top + h, left:left + w, :] = cells[r, k]
    if enlarge > 1:
        out = out.repeat(enlarge, axis=-3).repeat(enlarge, axis=-2)
    return out

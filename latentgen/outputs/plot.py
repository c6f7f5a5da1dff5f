"""Line charts drawn with matplotlib: error curves and synthesis distances over epochs.

The y axis is logarithmic, because reconstruction errors fall over orders of magnitude and
the gaps that matter (test vs train vs negative) are ratios. matplotlib is imported when a
chart is drawn (never by ``latentgen --help``), with the Agg backend: no display is needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

#: one colour per series name the charts use (matplotlib's default cycle otherwise)
COLORS = {"train": "#1f77b4", "train (running)": "#9ecae1", "test": "#2ca02c",
          "negative": "#d62728", "model": "#1f77b4", "PCA": "#7f7f7f", "floor": "#2ca02c"}


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str,
               ylabel: str, hlines: dict[str, float] | None = None,
               size: tuple[int, int] = (720, 440)) -> bytes:
    """PNG bytes of ``series`` (name -> [(x, y), ...]) on a log y axis, with dashed reference
    lines ``hlines`` (name -> y; the colour follows the name's last word, so "PCA test"
    takes the test curve's colour)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    hlines = {k: v for k, v in (hlines or {}).items() if v > 0 and math.isfinite(v)}
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    drawn = False
    for name, pts in series.items():
        good = [(x, y) for x, y in pts if y > 0 and math.isfinite(y)]
        if not good:
            continue
        xs, ys = zip(*good)
        ax.plot(xs, ys, marker="o" if len(good) < 30 else None, markersize=3, label=name,
                color=COLORS.get(name))
        drawn = True
    for name, value in hlines.items():
        ax.axhline(value, linestyle="--", linewidth=1, label=name,
                   color=COLORS.get(name.split()[-1], COLORS["PCA"]))
    if drawn or hlines:
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_chart(path: Path, png: bytes) -> None:
    from latentgen.runtime.files import atomic_write

    atomic_write(path, lambda fh: fh.write(png))

"""A small line chart drawn with Pillow (no plotting library needed): error curves over epochs.

The y axis is logarithmic, because reconstruction errors fall over orders of magnitude and
the gaps that matter (test vs train vs negative) are ratios.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = {"train": (31, 119, 180), "test": (44, 160, 44), "negative": (214, 39, 40)}
FALLBACK = [(148, 103, 189), (140, 86, 75), (127, 127, 127)]


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str,
               ylabel: str, hlines: dict[str, float] | None = None,
               size: tuple[int, int] = (720, 440)) -> bytes:
    """PNG bytes of ``series`` (name -> [(x, y), ...]) with optional dashed reference lines."""
    hlines = {k: v for k, v in (hlines or {}).items() if v > 0 and math.isfinite(v)}
    pts = [(x, y) for s in series.values() for x, y in s if y > 0 and math.isfinite(y)]
    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, width - 150, 36, height - 50
    draw.text((left, 4), title, fill="black", font=font)
    if not pts:
        draw.text((left, height // 2), "no data yet", fill="black", font=font)
        return _png(img)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + list(hlines.values())
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    ly0, ly1 = math.log10(min(ys)), math.log10(max(ys))
    pad = max(0.05, (ly1 - ly0) * 0.08)
    ly0, ly1 = ly0 - pad, ly1 + pad

    def px(x: float, y: float) -> tuple[float, float]:
        fx = left + (x - x0) / (x1 - x0) * (right - left)
        fy = bottom - (math.log10(y) - ly0) / (ly1 - ly0) * (bottom - top)
        return fx, fy

    draw.rectangle([left, top, right, bottom], outline="black")
    for tick in _log_ticks(ly0, ly1):
        _, y = px(x0, tick)
        draw.line([left, y, right, y], fill=(225, 225, 225))
        draw.text((6, y - 6), f"{tick:.3g}", fill="black", font=font)
    for tick in _x_ticks(x0, x1):
        x, _ = px(tick, 10 ** ly0)
        draw.line([x, bottom, x, bottom + 4], fill="black")
        draw.text((x - 8, bottom + 8), f"{tick:g}", fill="black", font=font)
    draw.text(((left + right) // 2 - 20, height - 22), xlabel, fill="black", font=font)
    draw.text((left, top - 16), ylabel, fill=(80, 80, 80), font=font)

    legend_y = top
    for i, (name, s) in enumerate(series.items()):
        color = COLORS.get(name, FALLBACK[i % len(FALLBACK)])
        good = [px(x, y) for x, y in s if y > 0 and math.isfinite(y)]
        if len(good) > 1:
            draw.line(good, fill=color, width=2)
        for x, y in good:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        draw.line([right + 12, legend_y + 6, right + 32, legend_y + 6], fill=color, width=2)
        draw.text((right + 38, legend_y), name, fill="black", font=font)
        legend_y += 18
    for name, value in hlines.items():
        color = COLORS.get(name.split()[-1], (90, 90, 90))
        _, y = px(x0, value)
        for xa in range(left, right, 12):
            draw.line([xa, y, min(xa + 6, right), y], fill=color, width=1)
        draw.line([right + 12, legend_y + 6, right + 17, legend_y + 6], fill=color)
        draw.line([right + 22, legend_y + 6, right + 27, legend_y + 6], fill=color)
        draw.text((right + 38, legend_y), name, fill="black", font=font)
        legend_y += 18
    return _png(img)


def write_chart(path: Path, png: bytes) -> None:
    from latentgen.runtime.files import atomic_write

    atomic_write(path, lambda fh: fh.write(png))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _log_ticks(ly0: float, ly1: float) -> list[float]:
    ticks = []
    for e in range(math.floor(ly0), math.ceil(ly1) + 1):
        for m in ((1, 2, 5) if ly1 - ly0 < 3 else (1,)):
            t = m * 10.0 ** e
            if ly0 <= math.log10(t) <= ly1:
                ticks.append(t)
    return ticks


def _x_ticks(x0: float, x1: float, n: int = 8) -> list[float]:
    raw = (x1 - x0) / n
    step = max(1.0, 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0)
    for m in (1, 2, 5, 10):
        if (x1 - x0) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(x0 / step) * step
    out, t = [], start
    while t <= x1 + 1e-9:
        out.append(t)
        t += step
    return out

"""The embedded default image data: cartoon faces drawn on the fly from a fixed seed.

Nothing is downloaded and nothing large ships in the wheel: each face is drawn with Pillow at
four times the target size and downsampled (anti-aliased). The faces vary along continuous
factors (head position and shape, skin tone, hair colour and length, eye spacing and gaze,
eyebrow tilt, smile to frown, background colour), the kind of data whose variation a
low-dimensional latent vector captures, so a short CPU run already synthesizes new faces.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_COUNT = 2048
SKIN = [(255, 224, 196), (241, 194, 150), (224, 172, 125), (198, 134, 86), (141, 85, 46)]
HAIR = [(25, 20, 20), (90, 56, 37), (185, 140, 80), (235, 205, 130), (160, 60, 30),
        (170, 170, 170)]
IRIS = [(70, 45, 25), (60, 110, 170), (70, 130, 80), (40, 30, 20)]


def _mix(a: tuple, b: tuple, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _pick(rng: random.Random, palette: list) -> tuple[int, int, int]:
    """A colour between two neighbouring palette entries: a continuum, not a few classes."""
    i = rng.randrange(len(palette) - 1)
    return _mix(palette[i], palette[i + 1], rng.random())


def draw_face(rng: random.Random, size: int) -> Image.Image:
    s = size * 4
    bg = tuple(int(150 + 90 * rng.random()) for _ in range(3))
    img = Image.new("RGB", (s, s), bg)
    d = ImageDraw.Draw(img)
    cx = s * (0.5 + rng.uniform(-0.06, 0.06))
    cy = s * (0.56 + rng.uniform(-0.04, 0.04))
    rx = s * rng.uniform(0.25, 0.31)
    ry = rx * rng.uniform(1.12, 1.3)
    skin = _pick(rng, SKIN)
    hair = _pick(rng, HAIR)
    shade = _mix(skin, (60, 30, 20), 0.35)

    # hair behind the head; long hair reaches down the sides
    long_hair = rng.random() < 0.45
    top = cy - ry * rng.uniform(1.05, 1.18)
    bottom = cy + ry * (rng.uniform(0.5, 0.95) if long_hair else 0.1)
    d.rounded_rectangle([cx - rx * 1.12, top, cx + rx * 1.12, bottom], radius=rx * 0.9, fill=hair)
    # ears, head
    for side in (-1, 1):
        ex = cx + side * rx * 0.98
        d.ellipse([ex - rx * 0.13, cy - ry * 0.12, ex + rx * 0.13, cy + ry * 0.14], fill=shade)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    # fringe: a chord of the head ellipse, its edge higher or lower per face
    a = rng.uniform(12, 40)
    d.chord([cx - rx * 1.02, cy - ry * 1.03, cx + rx * 1.02, cy + ry * 0.9], 180 + a, 360 - a,
            fill=hair)

    # eyes with a shared gaze direction
    ey = cy - ry * rng.uniform(0.02, 0.14)
    dx = rx * rng.uniform(0.36, 0.5)
    ew = rx * rng.uniform(0.16, 0.22)
    eh = ew * rng.uniform(0.55, 0.85)
    gaze = rng.uniform(-0.35, 0.35)
    iris = _pick(rng, IRIS)
    tilt = rng.uniform(-0.25, 0.25)
    brow_lift = rng.uniform(1.4, 2.4)
    for side in (-1, 1):
        ex = cx + side * dx
        d.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=(250, 250, 250))
        ir = eh * 0.85
        ix = ex + gaze * ew * 0.5
        d.ellipse([ix - ir, ey - ir, ix + ir, ey + ir], fill=iris)
        d.ellipse([ix - ir * 0.45, ey - ir * 0.45, ix + ir * 0.45, ey + ir * 0.45],
                  fill=(10, 10, 10))
        by = ey - eh * brow_lift
        inner, outer = ex - side * ew, ex + side * ew * 1.1
        d.line([(inner, by + side * 0 + tilt * ew), (outer, by - tilt * ew)],
               fill=_mix(hair, (0, 0, 0), 0.3), width=max(1, int(s * 0.025)))

    # nose
    ny = cy + ry * rng.uniform(0.12, 0.22)
    d.line([(cx, ey + eh), (cx - rx * 0.06, ny), (cx + rx * 0.04, ny)], fill=shade,
           width=max(1, int(s * 0.015)))

    # mouth: a parabola from frown (c < 0) to broad smile (c > 0)
    my = cy + ry * rng.uniform(0.4, 0.52)
    mw = rx * rng.uniform(0.3, 0.55)
    c = rng.uniform(-0.6, 1.0)
    pts = []
    for k in range(17):
        u = k / 16 * 2 - 1
        pts.append((cx + u * mw, my + c * ry * 0.14 * (1 - u * u)))
    d.line(pts, fill=(150, 40, 50), width=max(1, int(s * 0.03)), joint="curve")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def faces(n: int = DEFAULT_COUNT, size: int = 32, channels: int = 3, seed: int = 1234
          ) -> np.ndarray:
    """``n`` faces as uint8 (n, channels, size, size); the same seed gives the same faces."""
    rng = random.Random(seed)
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for i in range(n):
        img = draw_face(rng, size).convert(mode)
        arr = np.asarray(img)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out

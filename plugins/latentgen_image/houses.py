"""An embedded other category for the image modality: cartoon houses drawn on the fly.

The seed judges a model by its error on data of another category beside held-out data of its
own (`--negative-data builtin:houses`). Houses share the faces' palette of flat shapes on a
plain background but not their layout, so a faces model reconstructs them clearly worse than
held-out faces.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_COUNT = 128
WALL = [(200, 80, 60), (230, 200, 150), (245, 245, 235), (150, 150, 160), (120, 160, 200)]
ROOF = [(120, 40, 30), (60, 60, 70), (150, 90, 40), (40, 80, 50)]


def draw_house(rng: random.Random, size: int) -> Image.Image:
    s = size * 4
    sky = tuple(int(v) for v in (120 + 100 * rng.random(), 170 + 70 * rng.random(), 235))
    img = Image.new("RGB", (s, s), sky)
    d = ImageDraw.Draw(img)
    ground = s * rng.uniform(0.78, 0.88)
    d.rectangle([0, ground, s, s], fill=(70 + rng.randrange(40), 130 + rng.randrange(50), 60))
    w, h = s * rng.uniform(0.45, 0.7), s * rng.uniform(0.3, 0.42)
    x0 = s * 0.5 - w / 2 + s * rng.uniform(-0.08, 0.08)
    y0 = ground - h
    d.rectangle([x0, y0, x0 + w, ground], fill=rng.choice(WALL))
    peak = y0 - s * rng.uniform(0.12, 0.25)
    d.polygon([(x0 - s * 0.04, y0), (x0 + w / 2, peak), (x0 + w + s * 0.04, y0)],
              fill=rng.choice(ROOF))
    dw = w * rng.uniform(0.15, 0.22)
    dx = x0 + w * rng.uniform(0.2, 0.65)
    d.rectangle([dx, ground - h * 0.6, dx + dw, ground], fill=(90, 55, 30))
    for k in range(rng.choice((1, 2))):
        wx = x0 + w * (0.08 + 0.55 * k) if dx > x0 + w * 0.45 else x0 + w * (0.6 - 0.3 * k)
        d.rectangle([wx, y0 + h * 0.2, wx + w * 0.2, y0 + h * 0.45], fill=(250, 240, 170),
                    outline=(60, 60, 60), width=max(1, int(s * 0.012)))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def houses(n: int = DEFAULT_COUNT, size: int = 32, channels: int = 3, seed: int = 4321
           ) -> np.ndarray:
    """``n`` houses as uint8 (n, channels, size, size); the same seed gives the same houses."""
    rng = random.Random(seed)
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for i in range(n):
        arr = np.asarray(draw_house(rng, size).convert(mode))
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out

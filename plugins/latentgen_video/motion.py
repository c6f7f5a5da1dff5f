"""The embedded default clips: a ball bouncing across a field, drawn on the fly.

Motion anyone recognises, made of a few continuous factors the model can learn: where the ball
starts and how fast it rolls (it rebounds from the sides), how high and how often it bounces
(parabolic arcs under gravity), the phase of the bounce, its size and colour, and the colours of
sky and grass. A shadow under the ball shrinks as it rises. Every clip spans the same second
of motion, so ``frames`` only sets how finely it is sampled. Deterministic for a given seed.
"""

from __future__ import annotations

import colorsys

import numpy as np

DEFAULT_CLIPS = 384
GROUND = 0.8  # the grass starts at 80 % of the height


def bouncing_balls(n: int = DEFAULT_CLIPS, frames: int = 16, size: int = 32,
                   channels: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` clips as uint8 (n, channels, frames, size, size)."""
    rng = np.random.default_rng(seed)
    coords = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    t = np.linspace(0.0, 1.0, frames)
    luma = np.array([0.299, 0.587, 0.114], np.float32).reshape(3, 1, 1, 1)
    out = np.empty((n, channels, frames, size, size), dtype=np.uint8)
    for i in range(n):  # one clip at a time in float: memory stays at the uint8 result
        clip = _clip(rng, t, yy, xx)
        if channels == 1:
            clip = (clip * luma).sum(0, keepdims=True)
        out[i] = (clip.clip(0, 1) * 255).round()
    return out


def _clip(rng: np.random.Generator, t: np.ndarray, yy: np.ndarray, xx: np.ndarray
          ) -> np.ndarray:
    radius = rng.uniform(0.14, 0.2)
    x0, speed = rng.uniform(radius, 1 - radius), rng.uniform(-0.8, 0.8)
    height = rng.uniform(0.3, GROUND - 2 * radius - 0.02)
    period = rng.uniform(0.45, 1.0)  # seconds per bounce
    phase = rng.uniform(0.0, 1.0)
    ball = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.7, 1.0),
                                        rng.uniform(0.85, 1.0)), np.float32)
    sky_top = np.array(colorsys.hsv_to_rgb(rng.uniform(0.56, 0.60), rng.uniform(0.4, 0.55),
                                           rng.uniform(0.8, 0.9)), np.float32)
    sky_low = sky_top * 0.5 + 0.5
    grass = np.array(colorsys.hsv_to_rgb(rng.uniform(0.26, 0.32), rng.uniform(0.6, 0.75),
                                         rng.uniform(0.45, 0.55)), np.float32)

    # background: sky gradient above, grass below
    w = (yy / GROUND)[None]
    sky = sky_top[:, None, None] * (1 - w) + sky_low[:, None, None] * w
    back = np.where((yy < GROUND)[None], sky, grass[:, None, None]).astype(np.float32)

    # x rolls at constant speed and reflects off the sides; y follows parabolic arcs
    span = 1 - 2 * radius
    u = (x0 - radius + speed * t) % (2 * span)
    x = radius + np.where(u < span, u, 2 * span - u)
    s = (t / period + phase) % 1.0
    lift = height * 4 * s * (1 - s)
    y = GROUND - radius - lift

    frames = np.empty((3, len(t), *yy.shape), np.float32)
    for k in range(len(t)):
        img = back.copy()
        # the shadow: a flat dark ellipse on the grass, smaller and fainter as the ball rises
        closeness = 1 - lift[k] / (GROUND)
        sx, sy = radius * (0.6 + 0.6 * closeness), radius * 0.3
        d = ((xx - x[k]) / sx) ** 2 + ((yy - GROUND - 0.03) / sy) ** 2
        shade = np.clip(1.5 - d, 0, 1) * 0.45 * closeness
        img *= 1 - shade[None]
        # the ball: an anti-aliased disc with a light from the upper left
        dist = np.sqrt((xx - x[k]) ** 2 + (yy - y[k]) ** 2)
        alpha = np.clip((radius - dist) * yy.shape[0] + 0.5, 0, 1)[None]
        light = 1 - 0.5 * np.clip(((xx - x[k] + 0.4 * radius) ** 2 +
                                   (yy - y[k] + 0.4 * radius) ** 2) ** 0.5 / (2 * radius), 0, 1)
        color = ball[:, None, None] * (0.55 + 0.45 * light[None] / 1.0)
        frames[:, k] = img * (1 - alpha) + color * alpha
    return frames

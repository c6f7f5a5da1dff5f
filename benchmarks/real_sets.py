"""Real picture sets for the sweep and the time-to-quality benchmark, made from pictures that
Python packages ship (none of them in this repository): scikit-learn's handwritten digits,
scikit-image's `lfw_subset` faces and crops of scikit-image's colour photographs.

    pip install scikit-learn scikit-image
    python benchmarks/real_sets.py --out data/

writes, as uint8 .npy arrays (N, H, W[, C]) that `latentgen train --data` reads:

- digits_train.npy (700 digits 0-4), digits_test.npy (the other 201 digits 0-4),
  digits_other.npy (200 digits 5-9): 8 x 8 scans upsampled to 16 x 16, grayscale;
- lfw_train.npy (70 faces), lfw_test.npy (30 other faces), lfw_other.npy (30 of its
  non-face patches): 25 x 25 grayscale photographs;
- scenes_train.npy (2,000 crops), scenes_test.npy (300): 32 x 32 RGB crops, 48 to 128 px
  wide before resizing, of seven photographs; training crops from the left 70 % of each
  photograph, held-out ones from the right 30 %;
- scenes_other.npy (300 crops of the same size of grayscale texture photographs, as RGB);
- scenes64_train.npy (1,000), scenes64_test.npy (200), scenes64_other.npy (200): the same at
  64 x 64, from crops 96 to 256 px wide;
- holdout_K_train.npy, holdout_K_test.npy, holdout_K_other.npy for each digit K: 80 % and
  20 % of the other nine classes, and every K (anomaly detection with one digit held out);
- moving_digits_train.npy (2,000 clips), moving_digits_test.npy (300): videos (N, T, H, W)
  of 16 frames, a 16 x 16 digit gliding over a 32 x 32 black field at a constant velocity
  and rebounding from its sides; held-out clips move the other 20 % of the digit scans.

Every split is drawn from a fixed seed, so the same command makes the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC))


def digits(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    pics = np.stack([_resize((im * 255 / 16).round().astype(np.uint8), 16) for im in d.images])
    low = rng.permutation(np.flatnonzero(d.target < 5))
    high = rng.permutation(np.flatnonzero(d.target >= 5))
    return {"digits_train": pics[low[:700]], "digits_test": pics[low[700:]],
            "digits_other": pics[high[:200]]}


def lfw(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from skimage.data import lfw_subset

    pics = (lfw_subset() * 255).round().astype(np.uint8)  # 100 faces, then 100 non-faces
    faces, other = rng.permutation(100), 100 + rng.permutation(100)
    return {"lfw_train": pics[faces[:70]], "lfw_test": pics[faces[70:]],
            "lfw_other": pics[other[:30]]}


def _crops(photo: np.ndarray, n: int, lo: float, hi: float, rng: np.random.Generator,
           size: int) -> list[np.ndarray]:
    """``n`` random square crops, 1.5 to 4 times ``size`` wide, lying within columns
    [lo, hi) of the photograph, resized to ``size``."""
    h, w = photo.shape[:2]
    x0, x1 = int(lo * w), int(hi * w)
    out = []
    for _ in range(n):
        side = int(rng.integers(size * 3 // 2, min(4 * size, h, x1 - x0) + 1))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(x0, x1 - side + 1))
        out.append(_resize(np.ascontiguousarray(photo[y:y + side, x:x + side]), size))
    return out


def scenes(rng: np.random.Generator, size: int = 32, n_train: int = 2000, n_test: int = 300,
           name: str = "scenes") -> dict[str, np.ndarray]:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
              data.immunohistochemistry(), data.stereo_motorcycle()[0], data.colorwheel()]
    photos = [p[..., :3] for p in photos]
    k = len(photos)
    train = [c for p in photos for c in _crops(p, n_train // k + 1, 0.0, 0.7, rng, size)]
    test = [c for p in photos for c in _crops(p, n_test // k + 1, 0.7, 1.0, rng, size)]
    textures = [data.brick(), data.grass(), data.gravel(), data.camera(), data.moon()]
    other = [np.repeat(c[..., None], 3, -1)
             for p in textures for c in _crops(p, n_test // len(textures), 0.0, 1.0, rng, size)]
    return {f"{name}_train": np.stack(train[:n_train]), f"{name}_test": np.stack(test[:n_test]),
            f"{name}_other": np.stack(other)}


def scenes64(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return scenes(rng, 64, 1000, 200, "scenes64")


def digit_holdouts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """For each digit k, an anomaly-detection split of all 1,797 digits: 80 % of the other
    nine classes to train on (holdout_k_train), the other 20 % (holdout_k_test) and every
    example of digit k (holdout_k_other)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pics = np.stack([_resize((im * 255 / 16).round().astype(np.uint8), 16) for im in d.images])
    out = {}
    for k in range(10):
        seen = rng.permutation(np.flatnonzero(d.target != k))
        cut = int(0.8 * len(seen))
        out[f"holdout_{k}_train"] = pics[seen[:cut]]
        out[f"holdout_{k}_test"] = pics[seen[cut:]]
        out[f"holdout_{k}_other"] = pics[d.target == k]
    return out


def moving_digits(rng: np.random.Generator, frames: int = 16, size: int = 32,
                  n_train: int = 2000, n_test: int = 300) -> dict[str, np.ndarray]:
    """Clips of one digit gliding and rebouncing (a moving-digits video set)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pics = np.stack([_resize((im * 255 / 16).round().astype(np.uint8), 16) for im in d.images])
    order = rng.permutation(len(pics))
    cut = int(0.8 * len(pics))

    def clips(source: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros((n, frames, size, size), np.uint8)
        span = size - 16
        for i in range(n):
            pic = source[rng.integers(len(source))]
            start = rng.uniform(0, span, 2)
            speed = rng.uniform(-2.0, 2.0, 2)  # pixels per frame
            for t in range(frames):
                u = (start + speed * t) % (2 * span)  # reflected at both sides
                y, x = np.where(u < span, u, 2 * span - u).round().astype(int)
                out[i, t, y:y + 16, x:x + 16] = pic
        return out

    return {"moving_digits_train": clips(pics[order[:cut]], n_train),
            "moving_digits_test": clips(pics[order[cut:]], n_test)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the .npy files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for make in (digits, lfw, scenes, scenes64, digit_holdouts, moving_digits):
        for name, arr in make(np.random.default_rng(args.seed)).items():
            np.save(args.out / f"{name}.npy", arr)
            print(f"{args.out / name}.npy {arr.shape}")


if __name__ == "__main__":
    main()

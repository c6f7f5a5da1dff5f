"""Time of `latentgen evaluate RUN --synthesis --n N` on pictures of a given size.

It writes 2 N random smooth RGB pictures (training data) and N more (held-out), trains a
generator for a few steps on them (not measured; quality does not change the cost), then times
`evaluate --synthesis --no-reconstruction --n N --test-data HELD_OUT` in the CLI as a user
runs it (process start, loading and all), and the same with the reconstruction errors
(`evaluate --synthesis`, which also refines the training latents). It prints one JSON object
with both times and the synthesis figures.

    python benchmarks/synthesis_swd.py --n 1000 --size 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _pictures(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, size // 8, size // 8, 3))
    return (np.kron(coarse, np.ones((1, 8, 8, 1))) * 255).astype(np.uint8)


def _latentgen(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "latentgen", *args], capture_output=True,
                         text=True, check=True)
    return time.perf_counter() - start, res.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        np.save(root / "train.npy", _pictures(2 * args.n, args.size, 0))
        np.save(root / "test.npy", _pictures(args.n, args.size, 1))
        _latentgen("train", "--data", str(root / "train.npy"), "--out", str(root / "run"),
                   "--image-size", str(args.size), "--max-steps", "3", "--epochs", "1",
                   "--device", "cpu")
        base = ["evaluate", str(root / "run"), "--test-data", str(root / "test.npy"),
                "--infer-steps", "1", "--device", "cpu", "--json"]
        alone, out = _latentgen(*base, "--synthesis", "--no-reconstruction", "--n", str(args.n))
        both, _ = _latentgen(*base, "--synthesis", "--n", str(args.n))
    found = json.loads(out)["synthesis"]
    print(json.dumps({"n": found["n"], "size": args.size,
                      "seconds_synthesis": round(alone, 2),
                      "seconds_with_reconstruction": round(both, 2),
                      "swd": found["swd"], "swd_pca": found["swd_pca"],
                      "swd_floor": found["swd_floor"], "rel": found["rel"]}))


if __name__ == "__main__":
    main()

"""Synthesis throughput: examples/s of `latentgen synthesize`'s writer for pictures (PNG),
sounds (WAV) and videos (MP4 and GIF), and the share of the time spent generating f(Z) versus
encoding and writing the files (one file per example, each written whole or not at all, the
way ``write_synthesis`` writes them).

The generators are each modality's default (untrained: the time does not depend on the
weights) at the default options; prints one JSON object. Usage:

    .venv/bin/python benchmarks/synthesis_throughput.py [--n 32] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from latentgen.plugins.registry import get_registry


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(name: str, fmt: str | None, n: int, batch_size: int, latent_dim: int) -> dict:
    modality = get_registry().modality(name)
    opts = modality.make_options(None)
    torch.manual_seed(0)
    gen = modality.build_generator(latent_dim, opts).eval()
    generating = writing = 0.0
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        out = Path(folder)
        for start in range(0, n, batch_size):
            t0 = time.perf_counter()
            z = torch.randn(min(batch_size, n - start), *gen.latent_shape)
            x = gen(z).clamp(*modality.data_range)
            t1 = time.perf_counter()
            for i in range(len(x)):  # as write_synthesis: one whole file per example
                modality.save_examples(x[i:i + 1], out, "sample", opts, start=start + i,
                                       fmt=fmt)
            t2 = time.perf_counter()
            generating, writing = generating + t1 - t0, writing + t2 - t1
        size = sum(p.stat().st_size for p in out.iterdir()) / n
    total = generating + writing
    return {"modality": name, "format": fmt or (modality.formats or ("default",))[0],
            "data_shape": list(gen.data_shape), "n": n,
            "examples_per_s": round(n / total, 1),
            "generate_share": round(generating / total, 3),
            "write_share": round(writing / total, 3),
            "bytes_per_file": round(size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="examples per format")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases = [("image", None), ("audio", None), ("video", "mp4"), ("video", "gif")]
    results = [measure(name, fmt, args.n, args.batch_size, args.latent_dim)
               for name, fmt in cases]
    print(json.dumps({"cpu": cpu_name(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()

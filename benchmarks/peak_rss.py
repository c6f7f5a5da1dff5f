"""Peak resident memory of `latentgen train --max-steps 5` against the number of examples.

For each N it writes N random 16x16 RGB pictures as an array, packs them with `latentgen
prepare` (not measured), then runs the CLI's `train --data PREPARED --max-steps 5` in a child
Python process, and then `train --resume --max-steps 10` (whose bank comes from the
checkpoint); each reports its own peak resident set (VmHWM from /proc/self/status) as it
ends. (wait4's ru_maxrss is not used: it also counts short-lived helpers that libraries fork,
whose pages before exec are a copy of the parent's.) DataLoader workers are processes of their
own and are not in the figure; `--workers 0` reads in the training process itself.

It prints one JSON object: the peaks, the growth per extra example between consecutive sizes,
and whether it meets the bound: peak(N2) - peak(N1) <= 4 * d * (N2 - N1) + 1 MiB, i.e. at most
one float32 latent per extra example plus a small constant.

    python benchmarks/peak_rss.py --examples 20000 200000 --latent-dim 16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: the "small constant" of the bound: allocator and page granularity
SLACK = 1 << 20

#: runs the CLI with the given arguments, then prints the process's peak RSS
CHILD = """
import sys
from latentgen_cli.app import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
with open("/proc/self/status") as fh:
    peak = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
print(f"PEAK_RSS_KIB {peak}", file=sys.stderr)
sys.exit(code)
"""


def peak_rss(args: list[str]) -> int:
    """Run `latentgen ARGS` in a child process; its peak RSS in bytes."""
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"latentgen {' '.join(args)} failed:\n{proc.stderr}")
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KIB")][-1]
    return int(line.split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--latents-on", default="device")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    latentgen = [sys.executable, "-m", "latentgen"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.examples):
            array = Path(tmp, f"pictures-{n}.npy")
            rng = np.random.default_rng(n)
            np.save(array, rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8))
            packed = Path(tmp, f"pictures-{n}.u8")
            subprocess.run([*latentgen, "prepare", "--modality", "image", "--data", str(array),
                            "--image-size", "16", "--out", str(packed)], check=True,
                           stdout=subprocess.DEVNULL)
            array.unlink()
            cmd = ["train", "--modality", "image", "--data", str(packed),
                   "--max-steps", str(args.steps), "--latent-dim", str(args.latent_dim),
                   "--batch-size", "64", "--langevin-steps", "5", "--device", "cpu",
                   "--latents-on", args.latents_on, "--out", str(Path(tmp, f"run-{n}"))]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            peak = peak_rss(cmd)
            # then resume the same run for as many steps again (the bank comes from the
            # checkpoint)
            resumed = peak_rss(["train", "--resume", "--out", str(Path(tmp, f"run-{n}")),
                                "--max-steps", str(2 * args.steps)])
            bank = 0 if args.latents_on == "disk" else 4 * args.latent_dim * n
            rows.append({"examples": n, "peak_rss_bytes": peak, "bank_bytes": bank,
                         "peak_minus_bank_bytes": peak - bank,
                         "resume_peak_rss_bytes": resumed,
                         "resume_peak_minus_bank_bytes": resumed - bank})
    bound = 4 * args.latent_dim
    pairs = list(zip(rows, rows[1:]))

    def growth(key: str) -> list[float]:
        return [round((b[key] - a[key]) / (b["examples"] - a["examples"]), 2) for a, b in pairs]

    within = all(b[key] - a[key] <= bound * (b["examples"] - a["examples"]) + SLACK
                 for a, b in pairs for key in ("peak_rss_bytes", "resume_peak_rss_bytes"))
    print(json.dumps({"latent_dim": args.latent_dim, "latents_on": args.latents_on,
                      "workers": args.workers, "max_steps": args.steps, "runs": rows,
                      "growth_bytes_per_example": growth("peak_rss_bytes"),
                      "resume_growth_bytes_per_example": growth("resume_peak_rss_bytes"),
                      "bound_bytes_per_example": bound, "slack_bytes": SLACK,
                      "within_bound": within}))


if __name__ == "__main__":
    main()

"""MNIST anomaly detection, the protocol of the latent-EBM paper's Table 3 (Pang et al. 2020,
after MEG, Kumar et al. 2019): train on the nine other digits of MNIST's training set, score
MNIST's whole test set, and report the AUPRC with the held-out digit as the positive class;
digits 1, 4, 5, 7 and 9, mean and standard deviation over seeds.

    python benchmarks/protocols/mnist_anomaly.py --mnist ../shared/data/mnist \\
        --digit 1 --digit 4 --digit 5 --digit 7 --digit 9 --seed 0 --results mnist.jsonl

Each (digit, seed) trains ``latentgen train --data "MNIST?split=train&drop=K" --prior ebm
--epochs 10 --channels 1`` (defaults otherwise; ``--set NAME=VALUE`` changes a setting) and
scores ``MNIST?split=test`` with ``latentgen score``'s defaults. One JSON line per run goes to
stdout and is appended to ``--results``; a (digit, seed) already in that file is not run again,
so a protocol can be run a few digits at a time. At the end: a markdown table of every digit
in the file with the published AUPRC beside ours: the AUPRC of each of `latentgen score`'s
scores (joint, the default; prior; norm; reconstruction) and of PCA's residual at equal d, and
the seconds each run took. ``--check`` runs the same pipeline on a small stand-in made in MNIST's
own IDX format (no data needed; what the tests run).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from results import Results

#: published AUPRC on digits 1, 4, 5, 7, 9 (latent-EBM paper, Table 3, and two later papers
#: of the family that use the same protocol)
PUBLISHED: dict[str, list[float | None]] = {
    "VAE": [.063, .337, .325, .148, .104],
    "MEG": [.281, .401, .402, .290, .342],
    "BiGAN-sigma": [.287, .443, .514, .347, .307],
    "LEBM (Pang et al. 2020)": [.336, .630, .619, .463, .413],
    "diffusion-amortized prior (Yu et al. 2023)": [.684, .911, .939, .801, None],
    "joint latent EBM (Cui et al. 2023)": [.722, .949, .980, .941, .935],
}
DIGITS = [1, 4, 5, 7, 9]
#: the columns of `latentgen score` whose AUPRC is reported: each score, and PCA's residual
COLUMNS = ["joint", "prior", "norm", "reconstruction", "pca_residual"]


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_one(mnist: str, digit: int, seed: int, epochs: int, settings: dict[str, Any],
            keep: Path | None, device: str) -> dict[str, Any]:
    """Train without ``digit``, score the test set; the row of the results file."""
    import latentgen
    from latentgen.data import labels_of
    from latentgen.measures.anomaly import DEFAULT_SCORE, detection

    with tempfile.TemporaryDirectory() as tmp:
        out = keep / f"digit{digit}-s{seed}" if keep else Path(tmp) / "run"
        options = {"channels": 1, "prior": "ebm", "epochs": epochs, **settings}
        start = time.perf_counter()
        latentgen.train(modality="image", data=f"{mnist}?split=train&drop={digit}", out=out,
                        seed=seed, device=device, **options)
        trained = time.perf_counter()
        run = latentgen.load_run(out, device)
        test = f"{mnist}?split=test"
        scores = run.score(test)
        labels = labels_of(test) == digit
        row: dict[str, Any] = {"digit": digit, "seed": seed, "epochs": epochs,
                               "default_score": DEFAULT_SCORE,
                               "settings": settings, "n_test": int(len(labels)),
                               "chance": float(labels.mean()),
                               "train_seconds": round(trained - start, 1),
                               "score_seconds": round(time.perf_counter() - trained, 1)}
        for column in COLUMNS:
            values = scores[column].numpy()
            row[f"auprc_{column}"] = detection(values[~labels], values[labels])["auprc"]
        row["auroc_default"] = detection(scores["score"].numpy()[~labels],
                                         scores["score"].numpy()[labels])["auroc"]
        return row


def table(rows: list[dict[str, Any]]) -> str:
    """The published rows and ours (mean ± standard deviation over seeds) as markdown."""
    def cell(values: list[float], digits: int = 3) -> str:
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return (f"{statistics.mean(values):.{digits}f} ± "
                f"{statistics.stdev(values):.{digits}f}")

    lines = ["| model | " + " | ".join(f"digit {d}" for d in DIGITS) + " |",
             "|---|" + "---|" * len(DIGITS)]
    for name, values in PUBLISHED.items():
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.3f}"
                                                for v in values) + " |")
    from latentgen.measures.anomaly import DEFAULT_SCORE

    names = {"prior": "latentgen, -log p(Z\\*)", "joint": "latentgen, -log p(Y, Z\\*)",
             "reconstruction": "latentgen, reconstruction term ‖Y - f(Z\\*)‖² / 2σ²",
             "norm": "latentgen, latent norm ‖Z\\*‖² / 2",
             "pca_residual": "PCA residual at equal d"}
    for column in COLUMNS:
        # rows written before a score existed have no column for it
        got = [cell([r[f"auprc_{column}"] for r in rows
                     if r["digit"] == d and f"auprc_{column}" in r]) for d in DIGITS]
        name = names[column]
        if column == DEFAULT_SCORE:
            name = f"**{name} (latentgen score's default)**"
        lines.append(f"| {name} | " + " | ".join(got) + " |")
    chance = [cell([r["chance"] for r in rows if r["digit"] == d][:1]) for d in DIGITS]
    lines.append("| chance (share of the digit) | " + " | ".join(chance) + " |")
    seconds = [cell([r["train_seconds"] + r["score_seconds"] for r in rows if r["digit"] == d],
                    0) for d in DIGITS]
    lines.append("| seconds per run (train + score) | " + " | ".join(seconds) + " |")
    return "\n".join(lines)


def stand_in(folder: Path, per_digit: int = 12, side: int = 28) -> str:
    """A small MNIST in its own IDX layout: each digit a blob at its own place, so the classes
    differ; the pipeline's check, not a measurement."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_digit), ("t10k", per_digit // 2)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        pictures = np.zeros((len(labels), side, side), np.uint8)
        for i, k in enumerate(labels):
            r, c = 4 + 2 * (k % 5) + rng.integers(0, 3), 4 + 4 * (k // 5) + rng.integers(0, 3)
            pictures[i, r:r + 8, c:c + 10] = 255
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">IIII", 0x803, len(labels), side, side) + pictures.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">II", 0x801, len(labels)) + labels.tobytes())
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="MNIST's folder (the IDX files, .gz or not, or "
                        "torchvision's MNIST/raw layout)")
    parser.add_argument("--digit", type=int, action="append", default=[])
    parser.add_argument("--seed", type=int, action="append", default=[])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--results", type=Path, help="JSON lines file: appended to, read for "
                        "the table, and runs already in it are skipped")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the runs in DIR")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--check", action="store_true", help="the pipeline on a stand-in")
    args = parser.parse_args(argv)
    settings = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    with tempfile.TemporaryDirectory() as tmp:
        mnist = stand_in(Path(tmp)) if args.check else args.mnist
        if not mnist:
            parser.error("give --mnist FOLDER (or --check)")
        if args.check:
            args.epochs = 1
            settings = {"batch_size": 16, "width": 8, "latent_dim": 4,
                        "prior_width": 8, **settings}
        results = Results(args.results)
        for digit in args.digit or DIGITS:
            for seed in args.seed or [0]:
                if not results.has(digit=digit, seed=seed, epochs=args.epochs,
                                   settings=settings):
                    results.add(run_one(mnist, digit, seed, args.epochs, settings, args.keep,
                                        args.device))
    print(table(results.rows))


if __name__ == "__main__":
    main()

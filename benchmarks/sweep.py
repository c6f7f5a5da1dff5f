"""A sweep of training settings over several data sets: held-out MSE / PCA's, synthesis rel
and training time for every combination. Prints one JSON line per run and a Markdown table.

Defaults are chosen with it by held-out error AND synthesis, not by training error:

    python benchmarks/sweep.py \\
        --set digits:image:train.npy:test.npy:image_size=16,channels=1,latent_dim=10 \\
        --set faces:image:builtin:faces:builtin:faces-test \\
        --grid sigma=0.3,0.5 --grid lr=0.001,0.002 --epochs 30 --json sweep.jsonl

A data set is NAME:MODALITY:TRAIN:TEST[:OPTIONS] (a ``builtin:`` source counts as one
field; OPTIONS are KEY=VALUE settings or modality options, comma-separated); every ``--grid
KEY=V1,V2`` multiplies the runs. Settings not named keep latentgen's defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import latentgen
from latentgen.assembly.config import TrainConfig

SETTINGS = {f.name for f in fields(TrainConfig)}


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _fields(spec: str) -> list[str]:
    """Split on ':' but keep ``builtin:NAME`` together."""
    parts, out = spec.split(":"), []
    while parts:
        p = parts.pop(0)
        out.append(f"{p}:{parts.pop(0)}" if p == "builtin" and parts else p)
    return out


def parse_set(spec: str) -> dict[str, Any]:
    parts = _fields(spec)
    if len(parts) not in (4, 5):
        raise SystemExit(f"--set {spec}: give NAME:MODALITY:TRAIN:TEST[:OPTIONS]")
    pairs = parts[4].split(",") if len(parts) == 5 else []
    bad = [kv for kv in pairs if "=" not in kv]
    if bad:
        raise SystemExit(f"--set {spec}: options are KEY=VALUE, got {bad[0]!r}")
    opts = dict(kv.split("=", 1) for kv in pairs)
    return {"name": parts[0], "modality": parts[1], "data": parts[2], "test": parts[3],
            "options": {k: _value(v) for k, v in opts.items()}}


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, modality options) of a flat KEY=VALUE mapping (``train`` takes
    both as keywords; the split tells which ``epochs`` to default)."""
    settings = {k: v for k, v in values.items() if k in SETTINGS}
    return settings, {k: v for k, v in values.items() if k not in SETTINGS}


def run_one(ds: dict[str, Any], point: dict[str, Any], epochs: int, n: int,
            out: Path) -> dict[str, Any]:
    settings, options = split_settings({**ds["options"], **point})
    settings.setdefault("epochs", epochs)
    data = None if ds["data"] == "builtin:default" else ds["data"]
    latentgen.train(out=out, modality=ds["modality"], data=data, device="cpu",
                    checkpoint_every=0, sample_every=settings["epochs"],
                    eval_every=settings["epochs"], **options, **settings)
    trained = latentgen.load_run(out, "cpu")
    seconds = sum(float(r["seconds"]) for r in trained.metrics())
    result = trained.evaluate(["reconstruction", "latents", "synthesis"], test_data=ds["test"],
                              n=n)
    test, pca = result["test"]["mse"], result["pca"]["test"]
    return {"set": ds["name"], **point, "epochs": settings["epochs"],
            "train_examples": result["train"]["n"], "test_mse": test, "pca_test_mse": pca,
            "mse_over_pca": test / pca, "train_mse": result["train"]["mse"],
            "swd": result["synthesis"]["swd"], "swd_pca": result["synthesis"]["swd_pca"],
            "swd_floor": result["synthesis"]["swd_floor"], "rel": result["synthesis"]["rel"],
            "latents_kl": result["latents"]["kl"], "train_seconds": round(seconds, 1),
            # the run's sigma at the end: learned (--learn-sigma) or as given
            "sigma_end": trained.model.observation.sigma}


def table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = ["set", *keys, "held-out MSE / PCA", "synthesis rel", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["set"], *[str(r[k]) for k in keys],
                                        f"{r['mse_over_pca']:.2f}", f"{r['rel']:.2f}",
                                        f"{r['train_seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", required=True, help="NAME:MODALITY:TRAIN:TEST"
                    "[:OPTIONS]; TRAIN builtin:default is the modality's embedded data")
    ap.add_argument("--grid", action="append", default=[], help="KEY=V1,V2,...")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--n", type=int, default=1000, help="synthesis samples")
    ap.add_argument("--json", type=Path, help="append every result as a JSON line here")
    ap.add_argument("--keep", type=Path, help="keep every run under this folder (to look at "
                    "its samples), named SET-KEY=VALUE-...; default: temporary folders")
    args = ap.parse_args(argv)
    sets = [parse_set(s) for s in args.set]
    if any("=" not in g for g in args.grid):
        ap.error("--grid takes KEY=V1,V2,...")
    grid = {k: [_value(v) for v in vs.split(",")] for k, vs in
            (g.split("=", 1) for g in args.grid)}
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    rows = []
    for ds in sets:
        for point in points:
            name = "-".join([ds["name"], *(f"{k}={v}" for k, v in point.items())])
            if args.keep:
                row = run_one(ds, point, args.epochs, args.n, args.keep / name)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    row = run_one(ds, point, args.epochs, args.n, Path(tmp) / "run")
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(line + "\n")
    print(table(rows, list(grid)), file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()

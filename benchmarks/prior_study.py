"""Latent priors side by side: the same generator and training budget with each prior, then
synthesis (sliced Wasserstein distance of prior samples from held-out data, beside PCA and the
floor) and anomaly detection (held-out data of the training category against data of another,
the model's -log p(Y, Z*) beside the PCA residual). One JSON line per (prior, seed).

    python benchmarks/prior_study.py --data data/digits_train.npy \\
        --test-data data/digits_test.npy --negative-data data/digits_other.npy \\
        --prior gaussian --prior ebm --seed 0 --seed 1 --set epochs=60

``--set NAME=VALUE`` passes a training setting or modality option to every run (values are
read as Python literals where they parse, else as text).
"""

from __future__ import annotations

import argparse
import ast
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", default="image")
    parser.add_argument("--data", required=True)
    parser.add_argument("--test-data", required=True)
    parser.add_argument("--negative-data")
    parser.add_argument("--prior", action="append", default=[])
    parser.add_argument("--seed", type=int, action="append", default=[])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--n", type=int, default=1000, help="samples for the synthesis measure")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs, as DIR/PRIOR-sSEED")
    args = parser.parse_args()
    import latentgen

    extra = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    for prior in args.prior or ["gaussian", "ebm"]:
        for seed in args.seed or [0]:
            with tempfile.TemporaryDirectory() as tmp:
                out = (Path(args.keep) / f"{prior}-s{seed}" if args.keep
                       else Path(tmp) / "run")
                start = time.perf_counter()
                latentgen.train(modality=args.modality, data=args.data, out=out, prior=prior,
                                seed=seed, device="cpu", **extra)
                seconds = time.perf_counter() - start
                run = latentgen.load_run(out, "cpu")
                res = run.evaluate(["reconstruction", "latents", "synthesis"],
                                   test_data=args.test_data,
                                   negative_data=args.negative_data, n=args.n, train=False)
                syn = res["synthesis"]
                row = {"prior": prior, "seed": seed, "settings": extra,
                       "train_seconds": round(seconds, 1),
                       "swd": syn["swd"], "swd_pca": syn["swd_pca"],
                       "swd_floor": syn["swd_floor"], "rel": syn["rel"],
                       "swd_levels": syn["swd_levels"],
                       "test_mse": res["test"]["mse"], "pca_test_mse": res["pca"]["test"],
                       "latent_mmd": res["latents"]["mmd"],
                       "latent_mmd_threshold": res["latents"]["mmd_threshold"]}
                if "anomaly" in res:
                    row.update({k: res["anomaly"][k] for k in
                                ("auroc", "auprc", "pca_auroc", "pca_auprc", "chance_auprc")})
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

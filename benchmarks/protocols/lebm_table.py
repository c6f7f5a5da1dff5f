"""The latent-EBM paper's Table 1 (Pang et al. 2020): d = 100, the reconstruction error of the
test set and the FID of 50,000 samples against the training set, on SVHN (32 px), CIFAR-10
(32 px) and CelebA (64 px), beside the published numbers.

    python benchmarks/protocols/lebm_table.py --svhn /data/svhn --cifar10 \\
        /data/cifar-10-batches-py --celeba /data/celeba/img_align_celeba \\
        --device cuda --epochs 100 --results lebm.jsonl
    python benchmarks/protocols/lebm_table.py --check     # CPU: stand-ins in the real formats

Each data set trains ``latentgen train --data "SOURCE?split=train" --latent-dim 100 --prior ebm``
(``--prior normal`` too with ``--abp``: the plain ABP rows), defaults otherwise
(``--set NAME=VALUE`` changes a setting), then measures:

- MSE: per-element squared error of the test split's reconstructions (latents inferred by
  ``evaluate``'s defaults), on pixels in [0, 1] as latentgen reports it; the paper's code
  works on [-1, 1], where the same error is 4 x larger, so both are printed;
- FID: ``fid_inception`` (the TF-Inception network of pytorch-fid; ``latentgen[fid]``) of
  ``--n-fid`` samples against the whole training split, as the paper's code computes it
  (reference statistics cached per data set).

One JSON line per (data set, prior) goes to stdout and to ``--results`` (rows already there
are skipped), then a markdown table. ``--check`` runs the same pipeline on small files in
SVHN's, CIFAR-10's and CelebA's own formats, with a stand-in FID network of random weights:
it shows the pipeline works, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import ast
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from results import Results

#: published (MSE, FID): LEBM, and plain ABP's FID where the paper gives it
PUBLISHED = {"svhn": {"ebm": (0.008, 29.44), "normal": (None, 49.71)},
             "cifar10": {"ebm": (0.020, 70.15), "normal": (None, None)},
             "celeba": {"ebm": (0.013, 37.87), "normal": (None, 51.50)}}
SIZES = {"svhn": 32, "cifar10": 32, "celeba": 64}
SCHEMES = {"svhn": "svhn", "cifar10": "cifar10", "celeba": "celeba"}


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def measure(name: str, source: str, prior: str, args: argparse.Namespace,
            settings: dict[str, Any]) -> dict[str, Any]:
    """Train on the training split, then the test split's MSE and FID of samples."""
    import latentgen
    from latentgen.measures.features import fid

    base = f"{SCHEMES[name]}:{source}"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep / f"{name}-{prior}" if args.keep else Path(tmp) / "run"
        options = {"latent_dim": 100, "prior": prior, "image_size": SIZES[name], "channels": 3,
                   "epochs": args.epochs, **settings}
        start = time.perf_counter()
        latentgen.train(modality="image", data=f"{base}?split=train", out=out,
                        device=args.device, **options)
        trained = time.perf_counter()
        run = latentgen.load_run(out, args.device)
        result = run.evaluate(test_data=f"{base}?split=test", train=False)
        mse = float(result["test"]["mse"])
        measured = time.perf_counter()
        train = run.training_examples()
        reference = torch.cat([train.get(part) for part in torch.arange(len(train)).split(4096)])
        samples = run.synthesize(args.n_fid)
        value = fid(samples, reference, extractor="fid_inception",
                    weights=args.fid_weights, device=run.device, label=f"{name}-train")
        return {"data": name, "prior": prior, "epochs": options["epochs"],
                "settings": settings, "n_train": len(train), "n_fid": args.n_fid,
                "mse": mse, "mse_minus1_1": 4 * mse, "pca_mse": float(result["pca"]["test"]),
                "fid": value, "stand_in": bool(args.check),
                "train_seconds": round(trained - start, 1),
                "mse_seconds": round(measured - trained, 1),
                "fid_seconds": round(time.perf_counter() - measured, 1),
                "device": str(run.device)}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| data | model | MSE [0, 1] (x4: [-1, 1]) | PCA MSE at d = 100 | FID | "
             "published MSE (scale unstated) | published FID | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p_mse, p_fid = PUBLISHED[r["data"]][r["prior"]]
        model = "latent EBM prior" if r["prior"] == "ebm" else "plain ABP (N(0, I))"
        lines.append(f"| {r['data']}{' (stand-in)' if r['stand_in'] else ''} | {model} | "
                     f"{r['mse']:.4f} ({r['mse_minus1_1']:.4f}) | {r['pca_mse']:.4f} | "
                     f"{r['fid']:.2f} | {'–' if p_mse is None else p_mse} | "
                     f"{'–' if p_fid is None else p_fid} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def stand_ins(root: Path) -> dict[str, str]:
    """Small files in the real formats: SVHN's .mat pair, CIFAR-10's pickled batches, CelebA's
    folder of 178 x 218 JPEGs with its partition list; smooth random pictures."""
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(0)

    def pictures(n: int, h: int, w: int) -> np.ndarray:
        low = rng.integers(0, 256, (n, h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
        return np.stack([np.asarray(Image.fromarray(p).resize((w, h))) for p in low])

    svhn = root / "svhn"
    svhn.mkdir()
    for split, n in (("train", 64), ("test", 32)):
        savemat(svhn / f"{split}_32x32.mat", {"X": pictures(n, 32, 32).transpose(1, 2, 3, 0),
                                              "y": rng.integers(1, 11, (n, 1))})
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = pictures(16, 32, 32).transpose(0, 3, 1, 2).reshape(16, -1)
        (cifar / name).write_bytes(pickle.dumps({b"data": data,
                                                 b"labels": list(rng.integers(0, 10, 16))}))
    celeba = root / "celeba" / "img_align_celeba"
    celeba.mkdir(parents=True)
    lines = []
    for i, picture in enumerate(pictures(48, 218, 178)):
        Image.fromarray(picture).save(celeba / f"{i + 1:06d}.jpg", quality=95)
        lines.append(f"{i + 1:06d}.jpg {0 if i < 32 else 2}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return {"svhn": str(svhn), "cifar10": str(cifar), "celeba": str(celeba)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in SIZES:
        parser.add_argument(f"--{name}", metavar="PATH", help=f"{name}'s local files")
    parser.add_argument("--abp", action="store_true", help="also the plain ABP rows "
                        "(--prior normal)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--n-fid", type=int, default=50000)
    parser.add_argument("--fid-weights", help="pt_inception-2015-12-05-6726825d.pth (default: "
                        "the torch hub cache)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--keep", type=Path, metavar="DIR")
    parser.add_argument("--check", action="store_true", help="stand-ins in the real formats")
    args = parser.parse_args(argv)
    settings = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    results = Results(args.results)
    with tempfile.TemporaryDirectory() as tmp:
        sources = {name: getattr(args, name) for name in SIZES if getattr(args, name)}
        if args.check:
            from latentgen.plugins.fid_inception import standin_weights

            sources = stand_ins(Path(tmp))
            args.fid_weights = str(standin_weights(Path(tmp) / "standin.pth"))
            args.epochs, args.n_fid = 1, min(args.n_fid, 32)
            settings = {"batch_size": 16, "width": 8, "prior_width": 16, **settings}
        if not sources:
            parser.error("give --svhn, --cifar10 and/or --celeba (or --check)")
        for name, source in sources.items():
            for prior in ["ebm", "normal"] if args.abp else ["ebm"]:
                if not results.has(data=name, prior=prior, epochs=args.epochs,
                                   settings=settings, stand_in=bool(args.check)):
                    results.add(measure(name, source, prior, args, settings))
    print(table(results.rows))


if __name__ == "__main__":
    main()

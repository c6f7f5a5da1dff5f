"""The linear baseline and the floor of `latentgen evaluate --synthesis`, from the data alone.

For a training set, a reference set, d and N, the reference patches, the floor and the PCA
samples of ``synthesis_quality`` depend on the data, the seed and the modality options only,
not on the trained generator. This script computes them as ``synthesis_quality`` does (the
same picks of reference and floor examples, the same feature pictures, the same PPCA fit and
seed), without training anything:

- ``swd_pca``: the noise-free linear model, mean + W z (the synthesis baseline now);
- ``swd_pca_noisy``: probabilistic PCA's samples, mean + W z + sigma e (the baseline before);
- ``swd_floor``: training examples against the reference.

With ``--swd X`` (a model's documented SWD at the same data, d, N and seed) it also prints
``rel_noisy`` = (X - floor) / (noisy PCA - floor) and ``rel`` = (X - floor) / (PCA - floor).

    python benchmarks/pca_baseline.py --modality image --data digits_train.npy \\
        --reference digits_test.npy --d 10 --n 200 --set image_size=16 --set channels=1 \\
        --swd 202.0

``--reference train`` measures against the training data itself (the floor is then its other
half, as ``--reference train`` does); ``--data`` and ``--reference`` take what ``latentgen
--data`` takes (a path, ``builtin:NAME``, a prepared file); ``--set NAME=VALUE`` gives a
modality option (``image_size=32``, ``representation=waveform``, ``frames=8``). ``--d`` is the
run's ``--latent-dim``: PCA keeps as many components as the generator built with it has
latent numbers (a latent field or a clip's latents have more than d).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

import torch

from latentgen.data.examples import Examples
from latentgen.data.prepared import is_prepared, open_prepared
from latentgen.measures.synthesis import MAX_PICTURES, SWDReference, _examples, _pick, fit_ppca
from latentgen.plugins.options import option_type
from latentgen.plugins.registry import get_registry
from latentgen.runtime.seeding import derived_generator


def _value(field: dataclasses.Field, text: str) -> Any:
    want = option_type(field)
    if want is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return want(text) if want in (int, float) else text


def open_data(modality: Any, source: str, options: Any) -> Examples:
    """Examples of ``source`` as a run with ``options`` opens them (Model.open_data)."""
    if is_prepared(source):
        return open_prepared(source, modality)
    return modality.open_dataset(source, options)


def pictures(modality: Any, x: torch.Tensor, options: Any) -> torch.Tensor:
    """``synthesis._pictures`` without a run: feature pictures, evenly thinned."""
    pics = modality.feature_pictures(x, options).float()
    if len(pics) > MAX_PICTURES:
        pics = pics[torch.linspace(0, len(pics) - 1, MAX_PICTURES).long()]
    return pics


def baseline(modality_name: str, data: str, reference: str, d: int, n: int, seed: int = 0,
             sets: dict[str, str] | None = None) -> dict[str, Any]:
    modality = get_registry().modality(modality_name)
    fields = {f.name: f for f in dataclasses.fields(modality.Options)}
    values = {k: _value(fields[k], v) if k in fields else v for k, v in (sets or {}).items()}
    options = modality.resolve_options(modality.make_options(values), data)
    k = int(math.prod(modality.build_generator(d, options).latent_shape))
    train = open_data(modality, data, options)
    is_train = reference == "train"
    ref_data = train if is_train else open_data(modality, reference, options)
    n = min(n, len(train) // 2 if is_train else min(len(ref_data), len(train)))
    ref_index = _pick(len(ref_data), n, seed, "swd-reference")
    floor_index = _pick(len(train), n, seed, "swd-floor",
                        exclude=ref_index if is_train else None)
    ref = SWDReference(pictures(modality, _examples(ref_data, ref_index), options), seed=seed)
    ppca = fit_ppca(train, k, torch.device("cpu"), clip=modality.data_range)
    out: dict[str, Any] = {"modality": modality_name, "data": data, "reference": reference,
                           "d": d, "latent_numbers": k, "n": n, "seed": seed,
                           "options": dataclasses.asdict(options)}
    for key, noise in (("swd_pca", False), ("swd_pca_noisy", True)):
        x = ppca.sample(n, generator=derived_generator(seed, "swd-ppca"), noise=noise)
        dist = ref.distance(pictures(modality, x, options))
        out[key], out[key + "_levels"] = dist.mean, dist.levels
    floor = ref.distance(pictures(modality, _examples(train, floor_index), options))
    out["swd_floor"], out["swd_floor_levels"] = floor.mean, floor.levels
    return out


def rel(swd: float, pca: float, floor: float) -> float:
    return (swd - floor) / (pca - floor) if pca > floor else math.nan


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", default="image")
    ap.add_argument("--data", required=True, help="the run's training data")
    ap.add_argument("--reference", required=True, help="reference data, or 'train'")
    ap.add_argument("--d", type=int, required=True, help="the run's --latent-dim")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a modality option, e.g. image_size=16 (repeatable)")
    ap.add_argument("--swd", type=float, help="the model's SWD, for the old and new rel")
    ap.add_argument("--levels", action="store_true", help="also print the per-level SWD")
    args = ap.parse_args(argv)
    sets = dict(s.split("=", 1) for s in args.set)
    out = baseline(args.modality, args.data, args.reference, args.d, args.n, args.seed, sets)
    if args.swd is not None:
        out["swd"] = args.swd
        out["rel_noisy"] = rel(args.swd, out["swd_pca_noisy"], out["swd_floor"])
        out["rel"] = rel(args.swd, out["swd_pca"], out["swd_floor"])
    if not args.levels:
        out = {k: v for k, v in out.items() if not k.endswith("_levels")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Train the audio modality and measure it as the sound defaults were chosen: held-out
reconstruction error beside PCA's at equal d, the error on another category, and synthesis
(SWD of log-mel pictures against the held-out clips, rel against PCA and the floor).

    python benchmarks/audio_study.py --name default                       # embedded sounds
    python benchmarks/audio_study.py --name d16 --set latent_dim=16 --set width=32
    python benchmarks/audio_study.py --name speech --data speech/train \\
        --test-data speech/test --negative-data other --set epochs=40 --set latent_dim=16

``--set KEY=VALUE`` takes training settings and audio options (values parsed as JSON, else
text). ``--mels-as-channels`` swaps the log-mel generator for a 1D one over time whose
channels are the mel bands (the alternative measured in docs/audio.md). Prints one JSON line
(appended to --json when given).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import latentgen


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _mels_as_channels() -> None:
    from torch import Tensor

    import latentgen_audio.representations as rep
    from latentgen import UpsamplingGenerator
    from latentgen.model import halving_widths

    class OverTime(UpsamplingGenerator):
        def forward(self, z: Tensor) -> Tensor:
            return super().forward(z).unsqueeze(1)  # (N, mels, frames) -> (N, 1, mels, frames)

    def build(self: Any, latent_dim: int, opts: Any) -> UpsamplingGenerator:
        n_mels, frames = rep.mel_shape(rep.clip_samples(opts), opts.sample_rate)
        base = math.ceil(frames / 2 ** rep.LOGMEL_LAYERS)
        gen = OverTime(dims=1, latent_dim=latent_dim, out_channels=n_mels, base=base,
                       strides=[2] * rep.LOGMEL_LAYERS,
                       widths=halving_widths(opts.width, rep.LOGMEL_LAYERS),
                       latent_field=base if opts.latent_field else None, crop=frames)
        gen.data_shape = (1, n_mels, frames)
        return gen

    rep.LogMel.build_generator = build  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default="audio")
    ap.add_argument("--data", help="training sounds (default: the embedded set)")
    ap.add_argument("--test-data", default="builtin:sounds-test")
    ap.add_argument("--negative-data", help="sounds of another category")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--mels-as-channels", action="store_true")
    ap.add_argument("--out", type=Path, help="keep the run here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="append the result to this file")
    args = ap.parse_args(argv)
    settings = {k: _value(v) for k, _, v in (s.partition("=") for s in args.set)}
    if args.mels_as_channels:
        _mels_as_channels()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        run = latentgen.train(modality="audio", data=args.data, out=out, checkpoint_every=0,
                              **settings)
        seconds = time.perf_counter() - start
        assert run is not None
        ev = run.evaluate(["reconstruction", "latents", "synthesis"],
                          test_data=args.test_data, negative_data=args.negative_data,
                          reference="test")
    result: dict[str, Any] = {"name": args.name, "settings": settings,
                              "mels_as_channels": args.mels_as_channels,
                              "train_seconds": round(seconds, 1),
                              "units": run.model.metric_units}
    for key in ("train", "test", "negative"):
        if key in ev:
            result[key] = {k: round(v, 4) for k, v in ev[key].items() if isinstance(v, float)}
            result[key]["pca"] = round(ev["pca"][key], 4)
    if "test" in ev:
        result["test_over_pca"] = round(ev["test"]["mse"] / ev["pca"]["test"], 3)
    syn = ev["synthesis"]
    result["synthesis"] = {k: round(syn[k], 3) for k in ("swd", "swd_pca", "swd_floor", "rel")}
    result["sigma_end"] = round(run.model.observation.sigma, 4)
    line = json.dumps(result)
    print(line)
    if args.json:
        with args.json.open("a") as fh:
            fh.write(line + "\n")
    return result


if __name__ == "__main__":
    main()

"""The dynamic generator against its linear baseline, a linear dynamic system (PCA + AR(1)):
clips synthesized K times longer than the training clips (per-frame mean and variance and the
correlation of consecutive frames, as the largest relative deviation from the training clips'
over the whole length), and held-out clips with their middle third of frames missing
(recovery error on those frames: the mean of `--posterior-samples` posterior draws, as
`reconstruct --mask` fills them, and f at the MAP latent alone). One JSON object.

    latentgen train --modality video --dynamic --out runs/dyn
    python benchmarks/dynamic_study.py runs/dyn --scale 4

Held-out clips: ``--test-data`` (anything `latentgen train --data` takes for video), or by
default embedded clips drawn from another seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def frame_stats(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame position, over clips: mean pixel, pixel variance, lag-1 correlation."""
    v = (clips.clamp(-1, 1) + 1) / 2
    n, _, t = v.shape[:3]
    f = v.transpose(1, 2).reshape(n, t, -1)
    a, b = f[:, :-1], f[:, 1:]
    a, b = a - a.mean(2, keepdim=True), b - b.mean(2, keepdim=True)
    corr = ((a * b).sum(2) / (a.norm(dim=2) * b.norm(dim=2)).clamp_min(1e-8)).mean(0)
    return f.mean(2).mean(0), f.var(2).mean(0), corr


def deviation(samples: torch.Tensor, train: torch.Tensor) -> dict[str, Any]:
    ms, vs, cs = frame_stats(samples)
    mt, vt, ct = (s.mean() for s in frame_stats(train))
    return {"frames": samples.shape[2], "nan": bool(torch.isnan(samples).any()),
            "mean": float(((ms - mt) / mt).abs().max()), "var": float(((vs - vt) / vt).abs().max()),
            "lag1": float(((cs - ct) / ct).abs().max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--n", type=int, default=128, help="clips synthesized")
    parser.add_argument("--test-data")
    parser.add_argument("--held", type=int, default=None,
                        help="recover only the first N held-out clips (default: all)")
    parser.add_argument("--infer-steps", type=int, default=300)
    parser.add_argument("--posterior-samples", type=int, default=None,
                        help="draws averaged (default: reconstruct's)")
    args = parser.parse_args()
    import latentgen
    from latentgen_video.lds import LDS
    from latentgen_video.motion import bouncing_balls

    run = latentgen.load_run(args.run, "cpu")
    opts = run.model.options
    train_set = run.training_examples()
    train = train_set.get(torch.arange(len(train_set)))
    k = int(run.config.latent_dim)
    lds = LDS.fit(train, k)
    frames = train.shape[2] * args.scale
    result: dict[str, Any] = {"k": k, "scale": args.scale}
    result["model_long"] = deviation(run.synthesize(args.n, scale=args.scale), train)
    result["lds_long"] = deviation(
        lds.sample(args.n, frames, torch.Generator().manual_seed(0)).clamp(-1, 1), train)
    if args.test_data:
        held = run.examples(args.test_data)
        clips = held.get(torch.arange(min(len(held), args.held or len(held))))
    else:
        raw = bouncing_balls(64, opts.frames, opts.image_size, opts.channels, seed=12345)
        clips = torch.from_numpy(raw).float() / 127.5 - 1
    t = clips.shape[2]
    observed = torch.ones(t, dtype=torch.bool)
    observed[t // 3: 2 * t // 3] = False
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "middle.npy"
        np.save(mask, np.broadcast_to(observed.numpy()[:, None, None],
                                      clips.shape[2:]).astype(np.uint8))
        k = {} if args.posterior_samples is None else {"posterior_samples":
                                                        args.posterior_samples}
        rec = run.reconstruct(clips, infer_steps=args.infer_steps, mask=str(mask), **k)
        rec_map = run.reconstruct(clips, infer_steps=args.infer_steps, mask=str(mask),
                                  posterior_samples=0)
    scale = run.model.metric_scale
    missing = ~observed
    lds_rec = lds.recover(clips, observed).clamp(-1, 1)
    result["middle_third"] = {
        "model": float(rec.recovery_mse.mean()),
        "model_map": float(rec_map.recovery_mse.mean()),
        "lds": float((lds_rec - clips)[:, :, missing].pow(2).mean() * scale),
        "mean_frame": float((lds.mean.float().view(1, *lds.frame_shape).unsqueeze(2)
                             .clamp(-1, 1) - clips[:, :, missing]).pow(2).mean() * scale),
        "clips": len(clips)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

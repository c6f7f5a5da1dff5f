"""Time to quality: latentgen with its defaults against a plain ABP loop, on the same data,
in one run. Prints JSON.

The plain loop is written the usual way (a DCGAN-style generator with BatchNorm, sigma 0.3,
delta 0.1, L = 20 Langevin steps, batch 64, Adam 2e-4, persistent latents). Both are measured
by the same function: MAP latents of the held-out pictures (latentgen's own inference, 300
steps from the prior's mode, each model with its own sigma and prior), per-element MSE on
pixels in [0, 1]. Reported: each one's held-out MSE over its training seconds (evaluation
time left out), and the seconds each needs to reach the plain loop's final held-out MSE.

    python benchmarks/time_to_quality.py --data train.npy --test-data test.npy \\
        --image-size 16 --channels 1 --latent-dim 10 --epochs 100 --every 10

Without --data it uses the embedded faces and their held-out faces (`builtin:faces-test`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import latentgen
from latentgen.measures.inference import infer_latents, per_example_mse
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import StandardNormal
from latentgen.run import Run

PLAIN = {"sigma": 0.3, "delta": 0.1, "steps": 20, "batch": 64, "lr": 2e-4, "width": 32}


class PlainGenerator(nn.Module):
    """DCGAN-style: 4 x 4 from z, then x2 transposed convolutions with BatchNorm and ReLU."""

    def __init__(self, d: int, size: int, channels: int, width: int) -> None:
        super().__init__()
        self.latent_shape, self.data_shape = (d,), (channels, size, size)
        ups = int(math.log2(size // 4))
        chans = [width * 2 ** (ups - i) for i in range(ups + 1)]
        layers: list[nn.Module] = [nn.ConvTranspose2d(d, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0]), nn.ReLU()]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b),
                       nn.ReLU()]
        layers += [nn.Conv2d(chans[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(len(z), -1, 1, 1))


def plain_epoch(gen: PlainGenerator, opt: torch.optim.Optimizer, y_all: torch.Tensor,
                bank: torch.Tensor, rng: torch.Generator) -> None:
    """One epoch of the seed's algorithm as a plain loop."""
    s, delta = PLAIN["sigma"], PLAIN["delta"]
    for index in torch.randperm(len(y_all), generator=rng).split(PLAIN["batch"]):
        y, z = y_all[index], bank[index].clone()
        for _ in range(PLAIN["steps"]):
            z.requires_grad_(True)
            energy = ((y - gen(z)) ** 2).sum() / (2 * s**2) + (z**2).sum() / 2
            (grad,) = torch.autograd.grad(energy, z)
            z = (z - delta**2 / 2 * grad
                 + delta * torch.randn(z.shape, generator=rng)).detach()
        bank[index] = z
        opt.zero_grad()
        (((y - gen(z)) ** 2).sum() / (2 * s**2) / len(y)).backward()
        opt.step()


def held_out_mse(run: Run, generator: nn.Module | None = None, sigma: float | None = None
                 ) -> float:
    """latentgen's held-out error, for the run's model or the plain generator in its place."""
    model = run.model
    if generator is not None:
        model = dataclasses.replace(model, generator=generator,
                                    prior=StandardNormal(generator.latent_shape),
                                    observation=GaussianObservation(sigma or 1.0))
    data = model.open_data(run.config.test_data, "--test-data")
    z = infer_latents(model, run.device, data)
    return float(per_example_mse(model, run.device, data, z).mean())


def reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds at which a (seconds, mse) curve first reaches ``target`` (linear in between)."""
    prev = None
    for t, mse in curve:
        if mse <= target:
            if prev is None:
                return t
            (t0, m0) = prev
            return t0 + (t - t0) * (m0 - target) / (m0 - mse) if m0 > mse else t
        prev = (t, mse)
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--test-data")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--latentgen-epochs", type=int, help="latentgen's epochs (default: "
                    "--epochs); the time to the target counts until it is first reached")
    ap.add_argument("--width", type=int, help="latentgen's --width (default: its own)")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    test = args.test_data or ("builtin:faces-test" if not args.data else None)
    if test is None:
        ap.error("--test-data is needed with --data")
    torch.manual_seed(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        ours_epochs = args.latentgen_epochs or args.epochs
        opts = {"image_size": args.image_size, "channels": args.channels}
        if args.width:
            opts["width"] = args.width
        latentgen.train(out=out, modality="image", data=args.data, test_data=test,
                        latent_dim=args.latent_dim, epochs=ours_epochs, device="cpu",
                        checkpoint_every=args.every, sample_every=ours_epochs,
                        eval_every=ours_epochs, seed=args.seed, **opts)
        run = Run.load(out, "cpu")
        seconds = [float(r["seconds"]) for r in run.metrics()]
        ours = []
        for epoch in range(args.every, ours_epochs + 1, args.every):
            state = torch.load(out / "checkpoints" / f"epoch_{epoch:04d}.pt",
                               weights_only=True)
            run.model.generator.load_state_dict(state["generator"])
            run.model.prior.load_state_dict(state.get("prior") or {})
            run.model.observation.load_state_dict(state.get("observation") or {})
            ours.append((round(sum(seconds[:epoch]), 2), held_out_mse(run)))

        data = run.training_examples()
        y_all = torch.cat([data.get(i) for i in torch.arange(len(data)).split(512)])
        gen = PlainGenerator(args.latent_dim, args.image_size, args.channels, PLAIN["width"])
        opt = torch.optim.Adam(gen.parameters(), lr=PLAIN["lr"], betas=(0.5, 0.999))
        bank = torch.randn(len(y_all), args.latent_dim)
        rng = torch.Generator().manual_seed(args.seed)
        plain, spent = [], 0.0
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            plain_epoch(gen.train(), opt, y_all, bank, rng)
            spent += time.perf_counter() - start
            if epoch % args.every == 0:
                plain.append((round(spent, 2), held_out_mse(run, gen.eval(), PLAIN["sigma"])))

    target = plain[-1][1]
    t_ours, t_plain = reach(ours, target), reach(plain, target)
    result = {
        "data": args.data or "builtin:faces", "test_data": test, "epochs": args.epochs,
        "latentgen_epochs": ours_epochs,
        "target_mse": target,
        "plain": {"curve": plain, "weights": sum(p.numel() for p in gen.parameters()),
                  "settings": PLAIN, "seconds_to_target": t_plain},
        "latentgen": {"curve": ours, "weights": sum(p.numel() for p in
                                                    run.model.generator.parameters()),
                      "settings": {k: v for k, v in run.config.to_dict().items()
                                   if k in ("sigma", "learn_sigma", "step_size",
                                            "langevin_steps", "batch_size", "lr", "lr_end",
                                            "prior")}
                      | run.config.modality_options,
                      "seconds_to_target": t_ours},
        "time_ratio": (t_ours / t_plain) if t_ours is not None and t_plain else None,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

"""Waveform or log-mel spectrogram: which representation lets ABP learn the embedded sounds?

Trains latentgen's image modality on the embedded training sounds turned into 64 x 64 log-mel
pictures (64 mel bands x 64 frames of 1 s at 16 kHz), turns its prior samples back into sound
(inverse mel scale, then Griffin-Lim for the phase) and measures them the way
`evaluate --synthesis` measures a waveform run: the sliced Wasserstein distance between the
log-mel pictures (`latentgen_audio.spectrogram.log_mel`) of the samples and of the held-out
sounds (`builtin:sounds-test`). Beside it, on the same reference and N: the training sounds
(the floor), the training sounds through the picture round trip (what Griffin-Lim itself
costs), probabilistic PCA at the same d of the waveforms and of the pictures, and optionally
a trained waveform run's samples (--waveform-run). Prints JSON; writes WAVs with --out.

    python benchmarks/audio_as_pictures.py --epochs 60 --latent-dim 16 \\
        --waveform-run runs/sounds --out out/pictures
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio

import latentgen
from latentgen import Examples
from latentgen.data import decode_uint8
from latentgen.measures.swd import SWDReference
from latentgen.measures.synthesis import fit_ppca
from latentgen_audio.datasets import HELD_OUT_SEED, decode, encode
from latentgen_audio.sounds import sounds
from latentgen_audio.spectrogram import log_mel

RATE, N_FFT, HOP, MELS, FRAMES = 16000, 512, 250, 64, 64
#: natural-log magnitudes mapped to [0, 1] (pixels): about -50 dB to +13 dB
LOG_LO, LOG_HI = -11.5, 3.0


class Pictures:
    """Waves <-> 64 x 64 log-mel pictures in [0, 1]."""

    def __init__(self) -> None:
        self.mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=N_FFT, hop_length=HOP,
                                                        n_mels=MELS, power=1.0)
        self.inverse_mel = torchaudio.transforms.InverseMelScale(N_FFT // 2 + 1, MELS, RATE)
        self.griffin_lim = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP,
                                                            power=1.0, n_iter=64)

    def of(self, waves: torch.Tensor) -> torch.Tensor:
        m = self.mel(waves)[..., :FRAMES]
        return ((m.clamp_min(1e-5).log() - LOG_LO) / (LOG_HI - LOG_LO)).clamp(0, 1)

    def waves(self, pictures: torch.Tensor) -> torch.Tensor:
        m = (pictures * (LOG_HI - LOG_LO) + LOG_LO).exp()
        m = torch.cat([m, m[..., -1:]], -1)  # the STFT's last frame, dropped by ``of``
        return self.griffin_lim(self.inverse_mel(m))[..., :RATE].clamp(-1, 1)


def features(waves: torch.Tensor) -> torch.Tensor:
    return log_mel(waves.reshape(len(waves), -1), RATE).unsqueeze(1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--batch-size", type=int, help="the picture model's (default: its own)")
    ap.add_argument("--waveform-run", help="a trained waveform run of the embedded sounds")
    ap.add_argument("--out", type=Path, help="write 16 samples of each kind as WAV here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    pics = Pictures()
    train = torch.from_numpy(sounds(256, RATE, 1.0))
    test = torch.from_numpy(sounds(128, RATE, 1.0, seed=HELD_OUT_SEED))
    n = len(test)
    ref = SWDReference(features(test), seed=args.seed)
    rng = torch.Generator().manual_seed(args.seed)
    result: dict[str, Any] = {"n": n, "latent_dim": args.latent_dim, "epochs": args.epochs,
                              "batch_size": args.batch_size}
    samples: dict[str, torch.Tensor] = {"floor": train[:n],
                                        "round_trip": pics.waves(pics.of(train[:n]))}
    wave_set = Examples(encode(train), decode, "waves")
    samples["pca_waveform"] = fit_ppca(wave_set, args.latent_dim, torch.device("cpu"),
                                       clip=(-1.0, 1.0)).sample(n, rng)
    stored = (pics.of(train) * 255).round().to(torch.uint8).unsqueeze(1)
    pic_set = Examples(stored, decode_uint8, "pictures")
    pca_pics = fit_ppca(pic_set, args.latent_dim, torch.device("cpu"), clip=(-1.0, 1.0))
    samples["pca_pictures"] = pics.waves((pca_pics.sample(n, rng)[:, 0] + 1) / 2)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "train.npy", stored[:, 0].numpy())
        start = time.perf_counter()
        run = latentgen.train(modality="image", data=str(Path(tmp) / "train.npy"), channels=1,
                              latent_dim=args.latent_dim, epochs=args.epochs, device="cpu",
                              out=Path(tmp) / "run", seed=args.seed, checkpoint_every=0,
                              **({"batch_size": args.batch_size} if args.batch_size else {}))
        result["train_seconds"] = round(time.perf_counter() - start, 1)
        x = run.synthesize(n)
    samples["model_pictures"] = pics.waves((x[:, 0] + 1) / 2)
    if args.waveform_run:
        samples["model_waveform"] = latentgen.load_run(args.waveform_run, "cpu").synthesize(n)
    swd = {k: ref.distance(features(v)).mean for k, v in samples.items()}
    result["swd"] = {k: round(v, 1) for k, v in swd.items()}
    for model, pca in (("model_pictures", "pca_waveform"), ("model_pictures", "pca_pictures"),
                       ("model_waveform", "pca_waveform")):
        if model in swd:
            rel = (swd[model] - swd["floor"]) / (swd[pca] - swd["floor"])
            result[f"rel_{model}_vs_{pca}"] = round(rel, 3)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        gap = torch.zeros(RATE // 8)
        for k, v in samples.items():
            clips = v.reshape(len(v), -1)[:16]
            sf.write(args.out / f"{k}.wav", torch.cat([c for c in clips for c in (c, gap)]
                                                      ).numpy(), RATE, subtype="PCM_16")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

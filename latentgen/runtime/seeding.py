"""Seeds derived from (seed, purpose, numbers...), so that every random draw in a run depends
only on the run's seed and on where it happens (epoch, batch), never on what ran before it.
That is what makes a resumed run equal an uninterrupted one."""

from __future__ import annotations

import hashlib
import random

import torch


def derive_seed(seed: int, *keys: object) -> int:
    text = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)


def derived_generator(seed: int, *keys: object, device: torch.device | str = "cpu"
                      ) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))


def rng_state() -> dict:
    """Global RNG states, for checkpoints (loadable with weights_only=True)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

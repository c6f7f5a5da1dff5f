"""The device a command runs on: ``auto`` is CUDA when torch sees a GPU, else the CPU."""

from __future__ import annotations

import torch

from latentgen.errors import UserError


def check_device(name: str) -> None:
    """UserError unless ``name`` is auto, cpu, cuda or cuda:N."""
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:")
                                                     and name[5:].isdigit()):
        raise UserError(f"`device` must be auto, cpu, cuda or cuda:N, got '{name}'")


def resolve_device(name: str) -> torch.device:
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"`device` {name} asked for CUDA, but torch sees no CUDA device; "
                        "use `device` cpu or auto")
    return torch.device(name)

"""The resolved, typed training configuration and its TOML form (``config.toml`` of a run)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .performance import PRECISIONS

LATENT_PLACES = ("device", "host", "disk")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults start from the seed's object experiments
    (delta 0.3, L = 30, persistent chains); sigma 0.5 and batch 32 were chosen by measurement
    (docs/user-guide.md): with sigma 0.3 the banked latents drift far from the N(0, I) prior
    in a short run and prior samples come out grey, and smaller batches give more generator
    steps per Langevin step."""

    modality: str = "image"
    #: data source; None = the modality's embedded default
    data: str | None = None
    epochs: int = 30
    latent_dim: int = 16
    batch_size: int = 32
    #: L, Langevin steps per iteration
    langevin_steps: int = 30
    #: delta, the Langevin step size
    step_size: float = 0.3
    #: sigma, the observation noise standard deviation
    sigma: float = 0.5
    lr: float = 1e-3
    beta1: float = 0.5
    #: "langevin" (with noise) or "gd" (gradient descent, MAP) for inference during training
    sampler: str = "langevin"
    prior: str = "normal"
    #: re-initialise chains from the prior at every iteration (short-run) instead of persisting
    reinit_chains: bool = False
    seed: int = 0
    device: str = "auto"
    #: "fp32", or "bf16": the generator's passes autocast to bfloat16 (changes numerics)
    precision: str = "fp32"
    #: torch.compile the generator (CUDA graphs on CUDA); checkpoints are unchanged
    compile: bool = False
    #: compute (and sum across processes) the learning step's gradients in float64, so the
    #: model does not depend on the number of processes or threads (see docs/distributed.md)
    fp64_gradients: bool = False
    #: write a fixed-noise sample grid every this many epochs (and after the last)
    sample_every: int = 5
    #: keep checkpoints/epoch_NNNN.pt every this many epochs (0: only last.pt)
    checkpoint_every: int = 10
    #: held-out data of the training category, evaluated every eval_every epochs (curves)
    test_data: str | None = None
    #: data of another category, evaluated alongside test_data
    negative_data: str | None = None
    #: evaluate train / test / negative reconstruction error every this many epochs
    eval_every: int = 5
    #: MAP inference steps (sampler "map", from Z = 0) for test and negative data
    eval_steps: int = 300
    #: learn from incomplete data: block:K, pixels:P or a mask file (see latentgen.masks)
    mask: str | None = None
    #: stop after this many ABP iterations in all (None: run every epoch)
    max_steps: int | None = None
    #: where the latent bank lives: "device" (the training device), "host" or "disk"
    latents_on: str = "device"
    #: DataLoader worker processes reading batches (None: 1 for prepared data, else 0)
    workers: int | None = None
    #: the modality's own options (image size, channels, ...)
    modality_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        positive_int = ["epochs", "latent_dim", "batch_size"]
        for name in positive_int:
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, "
                                f"got {getattr(self, name)}")
        if self.langevin_steps < 0:
            raise UserError(f"--langevin-steps must be 0 or more, got {self.langevin_steps}")
        for name in ["step_size", "sigma", "lr"]:
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, "
                                f"got {getattr(self, name)}")
        if not 0 <= self.beta1 < 1:
            raise UserError(f"--beta1 must be in [0, 1), got {self.beta1}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"--device must be auto, cpu or cuda, got '{self.device}'")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be {' or '.join(PRECISIONS)}, got "
                            f"'{self.precision}'")
        if self.eval_every < 1 or self.eval_steps < 0:
            raise UserError(f"--eval-every must be at least 1 and --eval-steps 0 or more, got "
                            f"{self.eval_every} and {self.eval_steps}")
        if self.fp64_gradients and self.precision != "fp32":
            raise UserError("--fp64-gradients needs --precision fp32 (it computes the "
                            "learning step in float64)")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.workers is not None and self.workers < 0:
            raise UserError(f"--workers must be 0 or more, got {self.workers}")
        if self.latents_on not in LATENT_PLACES:
            raise UserError(f"--latents-on must be {', '.join(LATENT_PLACES)}, got "
                            f"'{self.latents_on}'")
        if self.sample_every < 1 or self.checkpoint_every < 0:
            raise UserError("--sample-every must be at least 1 and --checkpoint-every 0 or more")

    # -- dict / TOML ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names))}")
        cfg = cls(**values)
        _check_types(cfg, source)
        return cfg

    def to_toml(self) -> str:
        values = self.to_dict()
        opts = values.pop("modality_options")
        lines = ["# latentgen training configuration (resolved)"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines += ["", "[modality_options]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in opts.items() if v is not None]
        return "\n".join(lines) + "\n"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; give the path of a TOML file") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path} ({exc.strerror}); give a TOML "
                        "file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML ({exc}); fix the file") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def value_fits(field: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` (from TOML or the CLI) has the scalar type the field declares; None
    and fields of other types pass. A bool is not taken for a number."""
    want = _SCALARS.get(str(field.type).split(" ")[0])
    if value is None or want is None:
        return True
    return isinstance(value, want) and (want is bool or not isinstance(value, bool))


def _check_types(cfg: TrainConfig, source: str) -> None:
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if not value_fits(f, v):
            raise UserError(f"{source}: setting {f.name} must be {f.type}, got {v!r}")
        if f.type == "float":
            setattr(cfg, f.name, float(v))

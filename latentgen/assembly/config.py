"""The typed training configuration and its TOML form (``config.toml`` of a run).

Each field is a setting declared once (``setting``, ``latentgen.plugins.declare``).
``TrainConfig(**s)`` remembers which settings were given, so that ``latentgen.resolve_config``
can fill the others from the chosen modality's training defaults before the schema's own.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w

from latentgen.data.mask_specs import MASK_HELP, OBSERVE_HELP
from latentgen.errors import UserError
from latentgen.plugins.declare import Declaration, declarations, setting
from latentgen.runtime.devices import check_device
from latentgen.runtime.speed import Precision

Device = str  # auto, cpu, cuda or cuda:N (checked in ``validate``)
#: the largest seed: TOML integers (config.toml) are signed 64-bit
SEED_MAX = 2**63 - 1


@dataclass(init=False)
class TrainConfig:
    """Every setting of a training run. Defaults start from the seed's object experiments
    (delta 0.3, L = 30, persistent chains); sigma 0.5 (where a learned sigma starts: pictures
    learn it) and batch 32 were chosen by measurement
    (docs/user-guide.md): with sigma 0.3 the banked latents drift far from the N(0, I) prior
    in a short run and prior samples come out grey, and smaller batches give more generator
    steps per Langevin step. Modalities override some (``Modality.train_defaults``)."""

    modality: str = setting("image", "Data modality; `latentgen plugins` lists them.",
                            panel="Data and run")
    data: str | None = setting(None, "Training data (folder or file); none: the modality's "
                               "embedded default.", panel="Data and run")
    epochs: int = setting(30, "Epochs to train (on `resume`: the new total).", minimum=1,
                          panel="Data and run", resumable=True)
    latent_dim: int = setting(16, "d, latent factors per example.", minimum=1,
                              panel="Data and run")
    batch_size: int = setting(32, "Examples per ABP iteration.", unit="examples", minimum=1,
                              panel="Data and run")
    langevin_steps: int = setting(30, "L, Langevin steps per iteration.", minimum=0)
    step_size: float = setting(0.3, "delta, the Langevin step size.", positive=True)
    sigma: float = setting(0.5, "sigma, the observation noise standard deviation (in the "
                           "model's data range); with `learn_sigma`, where it starts.",
                           positive=True)
    learn_sigma: bool = setting(False, "Refit sigma to the training residuals after every "
                                "epoch (maximum likelihood), starting from `sigma`; the "
                                "Langevin step size follows it (delta / sigma kept).",
                                off_flag="--fixed-sigma")
    lr: float = setting(1e-3, "Adam learning rate.", positive=True)
    lr_end: float = setting(1.0, "The learning rate at the last step, as a fraction of `lr`: "
                            "below 1 it falls along a half cosine over `epochs` (1: constant; "
                            "on `resume` with a new `epochs` the fall stretches to it).",
                            minimum=0, maximum=1)
    beta1: float = setting(0.5, "Adam beta1.", minimum=0)
    ema: float = setting(0.0, "Decay of an exponential moving average of the generator's "
                         "weights, kept in the checkpoint and used by synthesis, "
                         "reconstruction and evaluation after training (0: off; 0.999 "
                         "averages over about the last thousand steps).", minimum=0,
                         maximum=0.99999)
    sampler: str = setting("langevin", "Inference during training: langevin (each move "
                           "accepted or rejected by the Metropolis rule, so it cannot "
                           "diverge), ula (the seed's unadjusted update), gd (no noise) or "
                           "map (no noise, self-tuning step).")
    prior: str = setting("gaussian", "Latent prior: gaussian (N(mu, Sigma), refit to the "
                         "banked latents after every epoch), normal (N(0, I), fixed), ebm "
                         "(exp(-E(Z)) N(0, I) with an energy E learned beside the generator; "
                         "docs/priors.md) or one a plugin registers.", panel="Latent prior")
    prior_lr: float = setting(1e-3, "Adam learning rate of a learned prior's network (ebm: "
                              "the energy); it follows `lr_end`'s schedule.", positive=True,
                              panel="Latent prior")
    prior_steps: int = setting(60, "Langevin steps of a draw from a learned prior (ebm: "
                               "short-run chains from N(0, I), for synthesis, sample grids "
                               "and the learning step).", minimum=0, panel="Latent prior")
    prior_step_size: float = setting(0.4, "Step size s of those chains: Z <- Z + s^2/2 "
                                     "d log p(Z)/dZ + s N(0, I).", positive=True,
                                     panel="Latent prior")
    prior_width: int = setting(200, "Hidden units per layer of a learned prior's network.",
                               minimum=1, panel="Latent prior")
    prior_depth: int = setting(2, "Hidden layers of a learned prior's network.", minimum=1,
                               panel="Latent prior")
    reinit_chains: bool = setting(False, "Restart chains from the prior every iteration "
                                  "(short-run) instead of persisting them.",
                                  off_flag="--persistent-chains")
    seed: int = setting(0, "Random seed (initial weights, latents, noise, epoch order), 0 to "
                        "2^63 - 1.",
                        minimum=0, maximum=SEED_MAX, panel="Data and run")
    device: Device = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N.",
                             panel="Data and run", resumable=True)
    precision: Precision = setting(
        "fp32", "fp32; bf16: the generator's passes run in bfloat16 autocast (faster where "
        "the device computes in bf16; changes numerics); auto: bf16 where a Langevin step of "
        "this generator is measured at least 10 % faster in it, else fp32.", resumable=True)
    compile: bool = setting(False, "torch.compile the generator (CUDA graphs on CUDA); "
                            "checkpoints are unchanged.", resumable=True)
    fp64_gradients: bool = setting(False, "Compute and sum the learning step's gradients in "
                                   "float64: the model then does not depend on the number of "
                                   "processes or threads (slower; docs/distributed.md).",
                                   panel="Scale", off_flag="--fp32-gradients")
    sample_every: int = setting(5, "Write a fixed-noise sample grid every N epochs (and after "
                                "the last).", unit="epochs", minimum=1, panel="Data and run")
    checkpoint_every: int = setting(10, "Keep checkpoints/epoch_NNNN.pt every N epochs; 0: "
                                    "last.pt only.", unit="epochs", minimum=0,
                                    panel="Data and run")
    observers: list[str] = setting([], "Extra observers of training by name (repeat the "
                                   "flag): tensorboard, wandb, mlflow, or one a plugin "
                                   "registers; none alone clears them (on `resume`). "
                                   "metrics.csv and metrics.jsonl are always written.",
                                   panel="Data and run", resumable=True,
                                   repeat_flag="--observer")
    test_data: str | None = setting(None, "Held-out data of the training category: its error "
                                    "is tracked every `eval_every` epochs.",
                                    panel="Error curves")
    negative_data: str | None = setting(None, "Data of another category, tracked beside "
                                        "`test_data`.", panel="Error curves")
    eval_every: int = setting(5, "Epochs between evaluations of train / test / negative "
                              "error.", unit="epochs", minimum=1, panel="Error curves")
    eval_examples: int = setting(96, "Examples of each set (train, test, negative) whose "
                                 "error the curves measure: an evenly spread subset, the same "
                                 "at every evaluation (inference costs as much as training; "
                                 "`evaluate` measures whole held-out sets).",
                                 minimum=1, panel="Error curves")
    eval_steps: int = setting(40, "MAP inference steps (sampler map, sigma annealed) from "
                              "the prior's mode for test / negative data at their first "
                              "evaluation.", minimum=0, panel="Error curves")
    eval_warm_steps: int = setting(16, "MAP steps of each later evaluation, from the latents "
                                   "the previous one found (the held-out chains are kept, as "
                                   "the training bank keeps its own); up to 10 of them also "
                                   "refine the training examples' banked latents.", minimum=0,
                                   panel="Error curves", resumable=True)
    synthesis_every: int | None = setting(None, "Epochs between synthesis measures (sliced "
                                          "Wasserstein distance of prior samples from "
                                          "`test_data`, else the training data, beside PCA and "
                                          "the floor) in metrics.csv and synthesis.png; none: "
                                          "off.", unit="epochs", minimum=1,
                                          panel="Error curves", resumable=True)
    mask: str | None = setting(None, "Learn from incomplete data: " + MASK_HELP + ".")
    observe: str | None = setting(None, "Learn from indirect observations y = A x with a known "
                                  "linear A: " + OBSERVE_HELP + ". The model sees only y; "
                                  "reconstruct and evaluate recover x. none: the data itself.")
    max_steps: int | None = setting(None, "Stop after N ABP iterations in all (a checkpoint is "
                                    "written there, even mid-epoch; `resume` continues from "
                                    "it); none: every epoch.", minimum=1, panel="Scale",
                                    resumable=True)
    latents_on: Literal["device", "host", "disk"] = setting(
        "device", "Where the latent bank lives: device (the training device), host (CPU "
        "memory) or disk (a .npy file beside the checkpoint, read a batch of rows at a time).",
        panel="Scale", resumable=True)
    workers: int | None = setting(None, "DataLoader worker processes reading batches ahead; "
                                  "none: 1 for prepared data, else 0.", minimum=0,
                                  panel="Scale", resumable=True)
    #: the modality's own options (image size, channels, ...); declared by the modality
    modality_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __init__(self, **settings: Any) -> None:
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise UserError(f"unknown setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
        for name, f in known.items():
            if name in settings:
                value = copy.deepcopy(settings[name])  # never share the caller's lists
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            setattr(self, name, value)
        #: the settings given to the constructor (the others hold their schema default)
        self._given = frozenset(settings)

    @property
    def given(self) -> frozenset[str]:
        return self._given

    def validate(self) -> None:
        for s in SETTINGS.values():
            setattr(self, s.name, s.check(getattr(self, s.name), "config"))
        if not self.beta1 < 1:
            raise UserError(f"`beta1` must be in [0, 1), got {self.beta1}")
        check_device(self.device)
        if self.fp64_gradients and self.precision != "fp32":
            raise UserError(f"`fp64_gradients` needs `precision` fp32, got {self.precision} "
                            "(it computes the learning step in float64)")
        if not isinstance(self.modality_options, dict):
            raise UserError("modality_options must be a table ([modality_options])")
        if self.observe and self.mask:
            raise UserError("`observe` and `mask` do not combine: a mask is an operator "
                            "too; give one of them")

    # -- dict / TOML ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """A config of ``values`` (all given), each checked against its declaration."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names))}")
        checked = {k: SETTINGS[k].check(v, source) if k in SETTINGS else v
                   for k, v in values.items()}
        if not isinstance(checked.get("modality_options", {}), dict):
            raise UserError(f"{source}: modality_options must be a table ([modality_options])")
        return cls(**checked)

    def to_toml(self) -> str:
        values = self.to_dict()
        options = values.pop("modality_options")
        # TOML has no null: a setting that is None is left out (and reads back as None)
        doc: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        doc["modality_options"] = {k: v for k, v in options.items() if v is not None}
        return "# latentgen training configuration (resolved)\n" + tomli_w.dumps(doc)


#: every declared training setting, by name
SETTINGS: dict[str, Declaration] = declarations(TrainConfig)
#: settings a resumed run may change: they change how it runs, not what it learns
RESUMABLE = tuple(name for name, s in SETTINGS.items() if s.resumable)


def setting_flags() -> set[str]:
    """Every flag of the settings, a bool's off flag included (``--compile``, ``--no-compile``)."""
    return {flag for s in SETTINGS.values() for flag in s.flags.split("/")}


def learned_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings that decide what a run learns (all but ``RESUMABLE``), as plain values:
    recorded in each checkpoint, so that ``--resume`` can refuse a config.toml edited since."""
    return {k: v for k, v in config.to_dict().items() if k not in RESUMABLE}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; give the path of a TOML "
                        "file") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path} ({exc.strerror}); give a TOML "
                        "file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML ({exc}); fix the file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it "
                        "as UTF-8 TOML") from None

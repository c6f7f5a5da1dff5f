"""What a modality plugin registers: how to build a generator, open data and write results."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.model.generator import Generator
from latentgen.plugins.options import check_options, option_declarations
from latentgen.runtime.files import staged_files, unstaged


class Modality(ABC):
    """A kind of data (images, sound, video, ...) the ABP engine can learn.

    Subclasses set the class attributes and implement the abstract methods. Data handed to
    the engine is float in the modality's model range (``data_range``); the per-element MSE
    that latentgen reports is the model-space MSE divided by (data_range width / metric width)^2,
    so it is on the scale named by ``metric_units``.
    """

    name: ClassVar[str]
    #: one line on what the modality is, shown by `latentgen plugins`
    description: ClassVar[str] = ""
    #: dataclass holding this modality's options (each field made with ``option(...)``)
    Options: ClassVar[type]
    #: range of model-space data, e.g. (-1, 1) for a tanh output
    data_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    #: range of the scale on which reconstruction error is reported
    metric_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    metric_units: ClassVar[str] = "per-element MSE on data scaled to [0, 1]"
    #: training settings this modality works best with (e.g. a smaller Langevin step for
    #: long examples), used where neither the command line nor a config file sets them
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: file formats the writers can produce, the default first (e.g. ("mp4", "gif")); a
    #: modality that declares some receives ``fmt=`` in ``write_examples`` and ``write_grid``
    formats: ClassVar[tuple[str, ...]] = ()
    #: whether the writers compress with loss (e.g. H.264 video), so that ``read_examples``
    #: gives back only an approximation of what was written
    lossy_writers: ClassVar[bool] = False
    #: options added since runs were first stored, with the value those runs had: a run's
    #: config.toml (or a prepared file) that lacks one reads it as this, not as today's
    #: default (e.g. {"representation": "waveform"} when sound became spectrograms)
    legacy_options: ClassVar[dict[str, Any]] = {}

    # -- options -------------------------------------------------------------------------
    def make_options(self, values: dict[str, Any] | None = None) -> Any:
        """Typed options from a plain dict (config file, CLI, keywords of the Python API):
        each value checked against its declaration (type, bounds, choices), then the checks
        that relate options to each other (``validate_options``). The one place option
        values are checked."""
        values = dict(values or {})
        declared = option_declarations(self.Options)
        unknown = sorted(set(values) - set(declared))
        if unknown:
            names = ", ".join(f"`{k}`" for k in unknown)
            known = ", ".join(f"`{k}`" for k in declared)
            raise UserError(f"option {names} does not apply to modality '{self.name}'; "
                            f"its options are: {known}")
        opts = self.Options(**{k: declared[k].check(v) for k, v in values.items()})
        self.validate_options(opts)
        return opts

    def train_defaults_for(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The training defaults for a run given these option values (as the user gave them,
        unresolved): ``train_defaults``, unless an option changes which settings suit (e.g.
        sound learned as waveforms rather than spectrograms). Overrides return only settings
        ``train_defaults`` could hold."""
        return dict(self.train_defaults)

    def data_defaults(self, options: Mapping[str, Any], source: str | None) -> dict[str, Any]:
        """Training settings picked from the training data ``source`` (None: the modality's
        embedded default) for a run given these option values (as the user gave them), used
        where neither the command line nor a config file sets them; they win over
        ``train_defaults_for``. E.g. a texture's latent size from how regular the texture is.
        Called once, when the run's config is resolved (its config.toml then holds them);
        not for a prepared file (``latentgen prepare``), which holds examples, not the
        source."""
        return {}

    def validate_options(self, opts: Any) -> None:
        """Raise ``UserError`` for option values that do not go together (each value has
        already been checked against its own declaration)."""

    def resolve_options(self, opts: Any, source: str | None) -> Any:
        """Fill options left to the data (e.g. an image size of 0 = the data's own size).

        Called once before training with the training source; the resolved values are stored
        in the run's config, so every later command rebuilds the same generator.
        """
        return opts

    @property
    def metric_scale(self) -> float:
        """Factor turning a model-space MSE into an MSE on ``metric_range``."""
        lo, hi = self.data_range
        mlo, mhi = self.metric_range
        return ((mhi - mlo) / (hi - lo)) ** 2

    def metric_scale_for(self, opts: Any) -> float:
        """``metric_scale`` for these options: a modality whose options change what the model
        sees (sound as waveforms or as spectrograms, say) overrides this and
        ``metric_units_for`` together."""
        return self.metric_scale

    def metric_units_for(self, opts: Any) -> str:
        """``metric_units`` for these options (see ``metric_scale_for``)."""
        return self.metric_units

    def writes_lossily(self, opts: Any) -> bool:
        """``lossy_writers`` for these options (e.g. sound written from spectrograms, whose
        phase the writer has to estimate)."""
        return self.lossy_writers

    # -- model and data ------------------------------------------------------------------
    @abstractmethod
    def build_generator(self, latent_dim: int, opts: Any) -> Generator:
        """The default generator for these options and latent size."""

    @abstractmethod
    def open_dataset(self, source: str | None, opts: Any) -> Examples:
        """Open ``source`` (a path; None for the embedded default) as model-space examples."""

    def scaled(self, opts: Any, latent_shape: tuple[int, ...], scale: int
               ) -> tuple[Any, tuple[int, ...]]:
        """For a fully convolutional generator: the options of data ``scale`` times larger
        (what its reference data is opened with) and the latent field that renders it with the
        same weights (``synthesize --scale``). Raise ``UserError`` where that does not apply."""
        raise UserError(f"the {self.name} modality cannot synthesize at another scale")

    def extra_metrics(self, y: Tensor, x: Tensor, opts: Any) -> dict[str, Tensor]:
        """Modality-specific error measures of reconstructions ``x`` of ``y``: name -> one
        value per example (e.g. a spectral distance for sound). Reported by ``evaluate``."""
        return {}

    def feature_pictures(self, x: Tensor, opts: Any) -> Tensor:
        """Model-space examples ``x`` as pictures (M, C, H, W) whose patch statistics the
        synthesis measures compare (``latentgen evaluate --synthesis``); M may differ from
        len(x) (e.g. one picture per video frame). The default takes pictures as they are,
        the frames of (N, C, T, H, W) examples, and lays a sequence (N, C, L) out as rows of
        a square picture; modalities override it where raw values mislead (sound: phase)."""
        if x.dim() == 4:
            return x
        if x.dim() == 5:
            return x.transpose(1, 2).flatten(0, 1)
        if x.dim() == 3:
            side = max(1, int(math.isqrt(x.shape[-1])))
            n = side * (x.shape[-1] // side)
            return x[..., :n].reshape(x.shape[0], x.shape[1], -1, side)
        raise ValueError(f"no default feature pictures for examples of shape "
                         f"{tuple(x.shape[1:])}; override Modality.feature_pictures")

    # -- writers -------------------------------------------------------------------------
    @abstractmethod
    def write_examples(self, x: Tensor, out_dir: Path, prefix: str, opts: Any,
                       start: int = 0) -> list[Path]:
        """Write each example of ``x`` as files a person opens (one or more per example: e.g. a
        WAV and its spectrogram); numbering starts at ``start``. Returns every file written."""

    @abstractmethod
    def write_grid(self, table: Tensor, path: Path, opts: Any) -> list[Path]:
        """Write a (rows, cols, *data_shape) table as an overview (``path`` without suffix): a
        picture, and for sound or video also a file that plays the table."""

    def check_format(self, fmt: str | None) -> None:
        """Raise ``UserError`` unless ``fmt`` (None = the default) is one this modality writes."""
        if fmt is None:
            return
        if not self.formats:
            raise UserError(f"`format` {fmt}: modality '{self.name}' writes one format only; "
                            "leave `format` out")
        if fmt.lower() not in self.formats:
            raise UserError(f"`format` must be one of {', '.join(self.formats)} for modality "
                            f"'{self.name}', got '{fmt}'")

    def save_examples(self, x: Tensor, out_dir: Path, prefix: str, opts: Any, start: int = 0,
                      fmt: str | None = None) -> list[Path]:
        """What the core calls: ``write_examples``, with ``fmt`` for modalities that declare
        ``formats`` (so plugins with a single format need not accept it). The files appear
        in ``out_dir`` whole, or not at all."""
        self.check_format(fmt)
        extra = {"fmt": (fmt or self.formats[0]).lower()} if self.formats else {}
        # written in a private folder first: a full disk never leaves a truncated file
        with staged_files(Path(out_dir)) as stage:
            files = self.write_examples(x, stage, prefix, opts, start=start, **extra)
        return unstaged(files, stage, Path(out_dir))

    def save_grid(self, table: Tensor, path: Path, opts: Any, fmt: str | None = None
                  ) -> list[Path]:
        """What the core calls: ``write_grid``, with ``fmt`` as in ``save_examples``."""
        self.check_format(fmt)
        # a modality that declares formats takes fmt= (the base signature leaves it out)
        extra = {"fmt": (fmt or self.formats[0]).lower()} if self.formats else {}
        path = Path(path)
        with staged_files(path.parent) as stage:
            files = self.write_grid(table, stage / path.name, opts, **extra)
        return unstaged(files, stage, path.parent)

    @abstractmethod
    def read_examples(self, paths: list[Path], opts: Any) -> Tensor:
        """Read the examples back from the files ``write_examples`` returned (the writer
        round-trip test); files that only illustrate (e.g. spectrograms) are skipped."""


def check_declaration(modality: Modality) -> None:
    """Raise ValueError (one line) unless the class attributes latentgen reads of a modality
    (``latentgen plugins``, the CLI, resolving settings) are well formed, so that a malformed
    one is refused when it registers instead of failing later in every command."""
    if not isinstance(modality.description, str):
        raise ValueError("description must be a str, got "
                         f"{type(modality.description).__name__}")
    formats = modality.formats
    if not (isinstance(formats, tuple) and all(isinstance(f, str) for f in formats)):
        raise ValueError(f"formats must be a tuple of str, got {type(formats).__name__}")
    legacy = modality.legacy_options
    if not (isinstance(legacy, dict) and all(isinstance(k, str) for k in legacy)):
        raise ValueError("legacy_options must be a dict of option names to values")
    defaults = modality.train_defaults
    if not (isinstance(defaults, dict) and all(isinstance(k, str) for k in defaults)):
        raise ValueError("train_defaults must be a dict of setting names to values")
    check_options(getattr(modality, "Options", None))


#: settings a modality's ``train_defaults`` may not set: they choose the modality and its data
NOT_DEFAULTS = ("modality", "data")


def check_train_defaults(defaults: Mapping[str, Any],
                         settings: Mapping[str, Callable[[Any], object]]) -> None:
    """Raise ValueError unless ``defaults`` sets only ``settings`` (name -> check of a value,
    raising UserError), each to a value its check takes. With no settings declared (the CLI
    declares them, ``registry.reserve``), a run checks them when it resolves its settings."""
    if not settings:
        return
    for name, value in defaults.items():
        if name not in settings:
            raise ValueError(f"train_defaults names {name!r}, which is not a training setting")
        if name in NOT_DEFAULTS:
            raise ValueError(f"train_defaults sets {name!r}, which a modality cannot choose")
        try:
            settings[name](value)
        except UserError as exc:
            raise ValueError(f"train_defaults: {exc}") from None

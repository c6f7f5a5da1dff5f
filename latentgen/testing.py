"""The modality contract as plain functions, for a plugin's own test suite.

latentgen runs these checks on every registered modality (``tests/test_contract.py``); a plugin
author runs them on theirs. Register the plugin in-process, fetch its modality and call
``check_modality`` (or the single checks) from a pytest test (an installed plugin is found
through its entry point: skip ``register_plugin`` then)::

    import latentgen_waves
    from latentgen.testing import check_modality, registered

    def test_waves_meets_the_contract(tmp_path):
        with registered(latentgen_waves, "waves") as registry:
            check_modality(registry.modality("waves"), tmp_path)

The checks build the modality's options from ``options`` (a dict as a config file gives it:
``{"length": 32}``; None = the defaults), use the embedded default data set
(``open_dataset(None, opts)``) and raise ``AssertionError`` naming the modality and what is
wrong. The generator check seeds its own random numbers (the caller's stay as they were), so
a failure repeats.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.config import TrainConfig
from latentgen.assembly.model import Model
from latentgen.data.prepared import open_prepared, prepare, read_sidecar
from latentgen.errors import UserError
from latentgen.plugins.modality import Modality
from latentgen.plugins.registry import Registry, get_registry, register_plugin, unregister_plugin

__all__ = ["check_default_data", "check_formats", "check_generator", "check_modality",
           "check_prepare", "check_writer_round_trip", "registered"]


@contextmanager
def registered(plugin: object, name: str) -> Iterator[Registry]:
    """The registry with ``plugin`` (a module or object holding ``@hookimpl`` functions)
    registered in-process under ``name`` for the block; when a plugin of that name is already
    installed (found through its entry point), that one is used and nothing is added."""
    installed = name in get_registry().plugins and not get_registry().plugins[name].error
    if not installed:
        register_plugin(plugin, name=name)
    try:
        yield get_registry()
    finally:
        if not installed:
            unregister_plugin(name)


def _fail(modality: Modality, what: str) -> AssertionError:
    return AssertionError(f"modality '{modality.name}': {what}")


def _expect(ok: Any, modality: Modality, what: str) -> None:
    if not ok:
        raise _fail(modality, what)


def _options(modality: Modality, options: dict[str, Any] | None) -> Any:
    try:
        return modality.make_options(options)
    except UserError as exc:
        raise _fail(modality, f"options {options or '(defaults)'} are refused: {exc}") from exc


def _default_data(modality: Modality, opts: Any) -> Any:
    try:
        return modality.open_dataset(None, opts)
    except UserError as exc:
        raise _fail(modality, f"the embedded default data set does not open: {exc}") from exc


def check_generator(modality: Modality, options: dict[str, Any] | None = None,
                    latent_dim: int = 8) -> None:
    """The default generator maps (N, *latent_shape) to finite (N, *data_shape) within
    ``data_range`` (times its ``headroom``, at most 1.25), and every parameter receives a
    finite, non-zero gradient."""
    opts = _options(modality, options)
    with torch.random.fork_rng(devices=[]):  # the same weights and latents on every run
        torch.manual_seed(0)
        gen = modality.build_generator(latent_dim, opts)
        z = torch.randn(3, *gen.latent_shape)
    x = gen(z)
    _expect(x.shape == (3, *gen.data_shape), modality,
            f"the generator makes {tuple(x.shape)} from latents {tuple(z.shape)}, expected "
            f"{(3, *gen.data_shape)} (3 x its data_shape)")
    _expect(torch.isfinite(x).all(), modality, "the generator's output has NaN or inf")
    lo, hi = modality.data_range
    room = getattr(gen, "headroom", 1.0)  # a little room beyond the range, clipped on output
    _expect(1.0 <= room <= 1.25, modality, f"generator headroom {room} is not in [1, 1.25]")
    _expect(x.min() >= lo * room and x.max() <= hi * room, modality,
            f"the generator's output spans [{x.min():.4g}, {x.max():.4g}], beyond data_range "
            f"{modality.data_range} x headroom {room}")
    x.pow(2).sum().backward()
    for name, p in gen.named_parameters():
        if p.grad is None or not torch.isfinite(p.grad).all():
            raise _fail(modality, f"generator parameter {name} got no gradient or a NaN/inf one")
        _expect(p.grad.abs().sum() > 0, modality, f"generator parameter {name} got no gradient")


def check_default_data(modality: Modality, options: dict[str, Any] | None = None,
                       latent_dim: int = 8) -> None:
    """The embedded default data set (``open_dataset(None, opts)``) is not empty, its examples
    have the generator's ``data_shape``, and they decode to finite values within
    ``data_range``."""
    opts = _options(modality, options)
    data = _default_data(modality, opts)
    gen = modality.build_generator(latent_dim, opts)
    _expect(len(data) > 0, modality, "the embedded default data set is empty")
    _expect(data.example_shape == gen.data_shape, modality,
            f"default examples have shape {data.example_shape}, the generator makes "
            f"{gen.data_shape}")
    batch = data.get(torch.arange(min(4, len(data))))
    _expect(torch.isfinite(batch).all(), modality, "default examples decode to NaN or inf")
    lo, hi = modality.data_range
    _expect(batch.min() >= lo and batch.max() <= hi, modality,
            f"default examples span [{batch.min():.4g}, {batch.max():.4g}], beyond data_range "
            f"{modality.data_range}")


def check_writer_round_trip(modality: Modality, tmp_path: Path,
                            formats: Iterable[str | None] | None = None,
                            options: dict[str, Any] | None = None) -> None:
    """For the default format (None) and every declared one (or the given ``formats``):
    ``save_examples`` writes one file or more per example, all on disk; ``read_examples`` gives
    them back within one 8-bit step of the range (mean error within 2 % for ``lossy_writers``);
    ``save_grid`` writes non-empty files."""
    opts = _options(modality, options)
    data = _default_data(modality, opts)
    _expect(len(data) >= 3, modality, "the round trip needs 3 default examples or more")
    x = data.get(torch.arange(3))
    lo, hi = modality.data_range
    root = Path(tempfile.mkdtemp(prefix=f"{modality.name}-writers-", dir=tmp_path))
    for f in ([None, *modality.formats] if formats is None else list(formats)):
        out = root / (f or "default")
        what = f"format {f}" if f else "the default format"
        paths = modality.save_examples(x, out, "ex", opts, fmt=f)
        # one file or more per example (a WAV and its spectrogram, say), every one on disk
        _expect(len(paths) >= 3 and len(paths) % 3 == 0, modality,
                f"{what}: write_examples returned {len(paths)} paths for 3 examples")
        missing = [str(p) for p in paths if not Path(p).exists()]
        _expect(not missing, modality, f"{what}: files returned but not written: {missing}")
        back = modality.read_examples(paths, opts)
        _expect(back.shape == x.shape, modality,
                f"{what}: read_examples gave shape {tuple(back.shape)}, wrote {tuple(x.shape)}")
        err = (back - x).abs()
        if modality.writes_lossily(opts):  # e.g. H.264: judged on the mean, within 2 % of the range
            _expect(err.mean() <= 0.02 * (hi - lo), modality,
                    f"{what}: mean round-trip error {err.mean():.4g} is over 2 % of the range")
        else:
            _expect(err.max() <= (hi - lo) / 255 + 1e-6, modality,
                    f"{what}: round-trip error {err.max():.4g} is over one 8-bit step "
                    "(set lossy_writers = True if the writers compress with loss)")
        grid = modality.save_grid(x[:2].unsqueeze(0), out / "grid", opts, fmt=f)
        empty = [str(p) for p in grid if not (Path(p).exists() and Path(p).stat().st_size > 0)]
        _expect(grid and not empty, modality,
                f"{what}: write_grid wrote nothing or empty/missing files {empty}")


def check_formats(modality: Modality) -> None:
    """Every declared format passes ``check_format``, and an unknown one is refused with a
    ``UserError`` that names ``--format``."""
    for fmt in modality.formats:
        try:
            modality.check_format(fmt)
        except UserError as exc:
            raise _fail(modality, f"its own format {fmt!r} is refused: {exc} (declare "
                        "formats in lower case)") from exc
    try:
        modality.check_format("no-such-format")
    except UserError as exc:
        _expect("format" in str(exc), modality,
                f"refusing an unknown format, the message does not name `format`: {exc}")
    else:
        raise _fail(modality, "check_format('no-such-format') did not raise UserError")


def check_prepare(modality: Modality, tmp_path: Path, options: dict[str, Any] | None = None,
                  count: int = 4) -> None:
    """``latentgen prepare`` packs the embedded default data set (its ``decode`` is a named
    module-level function), the packed file opens with the options it was packed with, and
    ``count`` examples spread over it decode exactly as the data set's own."""
    reg = get_registry()
    registered = reg.modalities.get(modality.name)
    _expect(type(registered) is type(modality), modality,
            f"`latentgen prepare` finds modalities in the registry, which holds "
            f"{type(registered).__name__ if registered else 'no modality'} under this name; "
            "register the plugin first (installed, or in-process with "
            "latentgen.plugins.registry.register_plugin(module, name=...))")
    values = {"modality": modality.name, "data": None, "modality_options": dict(options or {})}
    try:
        model = Model.from_config(TrainConfig.from_dict(values, source="options"))
    except UserError as exc:
        raise _fail(modality, f"no model for options {options or '(defaults)'}: {exc}") from exc
    root = Path(tempfile.mkdtemp(prefix=f"{modality.name}-prepare-", dir=tmp_path))
    out = root / "default.bin"
    try:
        prepare(model, None, out)
    except UserError as exc:
        raise _fail(modality, f"`latentgen prepare` cannot pack the default data set: {exc}"
                    " (decode must be a module-level function, not a lambda)") from exc
    meta = read_sidecar(str(out))
    _expect(meta["modality"] == modality.name, modality,
            f"the sidecar names modality {meta['modality']!r}")
    data = model.open_data(None)
    try:
        packed = open_prepared(str(out), modality)
        # training on the file: options from the sidecar, the same generator
        trained = Model.from_config(TrainConfig.from_dict(
            {"modality": modality.name, "data": str(out)}, source="options"))
        trained.open_data(str(out))
    except UserError as exc:
        raise _fail(modality, f"the prepared default data set does not open: {exc}") from exc
    except Exception as exc:  # the decoder, imported again by name, fails (e.g. a method)
        raise _fail(modality, f"the prepared file's decoder {meta['decode']} fails on its own "
                    f"data ({type(exc).__name__}: {exc}); decode with a module-level function"
                    ) from exc
    _expect(trained.options == model.options, modality,
            f"the prepared file opens with options {trained.options}, packed with "
            f"{model.options}")
    _expect(len(packed) == len(data) == meta["examples"], modality,
            f"the prepared file holds {len(packed)} examples (sidecar: {meta['examples']}), "
            f"the data set {len(data)}")
    index = torch.linspace(0, len(data) - 1, min(count, len(data))).round().long().unique()
    mine, theirs = packed.get(index), data.get(index)
    _expect(mine.shape == theirs.shape and torch.equal(mine, theirs), modality,
            f"prepared examples {index.tolist()} differ from the data set's own (shapes "
            f"{tuple(mine.shape)} / {tuple(theirs.shape)}; is the embedded default the same "
            "on every call?)")


def check_modality(modality: Modality, tmp_path: Path,
                   options: dict[str, Any] | None = None) -> None:
    """Every check above: generator, default data, formats, writers (every format), prepare."""
    check_generator(modality, options)
    check_default_data(modality, options)
    check_formats(modality)
    check_writer_round_trip(modality, tmp_path, options=options)
    check_prepare(modality, tmp_path, options)

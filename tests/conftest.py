"""Shared fixtures: tiny data the project makes itself, a CLI runner, the example plugin."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from latentgen.plugins import registry as plugins

ROOT = Path(__file__).resolve().parents[1]
# the layers' forms measured in the tests stay out of the user's cache (processes the tests
# start inherit it)
os.environ.setdefault("LATENTGEN_FORMS_CACHE",
                      str(Path(tempfile.mkdtemp(prefix="latentgen-forms-")) / "forms.json"))
EXAMPLE_PLUGIN = ROOT / "docs" / "examples" / "latentgen-example-plugin"


@pytest.fixture(autouse=True)
def _fresh_state():
    torch.manual_seed(0)
    yield
    plugins.reset()


def make_faces(n: int, size: int = 16, channels: int = 1, seed: int = 7) -> np.ndarray:
    from latentgen_image.faces import faces

    return faces(n, size, channels, seed=seed)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """Train / test faces and a 'negative' category (stripes) as 16x16 grayscale .npy."""
    root = tmp_path_factory.mktemp("data")
    arr = make_faces(160, 16, 1)
    np.save(root / "train.npy", arr[:128, 0])
    np.save(root / "test.npy", arr[128:, 0])
    rng = np.random.default_rng(0)
    xs = np.arange(16)
    stripes = [(127.5 + 127.5 * np.sin(xs[None, :] * f + p) * np.ones((16, 1)))
               for f, p in zip(rng.uniform(0.5, 2.0, 32), rng.uniform(0, 6.28, 32))]
    np.save(root / "negative.npy", np.stack(stripes).astype(np.uint8))
    return {"train": root / "train.npy", "test": root / "test.npy",
            "negative": root / "negative.npy", "root": root}


TINY_TRAIN = ["--image-size", "16", "--channels", "1", "--latent-dim", "4", "--batch-size", "32",
              "--langevin-steps", "5", "--width", "8", "--device", "cpu"]


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys) -> Callable[..., CliResult]:
    from latentgen_cli.app import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def train_from_cli(data: Path, out: Path, *options: str, epochs: int = 3) -> Path:
    """Train through `latentgen train` (as a user would) and return the run directory."""
    from latentgen_cli.app import main

    try:
        main(["train", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
              *options])
    except SystemExit as exc:
        assert not exc.code, f"training failed with exit {exc.code}"
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """A tiny trained image run shared by the read-only CLI tests."""
    return train_from_cli(tiny_data["train"], tmp_path_factory.mktemp("runs") / "tiny",
                          *TINY_TRAIN)


@pytest.fixture
def example_plugin():
    """The documented example plugin (docs/examples), registered in-process."""
    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    import latentgen_waves

    plugins.register_plugin(latentgen_waves, name="waves")
    yield latentgen_waves
    plugins.unregister_plugin("waves")
    sys.path.remove(str(EXAMPLE_PLUGIN))


def train_api(config, out: Path, resume: bool = False):
    """Train ``config`` (a TrainConfig) into ``out`` through the Python API."""
    import latentgen

    return latentgen.train(config, out=out, resume=resume)


def resume_api(out: Path, **changes):
    """Resume the run in ``out`` through the Python API, with resumable ``changes``."""
    import latentgen

    return latentgen.train(out=out, resume=True, **changes)

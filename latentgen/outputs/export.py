"""A trained model as a portable, self-describing folder (``Run.export``, `latentgen export`):

    DIR/model.safetensors   generator weights (the moving average when the run kept one),
                            prior and observation state, the latent bank (keys ``generator.*``,
                            ``prior.*``, ``observation.*``, ``latents``)
    DIR/config.json         the resolved config (``TrainConfig.to_dict()``) with ``format``,
                            ``version`` (latentgen's) and ``epoch``
    DIR/README.md           a model card (Hugging Face Hub front matter): data, the command
                            that trains it again, the measured errors, the sample grid
    DIR/samples.png         a grid of prior samples (the modality's grid format)
    DIR/metrics.csv         the run's metrics table, when it has one

Nothing in it is a pickle: ``safetensors`` and ``json`` read it without latentgen, and
``latentgen.load_run(DIR)`` loads it without running any stored code. The folder appears
whole or not at all.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.config import SETTINGS, TrainConfig
from latentgen.assembly.trained import Trained
from latentgen.errors import UserError
from latentgen.outputs.curves import CURVE_COLUMNS, PCA_TEST_COLUMN, final_regime
from latentgen.plugins.declare import declarations
from latentgen.runtime.files import remove_stale_temporaries, write_error
from latentgen.version import __version__

FORMAT = "latentgen-export"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
METRICS = "metrics.csv"
#: what config.json holds besides the settings
META_KEYS = ("format", "version", "epoch")
#: the prior samples of the card's grid
GRID_N = 64
PARTS = ("generator", "prior", "observation")


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``export`` (a config.json, no config.toml)."""
    path = Path(path)
    return (path / CONFIG).is_file() and not (path / "config.toml").exists()


def _tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().clone()
    if isinstance(value, bool):
        return torch.tensor(value)
    if isinstance(value, int):
        return torch.tensor(value, dtype=torch.int64)
    if isinstance(value, float):
        return torch.tensor(value, dtype=torch.float64)  # exact: sigma reads back the same
    raise TypeError(f"a state value of type {type(value).__name__}")


def model_tensors(run: Trained) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``: the run's model as ``Run.load`` made it (the
    moving-average weights when the checkpoint kept them) and its latent bank."""
    model = run.model
    states = {"generator": model.generator.state_dict(), "prior": model.prior.state_dict(),
              "observation": model.observation.state_dict()}
    tensors = {f"{part}.{k}": _tensor(v) for part in PARTS for k, v in states[part].items()}
    tensors["latents"] = _tensor(run.latents[:])
    return tensors


def export_run(trained: Trained, out: str | Path) -> Path:
    """Write ``trained`` (a ``Run``: ``latentgen.load_run``) as the portable folder ``out``;
    an earlier export there is replaced, any other folder with files in it is refused.
    Returns ``out``."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UserError(f"`out` {target} is a file; give a folder for the export")
    if target.is_dir() and any(target.iterdir()) and not is_export(target):
        raise UserError(f"`out` {target} holds other files; give a new folder (or an "
                        "earlier export, which is replaced)")
    if trained.run_dir is not None and target.resolve() == trained.run_dir.path.resolve():
        raise UserError(f"`out` {target} is the model's own folder; give another one")
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(parent, target.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                      dir=parent))
    except OSError as exc:
        raise write_error(exc, target) from None
    try:
        _write(trained, stage)
        _move_into_place(stage, target)
    except OSError as exc:
        raise write_error(exc, target) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _move_into_place(stage: Path, target: Path) -> None:
    if not target.exists() or not any(target.iterdir()):
        os.replace(stage, target)  # a rename: onto nothing, or onto an empty folder
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
    os.replace(target, old)  # an earlier export: swapped out, then removed
    try:
        os.replace(stage, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _metrics(run: Trained) -> list[dict[str, str]]:
    return run.run_dir.read_metrics() if run.run_dir is not None else []


def _write(run: Trained, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file(model_tensors(run), str(folder / WEIGHTS),
              metadata={"format": FORMAT, "version": __version__, "epoch": str(run.epoch)})
    config = {**run.model.config.to_dict(), "format": FORMAT, "version": __version__,
              "epoch": run.epoch}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if run.run_dir is not None and run.run_dir.metrics_path.is_file():
        shutil.copyfile(run.run_dir.metrics_path, folder / METRICS)
    x = torch.cat(list(run.synthesis_batches(GRID_N, seed=0)))
    side = max(1, int(len(x) ** 0.5))
    rows = len(x) // side
    model = run.model
    grid = model.modality.save_grid(x[:rows * side].reshape(rows, side, *x.shape[1:]),
                                    folder / "samples", model.options)
    (folder / CARD).write_text(model_card(run, [p.name for p in grid]), encoding="utf-8")


# -- the model card ---------------------------------------------------------------------
def train_command(config: TrainConfig, train_defaults: dict[str, Any] | None = None,
                  options_class: Any = None) -> str:
    """The `latentgen train` command that trains ``config`` again: every setting that differs
    from what the command would choose without it (``train_defaults``: the modality's own
    defaults, over the schema's), and the modality options that differ from their default."""
    own = train_defaults or {}
    words = ["latentgen", "train"]
    values = config.to_dict()
    for name, s in SETTINGS.items():
        value = values.get(name)
        default = own.get(name, s.default)
        words += _flag_words(s, value, default, always=name == "modality")
    if options_class is not None:
        for name, d in declarations(options_class).items():
            if name in config.modality_options:
                words += _flag_words(d, config.modality_options[name], d.default)
    return " ".join(shlex.quote(str(w)) for w in words)


def _flag_words(d: Any, value: Any, default: Any, always: bool = False) -> list[str]:
    if value is None or (value == default and not always):
        return []
    if isinstance(value, bool):
        return [d.all_flags[0] if value else d.all_flags[1]] if d.kind is bool else []
    if isinstance(value, (list, tuple)):
        return [w for item in value for w in (d.flag, str(item))]
    return [d.flag, str(value)]


def last_errors(rows: list[dict[str, str]]) -> dict[str, str] | None:
    """The last row of a metrics table with evaluated errors: its epoch and errors."""
    columns = {**CURVE_COLUMNS, "PCA test": PCA_TEST_COLUMN}
    for row in reversed(rows):
        found = {k: row[c] for k, c in columns.items() if row.get(c) not in (None, "")}
        if found:
            return {"epoch": row.get("epoch", ""), **found}
    return None


def model_card(run: Trained, grid: list[str]) -> str:
    model, cfg = run.model, run.model.config
    modality = model.modality
    tags = ["latentgen", "generative-convnet", "alternating-back-propagation",
            f"modality-{cfg.modality}"]
    command = train_command(cfg, dict(modality.train_defaults), modality.Options)
    data = cfg.data or f"the {cfg.modality} modality's embedded default data"
    lines = ["---", "library_name: latentgen", "tags:", *(f"- {t}" for t in tags), "---", "",
             f"# latentgen {cfg.modality} generator (d = {cfg.latent_dim})", "",
             "A top-down generator network Y = f(Z; W) + noise, Z ~ prior, learned by "
             "alternating back-propagation with [latentgen](https://pypi.org/project/latentgen/)"
             f" {__version__} for {run.epoch} epochs.", "",
             "## Use it", "", "```python", "import latentgen", "",
             'run = latentgen.load_run("THIS_FOLDER")   # or hf://OWNER/NAME',
             "x = run.synthesize(16)", "```", "",
             "or `latentgen synthesize THIS_FOLDER --n 16 --out samples/`. "
             f"`{WEIGHTS}` and `{CONFIG}` need nothing but `safetensors` and `json` to read.", "",
             "## Data", "", f"Trained on {data}: {run.latents.shape[0]} examples of shape "
             f"{tuple(model.generator.data_shape)}.", "",
             "## Train it again", "", "```bash", command, "```", ""]
    errors = last_errors(_metrics(run))
    lines += ["## Measured errors", ""]
    if errors is None:
        lines += ["The run measured no held-out errors.", ""]
    else:
        epoch = errors.pop("epoch")
        lines += [f"Per-element reconstruction error ({model.metric_units}) at epoch {epoch}, "
                  "from the run's metrics.csv:", "", "| set | error |", "|---|---|",
                  *(f"| {k} | {v} |" for k, v in errors.items()), ""]
        verdict = final_regime(_metrics(run))
        if verdict is not None:
            lines += [f"The curves show **{verdict[0]}**.", ""]
    lines += ["## Samples", "", f"{GRID_N} samples f(Z), Z ~ prior (seed 0):", ""]
    lines += [f"![samples]({name})" if name.endswith((".png", ".gif", ".jpg")) else
              f"[{name}]({name})" for name in grid]
    return "\n".join(lines) + "\n"


# -- reading ------------------------------------------------------------------------------
#: what ``load_run`` takes for an export on the Hugging Face Hub: hf://OWNER/NAME
HUB_SCHEME = "hf://"


def is_hub(path: str | Path) -> bool:
    """Whether ``path`` names a model on the Hub (``Path`` makes hf://A/B hf:/A/B)."""
    return str(path).startswith("hf:/")


def hub_download(path: str | Path) -> Path:
    """The local copy of the export ``hf://OWNER/NAME`` (``huggingface_hub``'s cache)."""
    from latentgen.data.records import need

    repo = str(path).split(":", 1)[1].strip("/")
    uri = HUB_SCHEME + repo
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"{uri}: give a Hugging Face Hub model as hf://OWNER/NAME")
    hub = need("huggingface_hub", uri, "hub", "to download from the Hugging Face Hub")
    try:
        return Path(hub.snapshot_download(repo_id=repo))
    except Exception as exc:  # offline, no such repository, no access: one line
        raise UserError(f"cannot download {uri} from the Hugging Face Hub "
                        f"({type(exc).__name__}: {_said(exc)})") from None


def push_export(folder: str | Path, repo_id: str, private: bool = False,
                token: str | None = None) -> str:
    """Upload the export in ``folder`` to the Hub model repository ``repo_id`` (OWNER/NAME,
    created when missing); returns its address. Needs ``latentgen[hub]`` and a token
    (``token``, else ``huggingface_hub``'s own login)."""
    from latentgen.data.records import need

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UserError(f"`push` {repo_id}: give a Hugging Face Hub model as OWNER/NAME")
    if not is_export(folder):
        raise UserError(f"{folder} is not an exported model; export it first")
    hub = need("huggingface_hub", f"pushing to {repo_id}", "hub",
               "to upload to the Hugging Face Hub")
    try:
        api = hub.HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message="latentgen export")
    except Exception as exc:  # offline, no token, no access: one line
        raise UserError(f"cannot push to {repo_id} on the Hugging Face Hub "
                        f"({type(exc).__name__}: {_said(exc)})") from None
    return f"https://huggingface.co/{repo_id}"


def read_export(path: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and the state (``generator``, ``prior``, ``observation``, ``latents``,
    ``epoch``, as a checkpoint holds them) of an export, read without pickle."""
    from safetensors.torch import load_file

    folder = Path(path)
    config_path, weights = folder / CONFIG, folder / WEIGHTS
    try:
        values = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {config_path} ({_said(exc)}); it is damaged: export "
                        "the run again") from None
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        raise UserError(f"{config_path} is not the config of a latentgen export (no format "
                        f"\"{FORMAT}\" in it); give a run directory or an exported folder")
    epoch = values.get("epoch")
    if not isinstance(epoch, int):
        raise UserError(f"{config_path} names no epoch; it is damaged: export the run again")
    config = TrainConfig.from_dict({k: v for k, v in values.items() if k not in META_KEYS},
                                   source=str(config_path))
    if not weights.is_file():
        raise UserError(f"{folder} holds no {WEIGHTS}; export the run again")
    try:
        tensors = load_file(str(weights), device="cpu")
    except Exception as exc:  # truncated or foreign (safetensors' own error type, OSError)
        raise UserError(f"cannot read {weights} ({_said(exc)}); it is damaged: export the "
                        "run again") from None
    state: dict[str, Any] = {part: {} for part in PARTS}
    for key, value in tensors.items():
        part, _, name = key.partition(".")
        if part in state and name:
            state[part][name] = value
    if "latents" not in tensors:
        raise UserError(f"{weights} holds no latents; export the run again")
    state.update(latents=tensors["latents"], epoch=epoch)
    return config, state


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

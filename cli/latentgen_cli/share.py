"""`latentgen export`: a trained run as a portable folder to share (registered on the
application in ``app``)."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import literal, make_console
from .verb_options import DeviceOpt, RunArg


def export(
    run: Path = RunArg,
    out: Path = typer.Option(..., help="Folder to write (new, empty, or an earlier export, "
                             "which is replaced).", show_default=False),
    push: str | None = typer.Option(None, metavar="OWNER/NAME", help="Also upload the folder "
                                    "to this Hugging Face Hub model repository (created when "
                                    "missing; needs latentgen[hub] and a login); "
                                    "load_run('hf://OWNER/NAME') reads it back."),
    device: str = DeviceOpt,
) -> None:
    """Export a trained run as a portable folder: model.safetensors (weights, prior, latent
    bank), config.json, a model card README.md and a sample grid. Every command takes the
    folder as its RUN, and latentgen.load_run loads it, without pickle."""
    import latentgen

    trained = latentgen.load_run(run, device)
    folder = latentgen.export_run(trained, out)
    make_console().print(f"exported epoch {trained.epoch} of [bold]{literal(run)}[/] to "
                         f"[bold]{literal(folder)}[/] (model.safetensors, config.json, "
                         "README.md, samples)")
    if push:
        address = latentgen.push_export(folder, push)
        make_console().print(f"pushed to [bold]{literal(address)}[/]")

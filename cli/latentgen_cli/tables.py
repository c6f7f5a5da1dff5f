"""Tables the commands print: the measures' blocks, the plugins, the bench figures."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def print_blocks(console: Console, blocks: list[Any]) -> None:
    """Measures' tables and lines (``latentgen.present``), as they read in a terminal."""
    from rich.markup import escape

    import latentgen

    from .output import command_flags, flag_words

    flags = command_flags()
    for block in blocks:
        if isinstance(block, latentgen.Table):
            table = Table(title=escape(flag_words(block.title, flags)))
            for i, col in enumerate(block.header):
                table.add_column(escape(col), justify="left" if i == 0 else "right")
            for row in block.rows:
                table.add_row(*(escape(cell) for cell in row))
            console.print(table)
        else:
            console.print(escape(flag_words(block.text, flags)),
                          style="dim" if block.dim else None)


def plugins_table(console: Console, as_json: bool) -> None:
    from dataclasses import asdict

    from rich.markup import escape

    from .options import registry

    # only what the registry recorded: a plugin's own attributes could raise or change
    reg = registry()
    if as_json:
        print(json.dumps([asdict(p) for p in reg.plugins.values()]))
        return
    table = Table(title="latentgen plugins")
    for col in ("plugin", "version", "modalities", "priors", "samplers", "observers",
                "extractors", "status"):
        table.add_column(col)
    for p in reg.plugins.values():
        status = "[red]failed[/]" if p.error else "[green]ok[/]"
        cells = [p.name, p.version, *(", ".join(getattr(p, kind)) for kind in
                                      ("modalities", "priors", "samplers", "observers",
                                       "extractors"))]
        table.add_row(*map(escape, cells), status)  # plugins' texts are not markup
    console.print(table)
    described = sorted(item for p in reg.plugins.values() for item in p.descriptions.items())
    for name, text in described:
        console.print(f"[bold]{escape(name)}[/]: {escape(text or '(no description)')}",
                      highlight=False, soft_wrap=True)
    for p in reg.plugins.values():
        if p.error:  # in full, below the table, where nothing truncates it
            console.print(f"[red]{escape(p.name)}[/]: {escape(p.error)} (skipped)",
                          highlight=False, soft_wrap=True)


def bench_table(console: Console, result: dict[str, Any]) -> None:
    precision = result["precision"]
    if result.get("precision_asked") == "auto":
        precision += f" ({result['precision_reason']})"
    cpu = result.get("cpu", {})
    device = result["device_name"]
    if device == "cpu" and cpu:
        matrix = [name for name, key in (("AVX-512", "avx512"), ("AVX512-BF16", "avx512_bf16"),
                                         ("AMX", "amx_tile")) if cpu.get(key)]
        device = f"{cpu['model']} ({', '.join(matrix) or cpu.get('capability', 'cpu')})"
    table = Table(title=f"latentgen bench — {result['modality']} "
                        f"{'x'.join(map(str, result['data_shape']))}, batch "
                        f"{result['batch_size']}, L = {result['langevin_steps']}, "
                        f"{device}, {precision}, "
                        f"{result['threads']} threads, torch {result['torch']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("examples/s (whole ABP iterations)", f"{result['examples_per_s']:.1f}"),
            ("Langevin steps/s", f"{result['langevin_steps_per_s']:.2f}"),
            ("Langevin phase", f"{result['langevin_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            ("learning step", f"{result['learning_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            (f"matmul peak ({result['precision']})",
             f"{result['peak_flops'] / 1e9:.1f} GFLOP/s"),
            ("Langevin fraction of peak", f"{result['langevin_fraction_of_peak']:.3f}"),
            ("MFU (whole iteration)", f"{result['mfu']:.3f}"),
            ("engine / plain loop time", f"{result['reference_ratio']:.3f}")]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    forms = result.get("forms") or []
    if forms:
        chosen = Table(title="each convolution's form, measured on this machine "
                             "(cached: chosen by an earlier run here)")
        for column in ("layer", "input", "form", "candidates (ms, forward + backward)"):
            chosen.add_column(column)
        for c in forms:
            times = ", ".join(f"{k} {v:.2f}" for k, v in
                              sorted(c["times_ms"].items(), key=lambda kv: kv[1]))
            chosen.add_row(c["layer"], "x".join(map(str, c["input"])), c["form"],
                           times or "cached")
        console.print(chosen)


def finite_or_null(value: Any) -> Any:
    """JSON has no NaN: a measure that is not a number (e.g. no missing entries) becomes null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    return value

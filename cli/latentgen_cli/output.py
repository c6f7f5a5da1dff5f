"""How the commands speak: rich consoles that print user text literally, and the one-line
error every failure ends in."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any


def make_console() -> Any:
    from rich.console import Console

    # emoji off: user text such as ``pixels:-1`` must not turn into a picture (``:-1:``)
    return Console(emoji=False)


def literal(value: Any) -> str:
    """User text (a path, a name) for a rich line: printed literally, never as markup."""
    from rich.markup import escape

    return escape(str(value))


#: a setting or argument named in a message of latentgen's (``latentgen.UserError``)
_NAMED = re.compile(r"`([a-z_][a-z0-9_]*)`")


def flag_words(message: str, flags: Mapping[str, str]) -> str:
    """``message`` as the command line says it: each `name` of a setting or argument that
    ``flags`` maps to its flag (``test_data`` -> ``--test-data``) becomes the flag; other
    names lose their backquotes."""
    return _NAMED.sub(lambda m: flags.get(m.group(1), m.group(1)), message)


def command_flags(command: Any = None) -> dict[str, str]:
    """Each option's name as latentgen names it in messages (a setting, a modality option, a
    command's argument) -> its flag, over every command of ``command`` (default: the one
    running)."""
    if command is None:
        import click

        ctx = click.get_current_context(silent=True)
        if ctx is None:
            return {}
        command = ctx.find_root().command
    flags: dict[str, str] = {}
    for sub in getattr(command, "commands", {}).values():
        for param in sub.params:
            long = [o for o in param.opts if o.startswith("--")]
            if long and param.name:
                flags.setdefault(param.name.split("__")[-1], long[0])
                flags.setdefault(long[0][2:].replace("-", "_"), long[0])
    flags.setdefault("measures", "--measure")
    return flags


def _world() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


def fail(message: str, flags: Mapping[str, str] | None = None) -> None:
    """One line on stderr (literally: user text is never read as markup) and exit code 2;
    setting names in it become the flags ``flags`` maps them to."""
    from rich.console import Console
    from rich.markup import escape

    message = flag_words(message, flags or {})
    rank, world = _world()
    where = f" (rank {rank})" if world > 1 else ""
    Console(stderr=True, emoji=False).print(f"[red]error{where}:[/] {escape(message)}",
                                            highlight=False, soft_wrap=True)
    sys.exit(2)

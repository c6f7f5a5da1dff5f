"""How the commands speak: rich consoles that print user text literally, and the one-line
error every failure ends in."""

from __future__ import annotations

import os
import sys
from typing import Any


def make_console() -> Any:
    from rich.console import Console

    # emoji off: user text such as ``pixels:-1`` must not turn into a picture (``:-1:``)
    return Console(emoji=False)


def literal(value: Any) -> str:
    """User text (a path, a name) for a rich line: printed literally, never as markup."""
    from rich.markup import escape

    return escape(str(value))


def fail(message: str) -> None:
    """One line on stderr (literally: user text is never read as markup) and exit code 2."""
    from rich.console import Console
    from rich.markup import escape

    from latentgen.runtime.distributed import environment_world

    rank, world, _ = environment_world() if "WORLD_SIZE" in os.environ else (0, 1, 0)
    where = f" (rank {rank})" if world > 1 else ""
    Console(stderr=True, emoji=False).print(f"[red]error{where}:[/] {escape(message)}",
                                            highlight=False, soft_wrap=True)
    sys.exit(2)

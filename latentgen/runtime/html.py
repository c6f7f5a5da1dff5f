"""HTML fragments for the report: a table of values (measures lay out their own sections)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any


def fmt5(v: Any) -> str:
    """Floats to five decimals, anything else as text."""
    return f"{v:.5f}" if isinstance(v, float) else str(v)


def html_table(header: list[str], rows: list[list[Any]],
               fmt: Callable[[Any], str] | None = None) -> str:
    """``<table>`` of ``header`` and ``rows``, each cell ``fmt(value)`` (default ``fmt5``),
    escaped."""
    fmt = fmt or fmt5
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"

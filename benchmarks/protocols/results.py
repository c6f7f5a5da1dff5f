"""The JSON lines file a protocol script appends its rows to, so that a long protocol can run a
few parts at a time: a part whose row is in the file already is not run again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class Results:
    """Rows read from ``path`` (none when it is None or absent); ``add`` prints a new row and
    appends it to the file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self.rows = [json.loads(line) for line in path.read_text().splitlines() if line]

    def has(self, **key: Any) -> bool:
        """Whether a row has every field of ``key`` equal (compared as JSON)."""
        want = {k: json.dumps(v, sort_keys=True) for k, v in key.items()}
        return any(all(json.dumps(row.get(k), sort_keys=True) == v for k, v in want.items())
                   for row in self.rows)

    def add(self, row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)
        self.rows.append(row)
        if self.path is not None:
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")

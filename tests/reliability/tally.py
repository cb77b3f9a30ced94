"""What the reliability suite tried, for ``tests/reliability/REPORT.md`` (``make reliability``).

A fault or attack test asks for the ``tally`` fixture and records, after doing its work, one row per fault or attack
class it exercised::

    tally.record("Faults", "kill -9 during 200 concurrent pushes", tried=200, data_lost=0, corrupt_served=0)

``tried`` is how many times the fault was injected or the hostile input sent; every other keyword is an outcome
count (``data_lost``, ``corrupt_served``, ``server_errors``, ``accepted``, ``escaped`` ...) whose value the test has
*measured* (a variable it counted, never a literal it did not check). The fixture writes the rows, with the test's
result (passed / failed), as JSON lines into ``$DOCKYARD_RELIABILITY_TALLY`` when that directory is set (``make
reliability`` sets it); otherwise the rows are kept in memory only, so a normal ``make test`` writes nothing.

``HEAVY`` is true under ``DOCKYARD_RELIABILITY_HEAVY=1`` (``make reliability HEAVY=1``): tests scale their fault
counts up with :func:`scaled` for local runs; CI runs the default counts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

TALLY_ENV = "DOCKYARD_RELIABILITY_TALLY"
HEAVY = os.environ.get("DOCKYARD_RELIABILITY_HEAVY") == "1"


def scaled(ci: int, heavy: int) -> int:
    """``heavy`` under ``DOCKYARD_RELIABILITY_HEAVY=1``, else ``ci``."""
    return heavy if HEAVY else ci


@dataclass
class Row:
    """One fault or attack class as one test exercised it."""

    section: str
    name: str
    tried: int
    outcomes: dict[str, int]
    test: str = ""
    result: str = ""


@dataclass
class Tally:
    """The rows of one test; written when the test ends (see the module docstring)."""

    test: str
    rows: list[Row] = field(default_factory=list)

    def record(self, section: str, name: str, *, tried: int, **outcomes: int) -> None:
        """Add one row. ``tried`` must be positive: a row that tried nothing reports nothing."""
        if tried <= 0:
            raise ValueError(f"{name}: tried must be positive, got {tried}")
        self.rows.append(Row(section, name, tried, dict(outcomes), self.test))

    def write(self, result: str) -> None:
        """Append the rows, stamped with ``result``, to this process's file under ``$DOCKYARD_RELIABILITY_TALLY``."""
        directory = os.environ.get(TALLY_ENV)
        if not directory or not self.rows:
            return
        path = Path(directory) / f"tally-{os.getpid()}.jsonl"
        with path.open("a", encoding="utf-8") as out:
            for row in self.rows:
                row.result = result
                out.write(json.dumps(asdict(row)) + "\n")


def read_rows(directory: Path) -> list[Row]:
    """Every row written under ``directory`` by :meth:`Tally.write`."""
    rows = []
    for path in sorted(directory.glob("tally-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(Row(**json.loads(line)))
    return rows

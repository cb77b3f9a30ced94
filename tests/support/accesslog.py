"""Reading a live registry's JSON-lines access log: the evidence behind an interop failure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.support.server import LiveRegistry


@dataclass(frozen=True)
class LogRecord:
    """One access-log line: ``method path -> status`` plus the client's user agent."""

    method: str
    path: str
    status: int
    agent: str
    raw: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} ({self.agent[:40]})"


def records(registry: LiveRegistry) -> list[LogRecord]:
    """Every access-log record written so far (other lines of the process output are skipped)."""
    found: list[LogRecord] = []
    if not registry.log.exists():
        return found
    for line in registry.log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "method" in doc and "path" in doc:
            found.append(
                LogRecord(
                    str(doc["method"]), str(doc["path"]), int(doc.get("status", 0)), str(doc.get("agent", "")), doc
                )
            )
    return found


def matching(
    registry: LiveRegistry, method: str | None = None, path_pattern: str = ".*", since: int = 0
) -> list[LogRecord]:
    """Records from index ``since`` on whose method is ``method`` (any if None) and path fully matches."""
    pattern = re.compile(path_pattern)
    return [
        r
        for r in records(registry)[since:]
        if (method is None or r.method == method) and pattern.fullmatch(r.path) is not None
    ]


def log_tail(registry: LiveRegistry, lines: int = 40) -> str:
    """The last ``lines`` lines of the registry's output (access log and any error lines), as text."""
    if not registry.log.exists():
        return "(no log file)"
    return "\n".join(registry.log.read_text(errors="replace").splitlines()[-lines:])


def failures(registry: LiveRegistry, since: int = 0) -> list[LogRecord]:
    """Requests the registry answered with a 5xx (never expected from a well-behaved client session)."""
    return [r for r in records(registry)[since:] if r.status >= 500]

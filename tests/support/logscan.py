"""Secrets that must never appear in a server's log, found by their shape: the whole suite's server logs are
scanned at the end of each test session (``tests/conftest.py``), so a leak from any test fails the run."""

from __future__ import annotations

import re
from pathlib import Path

SERVER_LOGS = ("registry.log",)  # what tests/support starts dockyard with (server.py, netns.py)
SECRET_SHAPES = {
    "a signed token (JWT)": re.compile(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+"),
    "a personal access token": re.compile(rb"dyp_[A-Za-z0-9_-]{16,}"),
    "HTTP Basic credentials": re.compile(rb"Basic [A-Za-z0-9+/]{12,}={0,2}"),
    "an Authorization header": re.compile(rb"(?i)authorization[\"']?\s*[:=]\s*[\"']?(bearer|basic) \S{8,}"),
}


def leaks(root: Path) -> list[str]:
    """``path: what`` for every server log under ``root`` holding something shaped like a secret."""
    found = []
    for name in SERVER_LOGS:
        for log in sorted(root.rglob(name)):
            try:
                data = log.read_bytes()
            except OSError:
                continue
            found += [f"{log}: {what}" for what, shape in SECRET_SHAPES.items() if shape.search(data)]
    return found

"""External tools for the interop tests: a missing tool skips locally and fails under ``CI=true``."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The absolute path of ``name``; if missing, fail under CI (never a silent skip), else skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it: scripts/install-system-deps.sh)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_root() -> None:
    """Tests that start daemons or containers need root; fail under CI, skip elsewhere."""
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("this test needs root")
        pytest.skip("this test needs root")

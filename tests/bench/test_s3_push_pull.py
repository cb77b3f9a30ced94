"""The S3 benchmark script runs end to end (small blobs: this checks the script, not the speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require_tool

pytestmark = pytest.mark.interop
SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "s3_push_pull.py"


def test_benchmark_prints_the_side_by_side_table() -> None:
    require_tool("docker-registry")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "12M", "--runs", "1"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    rows = {
        m[1]: m
        for m in re.finditer(r"^\s*12M\s+(push|finish|pull)\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", result.stdout, re.M)
    }
    assert set(rows) == {"push", "finish", "pull"}, result.stdout
    for match in rows.values():
        dockyard, distribution, ratio = (float(match[i]) for i in (2, 3, 4))
        assert dockyard > 0
        assert distribution > 0
        assert ratio == pytest.approx(dockyard / distribution, rel=0.05)  # the table rounds to milliseconds
    assert "s3-only" in result.stdout
    assert "peak RSS" in result.stdout

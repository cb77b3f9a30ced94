"""The runtime benchmark script runs end to end (tiny settings: this checks the script, not the speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require_root, require_tool

pytestmark = pytest.mark.interop
SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "runtime_bench.py"
NUMBER = r"([\d.]+)"


def test_benchmark_prints_percentiles_and_ratios() -> None:
    require_root()
    for tool in ("runc", "podman", "skopeo"):
        require_tool(tool)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "3", "--pull-size", "10M", "--pull-runs", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ("dockyard run", "runc run", "podman run", "dockyard pull", "skopeo copy"):
        match = re.search(rf"^{label}.*p50\s+{NUMBER} m?s\s+p90\s+{NUMBER} m?s", out, re.M)
        assert match is not None, out
        assert 0 < float(match[1]) <= float(match[2])
    for label in ("dockyard/runc", "dockyard/podman", "dockyard/skopeo"):
        match = re.search(rf"^ratio {label}\s+p50\s+{NUMBER}\s+p90\s+{NUMBER}\s+target .*: (met|MISSED)$", out, re.M)
        assert match is not None, out
        assert float(match[1]) > 0

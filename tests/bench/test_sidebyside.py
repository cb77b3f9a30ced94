"""``python -m bench --quick`` runs end to end against dockyard and CNCF Distribution (a smoke test of the
harness, not a timing check): every row is printed with numbers for both servers, and the JSON is complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require_tool

pytestmark = pytest.mark.interop
ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,.]+"
CELL = rf"{NUMBER} \({NUMBER}\)(?:; {NUMBER} / {NUMBER} ms)?"
ROWS = (
    r"monolithic upload 1 MiB",
    r"monolithic upload 20 MiB",
    r"chunked upload 100 MiB in 5 MiB chunks",
    r"blob download 20 MiB, cold cache",
    r"blob download 20 MiB, warm cache",
    *(rf"manifest {method} by tag, {n} connections" for method in ("GET", "HEAD") for n in (1, 32, 128)),
    r"tags list, 300 tags",
    r"tags page of 100, 100 tags",
    r"tags page of 100, 300 tags",
    r"catalog, 500\+ repositories",
    r"repositories page of 100, 100 repositories",
    r"repositories page of 100, 500 repositories",
    r"skopeo copy push, 3 x 2 MiB layers",
    r"skopeo copy pull, 3 x 2 MiB layers",
    r"100 small images, 32 clients",
)


def test_quick_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    require_tool("docker-registry")
    require_tool("skopeo")
    out_json = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out_json), "--markdown", str(tmp_path / "bench.md")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert re.search(rf"SHA-256 on one core {NUMBER} MB/s; loopback sendfile {NUMBER} MB/s", out), out
    for label in ROWS:
        row = rf"^\| {label} \| [^|]+ \| {CELL} \| {CELL} \| {NUMBER} \| [^|]+ \| (met|MISSED) \|"
        assert re.search(row, out, re.M), f"{label}\n{out}"
    assert (tmp_path / "bench.md").read_text() in out

    doc = json.loads(out_json.read_text())
    assert doc["machine"]["nproc"] >= 1
    assert min(doc["limits"].values()) > 0
    assert len(doc["rows"]) == len(ROWS)
    for row in doc["rows"]:
        assert row["ratio"] > 0, row
        assert row["met"] in (True, False), row
        for name in ("dockyard", "distribution"):
            side = row["servers"][name]
            numbers = [*side["samples"], side["median"], side["peak_rss_bytes"]]
            assert all(value > 0 for value in numbers), row
            assert min(side["server_cpu_seconds"], side["client_cpu_seconds"]) >= 0, row

"""The catalog benchmark script runs end to end (tiny sizes: this checks the script, not the speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "catalog_bench.py"
ROW = r"^sqlite\s+{label}.*p50\s+([\d.]+) ms\s+p90\s+([\d.]+) ms\s+target < 50 ms: (met|MISSED)$"
LABELS = (
    r"home \(anonymous\)",
    r"home \(member\)",
    r'search "" page 1',
    r'search "\w+" \(anonymous\)',
    r"search exact name",
    r"namespace \S+",
    r"repository detail",
    r"tags page 1 of the biggest repository",
    r"tags page 100 of the biggest repository",
    r"_catalog names, 100 after a cursor",
    r"HTTP GET /search\?q=word",
    r"HTTP GET /repositories/\{big\}/-/tags",
    r"page GET / \(home\)",
    r"page GET /search\?q=word",
    r"page GET /u/\{ns\}",
    r"page GET /r/\{big\}",
)


def test_benchmark_prints_a_row_per_measurement() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--repositories", "120", "--tags", "600", "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^sqlite: [\d,]+ rows \(120 repositories, 600 tags\) written in", out, re.M), out
    for label in LABELS:
        match = re.search(ROW.format(label=label), out, re.M)
        assert match is not None, f"{label}\n{out}"
        assert 0 < float(match[1]) <= float(match[2])


def test_generator_is_deterministic_and_sized() -> None:
    from bench.catalog_data import Sizes, fill_rows
    from catalog.models import IndexedRepositoryRow, IndexedTagRow

    sizes = Sizes(repositories=50, tags=400, namespaces=6, big_repository_tags=100)
    first, rows = fill_rows(sizes, seed=3)
    second, _ = fill_rows(sizes, seed=3)
    assert first == second
    assert len(rows[IndexedRepositoryRow]) == 50
    assert len(rows[IndexedTagRow]) == 400
    assert sum(r["tag_count"] for r in rows[IndexedRepositoryRow]) == 400
    assert len({r["name"] for r in rows[IndexedRepositoryRow]}) == 50
    big = next(r for r in rows[IndexedRepositoryRow] if r["name"] == first.big_repository)
    assert big["tag_count"] >= 100

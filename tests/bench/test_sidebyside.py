"""The side-by-side benchmark (``python -m bench``).

- ``--quick`` runs end to end against dockyard and CNCF Distribution (a smoke test of the harness, not a timing
  check; interop): every row is printed with numbers for both servers, the limits and ceilings are there, and the
  JSON is complete;
- the targets against ceilings (out of reach or not, throughput and latency rows, the SHA-256 share against the
  durable write), the report's ``met`` column and JSON, on made-up rows (no server);
- the new limit functions on small sizes (the disk of the test's temp dir).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.sidebyside import limits
from bench.sidebyside.plan import MiB
from bench.sidebyside.report import Report, limits_sentence, markdown_table, verdict
from bench.sidebyside.runner import Row, Side
from bench.sidebyside.targets import Limits, judge
from tests.support.tools import require_tool

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


CEILING_ROWS = {  # the rows of --quick with a ceiling, and what it is
    "monolithic upload 20 MiB": "durable write to the disk",
    "blob download 20 MiB, cold cache": "cold read of the disk",
}


@pytest.mark.interop
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
    assert re.search(rf"SHA-256 on one core {NUMBER} MB/s; loopback sendfile {NUMBER} MB/s; loopback copy", out), out
    assert re.search(rf"cold read of the disk {NUMBER} MB/s", out), out
    assert re.search(rf"durable write to the disk \(write \+ fsync\) 20 MiB {NUMBER} MB/s", out), out
    for label in ROWS:
        row = (
            rf"^\| {label} \| [^|]+ \| {CELL} \| {CELL} \| {NUMBER} \| [^|]+ \| (met|MISSED|MISSED \(out of reach\)) \|"
        )
        assert re.search(row, out, re.M), f"{label}\n{out}"
    for label, ceiling in CEILING_ROWS.items():
        assert re.search(rf"^\| {re.escape(label)} \|[^\n]* here[:,] [^\n]*{ceiling}", out, re.M), f"{label}\n{out}"
    assert (tmp_path / "bench.md").read_text() in out

    doc = json.loads(out_json.read_text())
    assert doc["machine"]["nproc"] >= 1
    measured = doc["limits"]
    assert min(measured[name] for name in ("sha256_mb_s", "sendfile_mb_s", "copy_mb_s", "cold_read_mb_s")) > 0
    assert list(measured["durable_write_mb_s"]) == [str(20 * MiB)]
    assert measured["durable_write_mb_s"][str(20 * MiB)] > 0
    assert len(doc["rows"]) == len(ROWS)
    for row in doc["rows"]:
        assert row["ratio"] > 0, row
        assert row["met"] in (True, False), row
        if row["name"] in CEILING_ROWS:
            assert row["ceiling"] > 0, row
            assert row["ceiling_label"].startswith(CEILING_ROWS[row["name"]]), row
            medians = [side["median"] for side in row["servers"].values()]
            beaten = max(medians) > row["ceiling"] if row["higher_is_better"] else min(medians) < row["ceiling"]
            assert row["reachable"] in ((None,) if beaten else (True, False)), row
        else:
            assert (row["ceiling"], row["ceiling_label"], row["reachable"]) == (None, "", None), row
        for name in ("dockyard", "distribution"):
            side = row["servers"][name]
            numbers = [*side["samples"], side["median"], side["peak_rss_bytes"]]
            assert all(value > 0 for value in numbers), row
            assert min(side["server_cpu_seconds"], side["client_cpu_seconds"]) >= 0, row


def make_row(dockyard: float, distribution: float, *, higher_is_better: bool = True, **fields: object) -> Row:
    """A finished row whose servers' medians are ``dockyard`` and ``distribution``."""
    sides = {"dockyard": Side(values=[dockyard]), "distribution": Side(values=[distribution])}
    row = Row("a row", "MB/s" if higher_is_better else "s", higher_is_better, sides)
    for name, value in fields.items():
        setattr(row, name, value)
    return row


LIMITS = Limits(sha256_mb_s=1_100.0, sendfile_mb_s=2_000.0, copy_mb_s=2_600.0, cold_read_mb_s=2_450.0)


def test_a_row_without_ceiling_is_judged_as_before() -> None:
    row = make_row(1_000.0, 800.0)
    judge(row, LIMITS)
    assert (row.target, row.met, row.ceiling, row.reachable) == ("≥ 1.5x", False, None, None)
    assert verdict(row) == "MISSED"


def test_cold_download_out_of_reach_when_the_disk_cannot_give_the_ratio() -> None:
    row = make_row(1_100.0, 1_900.0, kind="cold-download")
    judge(row, LIMITS)
    assert row.ceiling == 2_450.0
    assert row.target == "≥ 1.5x (out of reach here: at most 1.29x, cold read of the disk 2,450 MB/s)"
    assert (row.met, row.reachable) == (False, False)
    assert verdict(row) == "MISSED (out of reach)"


def test_cold_download_reachable_when_the_disk_is_fast_enough() -> None:
    row = make_row(1_100.0, 1_000.0, kind="cold-download")
    judge(row, LIMITS)
    assert row.target == "≥ 1.5x (at most 2.45x here: cold read of the disk 2,450 MB/s)"
    assert (row.met, row.reachable) == (False, True)
    assert verdict(row) == "MISSED"


@pytest.mark.parametrize(
    ("dockyard", "distribution", "expected"),
    [
        # a client alone takes 0.46 s: against Distribution's 0.52 s, at most 1.13x
        (
            0.50,
            0.52,
            (
                "≥ 1.5x (out of reach here: at most 1.13x, the client alone 0.46 s)",
                False,
                False,
                "MISSED (out of reach)",
            ),
        ),
        # Distribution takes 0.9 s: 1.96x would be possible, dockyard's 0.7 s is not enough
        (0.70, 0.90, ("≥ 1.5x (at most 1.96x here: the client alone 0.46 s)", False, True, "MISSED")),
        # both servers beat the client alone: it bounds nothing, so no verdict on reach
        (
            0.35,
            0.39,
            ("≥ 1.5x (no bound here, a registry did better than the client alone 0.46 s)", False, None, "MISSED"),
        ),
        # met stays met, even with a ceiling that dockyard beat
        (0.30, 0.50, ("≥ 1.5x (no bound here, a registry did better than the client alone 0.46 s)", True, None, "met")),
    ],
    ids=["out-of-reach", "reachable", "ceiling-beaten", "met"],
)
def test_latency_row_against_its_own_ceiling(
    dockyard: float, distribution: float, expected: tuple[str, bool, bool | None, str]
) -> None:
    row = make_row(
        dockyard, distribution, higher_is_better=False, ceiling=0.46, ceiling_label="the client alone 0.46 s"
    )
    judge(row, LIMITS)
    assert (row.target, row.met, row.reachable, verdict(row)) == expected
    assert row.ceiling == 0.46  # a row's own ceiling is kept


def test_a_throughput_ceiling_that_distribution_beat_is_no_bound() -> None:
    row = make_row(1_000.0, 2_600.0, kind="cold-download")
    judge(row, LIMITS)
    assert row.target == "≥ 1.5x (no bound here, a registry did better than cold read of the disk 2,450 MB/s)"
    assert (row.met, row.reachable, row.ceiling) == (False, None, 2_450.0)
    assert verdict(row) == "MISSED"


@pytest.mark.parametrize(
    ("durable", "best", "sha_check", "reachable"),
    [
        (600.0, "2.00x", "≥ 660 MB/s (60% SHA-256; out of reach here: durable write to the disk 600 MB/s)", False),
        (1_300.0, "4.33x", "≥ 660 MB/s (60% SHA-256)", True),
    ],
    ids=["out-of-reach", "reachable"],
)
def test_sha_share_against_the_durable_write(durable: float, best: str, sha_check: str, reachable: bool) -> None:
    limits_here = Limits(1_100.0, 2_000.0, 2_600.0, 2_450.0, {100 * MiB: durable, 1 << 30: 5.0})
    row = make_row(500.0, 300.0, kind="monolithic-sha", size=100 * MiB)
    judge(row, limits_here)
    assert row.ceiling == durable
    assert row.target == f"≥ 1.5x (at most {best} here: durable write to the disk {durable:,.0f} MB/s), {sha_check}"
    assert (row.met, row.reachable) == (False, reachable)
    assert verdict(row) == ("MISSED" if reachable else "MISSED (out of reach)")


def test_a_row_is_out_of_reach_only_when_every_missed_check_is() -> None:
    """The 100 MiB upload misses 1.5x (reachable: at most 2.00x) and the SHA-256 share (out of reach): dockyard
    could still do better on the ratio, so the row is a plain MISSED."""
    row = make_row(400.0, 300.0, kind="monolithic-sha", size=100 * MiB)
    judge(row, Limits(1_100.0, 2_000.0, 2_600.0, 2_450.0, {100 * MiB: 600.0}))
    assert row.target == (
        "≥ 1.5x (at most 2.00x here: durable write to the disk 600 MB/s), "
        "≥ 660 MB/s (60% SHA-256; out of reach here: durable write to the disk 600 MB/s)"
    )
    assert (row.met, row.reachable, verdict(row)) == (False, True, "MISSED")


def test_durable_write_of_another_size_sets_no_ceiling() -> None:
    row = make_row(800.0, 300.0, kind="monolithic-sha", size=20 * MiB)
    judge(row, Limits(1_100.0, 2_000.0, 2_600.0, None, {100 * MiB: 400.0}))
    assert (row.ceiling, row.reachable, row.met) == (None, None, True)
    assert row.target == "≥ 1.5x, ≥ 660 MB/s (60% SHA-256)"


def test_best_limits_keep_the_highest_of_each() -> None:
    before = Limits(1_000.0, 2_100.0, 2_500.0, None, {MiB: 900.0})
    after = Limits(1_100.0, 2_000.0, 2_600.0, 2_450.0, {MiB: 800.0, 2 * MiB: 700.0})
    assert Limits.best(before, after) == Limits(1_100.0, 2_100.0, 2_600.0, 2_450.0, {MiB: 900.0, 2 * MiB: 700.0})
    assert Limits.best(before).cold_read_mb_s is None


def judged_rows() -> list[Row]:
    rows = [
        make_row(2_000.0, 1_000.0),
        make_row(1_100.0, 1_000.0, kind="cold-download"),
        make_row(1_100.0, 1_900.0, kind="cold-download"),
    ]
    for row in rows:
        judge(row, LIMITS)
    return rows


def test_met_column_says_when_a_miss_is_out_of_reach() -> None:
    verdicts = [line.split(" | ")[6] for line in markdown_table(judged_rows()).splitlines()[2:]]
    assert verdicts == ["met", "MISSED", "MISSED (out of reach)"]


def test_json_carries_the_ceilings_and_the_new_limits() -> None:
    limits_here = Limits(1_100.0, 2_000.0, 2_600.0, 2_450.0, {100 * MiB: 1_300.0})
    report = Report({}, limits_here, {"dockyard": 1, "distribution": 1}, judged_rows(), machine={})
    doc = json.loads(json.dumps(report.as_json()))
    assert doc["limits"] == {
        "sha256_mb_s": 1_100.0,
        "sendfile_mb_s": 2_000.0,
        "copy_mb_s": 2_600.0,
        "cold_read_mb_s": 2_450.0,
        "durable_write_mb_s": {str(100 * MiB): 1_300.0},
    }
    fields = [(row["ceiling"], row["ceiling_label"], row["reachable"]) for row in doc["rows"]]
    assert fields == [
        (None, "", None),
        (2_450.0, "cold read of the disk 2,450 MB/s", True),
        (2_450.0, "cold read of the disk 2,450 MB/s", False),
    ]


def test_limits_sentence_names_the_new_limits() -> None:
    text = limits_sentence(Limits(1_100.0, 2_000.0, 2_600.0, 2_450.0, {100 * MiB: 1_300.0, 1 << 30: 1_250.0}))
    assert "loopback copy (preadv + send, 1 MiB buffer; information only) 2,600 MB/s" in text
    assert "cold read of the disk 2,450 MB/s" in text
    assert "durable write to the disk (write + fsync) 100 MiB 1,300 MB/s, 1 GiB 1,250 MB/s" in text
    assert "cold read" not in limits_sentence(Limits(1_100.0, 2_000.0, 2_600.0))


@pytest.mark.parametrize(
    "measure",
    [limits.cold_read_mb_s, limits.durable_write_mb_s, limits.copy_mb_s, limits.sendfile_mb_s],
    ids=["cold-read", "durable-write", "copy", "sendfile"],
)
def test_limit_functions_measure_and_leave_no_file(measure: Callable[[Path, int], float], tmp_path: Path) -> None:
    assert measure(tmp_path, 4 * MiB) > 0
    assert os.listdir(tmp_path) == []


def test_a_short_file_is_an_error_not_a_fast_read(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(RuntimeError, match="ended at 1000 bytes of 4096"):
            limits._read_pieces(fd, 4096)
    finally:
        os.close(fd)

"""The results: a Markdown table (also what the console shows), a JSON document, and the machine description.

The ``met`` column reads ``met``, ``MISSED``, or ``MISSED (out of reach)`` when every missed check is one that no
registry could pass on this machine (the row's ceiling, see :mod:`.targets`); the JSON carries each row's
``ceiling``, ``ceiling_label`` and ``reachable``, and every limit.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.sidebyside.plan import human_size
from bench.sidebyside.runner import Row, Side
from bench.sidebyside.servers import distribution_version
from bench.sidebyside.targets import Limits

MiB = 1 << 20
REPO_ROOT = Path(__file__).resolve().parents[2]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "distribution": distribution_version(),
        "dockyard_revision": _git_revision(),
    }


@dataclass
class Report:
    """One run: when, where, with which options, the limits, idle RSS of each server and the rows."""

    options: dict[str, Any]
    limits: Limits
    idle_rss: dict[str, int]
    rows: list[Row] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    machine: dict[str, Any] = field(default_factory=machine)

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.started.isoformat(timespec="seconds"),
            "machine": self.machine,
            "options": self.options,
            "limits": asdict(self.limits),  # durable_write_mb_s: by blob size in bytes
            "idle_rss_bytes": self.idle_rss,
            "rows": [_row_json(row) for row in self.rows],
        }


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "unit": row.unit,
        "higher_is_better": row.higher_is_better,
        "ratio": row.ratio,
        "target": row.target,
        "met": row.met,
        "ceiling": row.ceiling,
        "ceiling_label": row.ceiling_label,
        "reachable": row.reachable,
        "servers": {name: side.as_json(row.higher_is_better) for name, side in row.sides.items()},
    }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 1 else f"{value:.2g}"


def _cell(side: Side, row: Row) -> str:
    text = f"{_number(side.median())} ({_number(side.tail(row.higher_is_better))})"
    latency = side.latency_ms()
    if latency is not None:
        text += f"; {_number(latency[0])} / {_number(latency[1])} ms"
    return text


def _client(side: Side) -> str:
    flag = " ⚠" if side.client_bound else ""
    return f"{side.client_share * 100:.0f}%{flag}"


HEADER = (
    "| row | unit | dockyard median (p90) | Distribution median (p90) | ratio | target | met | "
    "server CPU s dy / ds | peak RSS MiB dy / ds | client CPU dy / ds |"
)


def verdict(row: Row) -> str:
    """The ``met`` column: ``met``, ``MISSED``, or ``MISSED (out of reach)`` (no registry could meet it here)."""
    if row.met:
        return "met"
    return "MISSED (out of reach)" if row.reachable is False else "MISSED"


def markdown_table(rows: list[Row]) -> str:
    """One line per row; ``⚠`` marks a client above 80% of one core (the load generator may be the limit)."""
    lines = [HEADER, "|" + " --- |" * 10]
    for row in rows:
        dy, ds = row.sides["dockyard"], row.sides["distribution"]
        lines.append(
            f"| {row.name} | {row.unit} | {_cell(dy, row)} | {_cell(ds, row)} | {row.ratio:.2f} | {row.target} | "
            f"{verdict(row)} | {dy.server_cpu:.1f} / {ds.server_cpu:.1f} | {dy.peak_rss / MiB:.0f} / "
            f"{ds.peak_rss / MiB:.0f} | {_client(dy)} / {_client(ds)} |"
        )
    return "\n".join(lines)


def limits_sentence(limits: Limits) -> str:
    """The limits, in words, for the report."""
    parts = [
        f"SHA-256 on one core {limits.sha256_mb_s:,.0f} MB/s",
        f"loopback sendfile {limits.sendfile_mb_s:,.0f} MB/s",
        f"loopback copy (preadv + send, 1 MiB buffer; information only) {limits.copy_mb_s:,.0f} MB/s",
    ]
    if limits.cold_read_mb_s is not None:
        parts.append(f"cold read of the disk {limits.cold_read_mb_s:,.0f} MB/s (the cold download's ceiling)")
    if limits.durable_write_mb_s:
        sizes = ", ".join(f"{human_size(size)} {mb_s:,.0f} MB/s" for size, mb_s in limits.durable_write_mb_s.items())
        parts.append(f"durable write to the disk (write + fsync) {sizes} (the big monolithic uploads' ceilings)")
    return f"Limits measured in this run (best of before and after the rows): {'; '.join(parts)}."


def markdown(report: Report) -> str:
    """The whole Markdown report: date, machine, limits, idle RSS, the table and how to read it."""
    m = report.machine
    storage = "one moto S3 server" if report.options.get("s3") else "filesystem (fresh temp dirs)"
    idle = " / ".join(f"{report.idle_rss[name] / MiB:.0f}" for name in ("dockyard", "distribution"))
    lines = [
        f"Run of {report.started:%Y-%m-%d %H:%M} UTC ({'--quick' if report.options.get('quick') else 'full'}); "
        f"storage: {storage}; dockyard {m['dockyard_revision']} `{report.options.get('dockyard_command')}`.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, CNCF Distribution {m['distribution']}.",
        "",
        f"{limits_sentence(report.limits)} "
        f"Idle RSS of the largest process, dockyard / Distribution: {idle} MiB (target: dockyard under 80 MiB "
        f"per worker: {'met' if report.idle_rss['dockyard'] < 80 * MiB else 'MISSED'}).",
        "",
        markdown_table(report.rows),
        "",
        "Medians over rounds (nearest rank: of two, the lower); p90 is the slow tail (p90 of latencies, p10 of "
        "throughputs). Load rows add the "
        "p50 / p90 latency of single requests (manifest rows) or image pushes. ratio > 1: dockyard is better. "
        "Client CPU is the load generator's CPU per wall second (⚠ above 80% of one core: it may be the limit). "
        "A target's \"at most Nx here\" is what a registry at the row's ceiling would reach (the best any "
        "registry could do on this machine, measured in this run); MISSED (out of reach): not even that would "
        'meet it; "no bound here": a server did better than the ceiling, so it bounds nothing.',
    ]
    return "\n".join(lines) + "\n"


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")

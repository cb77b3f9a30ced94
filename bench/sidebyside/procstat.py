"""CPU seconds and memory of a server's process tree, from ``/proc`` (Linux only), and the client's own CPU.

A server may fork workers: CPU is summed over the process and its live descendants (``utime + stime`` from
``/proc/PID/stat``; CPU of descendants that exited is lost). Memory is per process, as the issue's targets are
("per worker"): the largest ``VmRSS`` / ``VmHWM`` (``/proc/PID/status``) of any process of the tree, the peak
reset through ``/proc/PID/clear_refs`` (``5``) at the start of a row. Workers forked from one parent share pages,
so the tree's total resident memory is less than the number of processes times this figure.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None when the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (one scan of ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:  # utime and stime are fields 14 and 15 of stat, 12 and 13 after the name
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> None:
    """Reset VmHWM of the tree to its current RSS (silently skipped where not allowed)."""
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            (PROC / str(member) / "clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """The largest VmHWM of one process of the tree, in bytes."""
    return max(_status_kib(member, "VmHWM:") for member in process_tree(pid)) * 1024


def rss(pid: int) -> int:
    """The largest current VmRSS of one process of the tree, in bytes."""
    return max(_status_kib(member, "VmRSS:") for member in process_tree(pid)) * 1024


def client_cpu_seconds() -> float:
    """CPU seconds of this process (every thread) plus its waited-for children (e.g. skopeo runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

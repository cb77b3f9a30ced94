"""One row of the table: rounds in alternation, both servers measured alike, with CPU and memory accounting.

A row runs ``rounds`` rounds; each round measures both servers once, the first server alternating (A B, B A,
A B, ...) so that drift and order effects (page-cache writeback after the previous upload, warm-up) hit both
alike. Around each measurement the runner reads the server's CPU seconds (its process tree) and the client's own
CPU seconds; each server's VmHWM is reset when the row starts and read when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.sidebyside import procstat
from bench.sidebyside.servers import Registry
from bench.sidebyside.stats import median, percentile, slow_tail

CLIENT_BOUND = 0.8  # client CPU per wall second above which the load generator may be the bottleneck


@dataclass
class Measurement:
    """What a workload returns for one server and round: the row's ``value`` (in the row's unit) and, for load
    rows, the latencies of the single requests or operations (seconds)."""

    value: float
    latencies: list[float] = field(default_factory=list)


Workload = Callable[[Registry, int], Measurement]


@dataclass
class Side:
    """Everything measured for one server in one row."""

    values: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    rss_before: int = 0
    peak_rss: int = 0

    def median(self) -> float:
        return median(self.values)

    def tail(self, higher_is_better: bool) -> float:
        return slow_tail(self.values, higher_is_better)

    @property
    def client_share(self) -> float:
        """The client's CPU seconds per wall second of this server's measurements (1.0 = one core busy)."""
        return self.client_cpu / self.wall if self.wall > 0 else 0.0

    @property
    def client_bound(self) -> bool:
        return self.client_share > CLIENT_BOUND

    def latency_ms(self) -> tuple[float, float] | None:
        """p50 and p90 of the single operations' latencies, in ms (None when the workload records none)."""
        if not self.latencies:
            return None
        return percentile(self.latencies, 0.5) * 1e3, percentile(self.latencies, 0.9) * 1e3

    def as_json(self, higher_is_better: bool) -> dict[str, Any]:
        latency = self.latency_ms()
        return {
            "samples": self.values,
            "median": self.median(),
            "p90": self.tail(higher_is_better),
            "latency_ms": {"p50": latency[0], "p90": latency[1]} if latency else None,
            "wall_seconds": self.wall,
            "server_cpu_seconds": self.server_cpu,
            "client_cpu_seconds": self.client_cpu,
            "client_cpu_share": self.client_share,
            "client_bound": self.client_bound,
            "rss_before_bytes": self.rss_before,
            "peak_rss_bytes": self.peak_rss,
        }


def relative(value: float, reference: float, higher_is_better: bool) -> float:
    """``value`` relative to ``reference``, > 1 when ``value`` is better (throughput ratio, or the inverse ratio
    of latencies)."""
    if higher_is_better:
        return value / reference if reference > 0 else float("inf")
    return reference / value if value > 0 else float("inf")


@dataclass
class Row:
    """A finished row: ``sides`` by server name; ``target``, ``met`` and ``reachable`` are filled in by
    :mod:`.targets`, which also sets ``ceiling`` from the limits for the rows a measured limit bounds.

    ``ceiling`` (in the row's unit) is the best value any registry could reach in this row on this machine,
    measured in the same run (e.g. a cold read of the disk), and
    ``ceiling_label`` says what it is, with its value; :attr:`ceiling_holds` tells whether the servers' medians
    leave it standing."""

    name: str
    unit: str
    higher_is_better: bool
    sides: dict[str, Side]
    kind: str = "ratio"  # which targets apply: see targets.judge
    baseline: float | None = None  # kind "scale": dockyard's median of the same request on a small population
    size: int | None = None  # blob rows: the blob's size in bytes (size-dependent limits are looked up at it)
    ceiling: float | None = None
    ceiling_label: str = ""
    target: str = ""
    met: bool | None = None
    reachable: bool | None = None  # None: no ceiling that holds; False: some missed check is out of reach here
    note: str = ""

    @property
    def ratio(self) -> float:
        """dockyard relative to Distribution, > 1 when dockyard is better (throughput ratio, or the inverse
        ratio of latencies)."""
        return relative(self.sides["dockyard"].median(), self.sides["distribution"].median(), self.higher_is_better)

    @property
    def ceiling_holds(self) -> bool:
        """Whether ``ceiling`` bounds the row at all: it is set and no server's median is better (a server that
        did better shows it is no bound: a noisy measurement, or a ceiling that does more work than the row)."""
        if self.ceiling is None:
            return False
        return all(relative(side.median(), self.ceiling, self.higher_is_better) <= 1.0 for side in self.sides.values())

    @property
    def best_ratio(self) -> float | None:
        """The ratio a registry reaching ``ceiling`` would have against Distribution (None without a ceiling)."""
        if self.ceiling is None:
            return None
        return relative(self.ceiling, self.sides["distribution"].median(), self.higher_is_better)


def _measure(registry: Registry, workload: Workload, round_index: int, side: Side) -> None:
    cpu, client, start = procstat.cpu_seconds(registry.pid), procstat.client_cpu_seconds(), time.perf_counter()
    result = workload(registry, round_index)
    side.wall += time.perf_counter() - start
    side.client_cpu += procstat.client_cpu_seconds() - client
    side.server_cpu += procstat.cpu_seconds(registry.pid) - cpu
    side.values.append(result.value)
    side.latencies.extend(result.latencies)


def run_row(
    name: str,
    unit: str,
    higher_is_better: bool,
    registries: Sequence[Registry],
    rounds: int,
    workload: Workload,
    before_round: Callable[[int], None] | None = None,
    before_each: Callable[[Registry], None] | None = None,
) -> Row:
    """Run ``workload(registry, round)`` ``rounds`` times per registry in alternation. ``before_round(round)``
    prepares a round (e.g. a fresh blob) and ``before_each(registry)`` runs before every measurement (e.g.
    dropping the page cache); neither is timed nor counted. Prints one progress line per round."""
    sides = {registry.name: Side() for registry in registries}
    for registry in registries:
        procstat.reset_peak(registry.pid)
        sides[registry.name].rss_before = procstat.rss(registry.pid)
    for round_index in range(rounds):
        if before_round is not None:
            before_round(round_index)
        order = registries if round_index % 2 == 0 else list(reversed(registries))
        for registry in order:
            if before_each is not None:
                before_each(registry)
            _measure(registry, workload, round_index, sides[registry.name])
        shown = "  ".join(f"{r.name} {sides[r.name].values[-1]:.4g}" for r in registries)
        print(f"  {name}: round {round_index + 1}/{rounds}: {shown} {unit}", flush=True)
    for registry in registries:
        sides[registry.name].peak_rss = procstat.peak_rss(registry.pid)
    return Row(name, unit, higher_is_better, sides)

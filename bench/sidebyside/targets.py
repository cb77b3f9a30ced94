"""The targets of issue 8, judged on a finished row against the limits measured in the same run.

- every row (kind ``ratio``, ``cold-download``): dockyard at least 1.5x Distribution (throughput, or 2/3 of its
  latency);
- ``warm-download``: at least parity, and at least 80% of the loopback sendfile limit;
- ``monolithic-sha``: 1.5x, and at least 60% of the single-core SHA-256 limit (big blobs only: a 1 MiB upload is
  latency-bound, two round trips, so only the ratio applies there);
- ``monolithic-sha-rss`` (the 1 GiB upload): also, dockyard's RSS grows by less than 20 MiB during the row;
- ``scale`` (one page of the catalog or of a tags list on the large population): also flat, dockyard's latency at
  most :data:`FLAT` times its latency for the same page on a population of :data:`~bench.sidebyside.plan.SCALE_SMALL`
  (``row.baseline``).

Ceilings: some rows are bounded by something no registry can beat on this machine, measured in the same run
(``row.ceiling``). ``cold-download`` rows get the cold read of the disk, ``monolithic-sha*`` rows the durable write
(write + fsync) at their size, both from :class:`Limits` (a row may also bring its own). A missed check that even a
registry at the ceiling would miss is marked out of reach, and the row (``row.reachable`` False) when all its missed
checks are: the ratio when ceiling /
Distribution (or Distribution / ceiling for latencies) is below the target, a MB/s floor when the ceiling is below it. A
met check stays met. A ceiling that either server beat is no bound (noisy, or it does more work than the row): the
target text says so and ``row.reachable`` stays None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.sidebyside.runner import Row

RATIO = 1.5
SENDFILE_SHARE = 0.8
SHA_SHARE = 0.6
RSS_GROWTH = 20 << 20
FLAT = 1.5


@dataclass(frozen=True)
class Limits:
    """MB/s of SHA-256 on one core, of a loopback sendfile and of a loopback copy (preadv + send) of a cached
    file; of a cold read of the disk at the download size, and of a durable write to it (write + fsync) by
    monolithic upload size (only the sizes with the SHA target). The disk limits stay None / empty when the
    registries do not store on the local disk (``--s3``)."""

    sha256_mb_s: float
    sendfile_mb_s: float
    copy_mb_s: float
    cold_read_mb_s: float | None = None
    durable_write_mb_s: dict[int, float] = field(default_factory=dict)

    @classmethod
    def best(cls, *measured: Limits) -> Limits:
        """The highest of several measurements of each limit (noise from other load only lowers them)."""
        cold = [m.cold_read_mb_s for m in measured if m.cold_read_mb_s is not None]
        sizes = sorted({size for m in measured for size in m.durable_write_mb_s})
        return cls(
            max(m.sha256_mb_s for m in measured),
            max(m.sendfile_mb_s for m in measured),
            max(m.copy_mb_s for m in measured),
            max(cold, default=None),
            {size: max(m.durable_write_mb_s.get(size, 0.0) for m in measured) for size in sizes},
        )


@dataclass
class _Check:
    text: str
    ok: bool
    reachable: bool = True  # False: missed, and a registry at the row's ceiling would miss it too


def _limit_ceiling(row: Row, limits: Limits) -> tuple[float, str] | None:
    """The ceiling a measured limit sets on ``row``, with its label, or None."""
    if row.kind == "cold-download" and limits.cold_read_mb_s is not None:
        return limits.cold_read_mb_s, f"cold read of the disk {limits.cold_read_mb_s:,.0f} MB/s"
    if row.kind.startswith("monolithic-sha") and row.size in limits.durable_write_mb_s:
        value = limits.durable_write_mb_s[row.size]
        return value, f"durable write to the disk {value:,.0f} MB/s"
    return None


def _ratio_check(row: Row, target: float) -> _Check:
    check = _Check(f"≥ {target}x", row.ratio >= target)
    best = row.best_ratio
    if best is None:
        return check
    if not row.ceiling_holds:
        check.text += f" (no bound here, a registry did better than {row.ceiling_label})"
    elif check.ok or best >= target:
        check.text += f" (at most {best:.2f}x here: {row.ceiling_label})"
    else:
        check.reachable = False
        check.text += f" (out of reach here: at most {best:.2f}x, {row.ceiling_label})"
    return check


def _floor_check(row: Row, floor: float, what: str) -> _Check:
    """dockyard's median at least ``floor`` MB/s (``what`` says which share of which limit it is)."""
    check = _Check(f"≥ {floor:,.0f} MB/s ({what})", row.sides["dockyard"].median() >= floor)
    if not check.ok and row.ceiling is not None and row.ceiling_holds and row.ceiling < floor:
        check.reachable = False
        check.text = f"≥ {floor:,.0f} MB/s ({what}; out of reach here: {row.ceiling_label})"
    return check


def judge(row: Row, limits: Limits) -> None:
    """Fill in ``row.target`` (text), ``row.met`` and ``row.reachable``, and ``row.ceiling`` from ``limits``
    where a limit bounds the row and it has no ceiling of its own yet."""
    if row.ceiling is None and (found := _limit_ceiling(row, limits)) is not None:
        row.ceiling, row.ceiling_label = found
    dockyard = row.sides["dockyard"]
    checks: list[_Check] = []
    if row.kind == "warm-download":
        checks.append(_ratio_check(row, 1.0))
        checks.append(_floor_check(row, SENDFILE_SHARE * limits.sendfile_mb_s, "80% sendfile"))
    else:
        checks.append(_ratio_check(row, RATIO))
    if row.kind.startswith("monolithic-sha"):
        checks.append(_floor_check(row, SHA_SHARE * limits.sha256_mb_s, "60% SHA-256"))
    if row.kind == "scale" and row.baseline is not None:
        flat = dockyard.median() <= FLAT * row.baseline
        checks.append(_Check(f"flat (≤ {FLAT}x its {row.baseline:.2f} ms at 100)", flat))
    if row.kind == "monolithic-sha-rss":
        growth = dockyard.peak_rss - dockyard.rss_before
        checks.append(_Check("RSS +< 20 MiB", growth < RSS_GROWTH))
    row.target = ", ".join(check.text for check in checks)
    row.met = all(check.ok for check in checks)
    missed = [check for check in checks if not check.ok]
    # out of reach only when every missed check is: a plain MISSED says dockyard could do better somewhere
    row.reachable = any(check.reachable for check in missed) or not missed if row.ceiling_holds else None

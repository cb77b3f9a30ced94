"""The targets of issue 8, judged on a finished row against the limits measured in the same run.

- every row (kind ``ratio``): dockyard at least 1.5x Distribution (throughput, or 2/3 of its latency);
- ``warm-download``: at least parity, and at least 80% of the loopback sendfile limit;
- ``monolithic-sha``: 1.5x, and at least 60% of the single-core SHA-256 limit (big blobs only: a 1 MiB upload is
  latency-bound, two round trips, so only the ratio applies there);
- ``monolithic-sha-rss`` (the 1 GiB upload): also, dockyard's RSS grows by less than 20 MiB during the row;
- ``scale`` (one page of the catalog or of a tags list on the large population): also flat, dockyard's latency at
  most :data:`FLAT` times its latency for the same page on a population of :data:`~bench.sidebyside.plan.SCALE_SMALL`
  (``row.baseline``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.sidebyside.runner import Row

RATIO = 1.5
SENDFILE_SHARE = 0.8
SHA_SHARE = 0.6
RSS_GROWTH = 20 << 20
FLAT = 1.5


@dataclass(frozen=True)
class Limits:
    """MB/s of SHA-256 on one core and of a loopback sendfile copy."""

    sha256_mb_s: float
    sendfile_mb_s: float

    @classmethod
    def best(cls, *measured: Limits) -> Limits:
        """The highest of several measurements of each limit (noise from other load only lowers them)."""
        return cls(max(m.sha256_mb_s for m in measured), max(m.sendfile_mb_s for m in measured))


def judge(row: Row, limits: Limits) -> None:
    """Fill in ``row.target`` (text) and ``row.met``."""
    dockyard = row.sides["dockyard"]
    checks: list[tuple[str, bool]] = []
    if row.kind == "warm-download":
        checks.append(("≥ 1.0x", row.ratio >= 1.0))
        floor = SENDFILE_SHARE * limits.sendfile_mb_s
        checks.append((f"≥ {floor:,.0f} MB/s (80% sendfile)", dockyard.median() >= floor))
    else:
        checks.append((f"≥ {RATIO}x", row.ratio >= RATIO))
    if row.kind.startswith("monolithic-sha"):
        floor = SHA_SHARE * limits.sha256_mb_s
        checks.append((f"≥ {floor:,.0f} MB/s (60% SHA-256)", dockyard.median() >= floor))
    if row.kind == "scale" and row.baseline is not None:
        checks.append((f"flat (≤ {FLAT}x its {row.baseline:.2f} ms at 100)", dockyard.median() <= FLAT * row.baseline))
    if row.kind == "monolithic-sha-rss":
        growth = dockyard.peak_rss - dockyard.rss_before
        checks.append(("RSS +< 20 MiB", growth < RSS_GROWTH))
    row.target = ", ".join(text for text, _ in checks)
    row.met = all(ok for _, ok in checks)

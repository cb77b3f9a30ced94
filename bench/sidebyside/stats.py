"""Percentiles of samples (nearest rank: always one of the samples, no interpolation)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with at least ``fraction`` of the samples at or below it.
    Raises ValueError on no samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    """The nearest-rank p50 (for an even count: the lower middle sample)."""
    return percentile(samples, 0.5)


def slow_tail(samples: Sequence[float], higher_is_better: bool) -> float:
    """The p90 of the slow side: the 90th percentile of latencies, or the 10th percentile of throughputs (the
    throughput of the run at the p90 of time)."""
    return percentile(samples, 0.1) if higher_is_better else percentile(samples, 0.9)

"""The request load generator: N concurrent aiohttp workers with keep-alive against one URL for a fixed time.

Each worker opens its connection with one untimed request, all wait at a barrier, then each loops
request-after-request until the deadline, recording every latency. Any answer other than ``expected`` raises
:class:`BenchError` (a benchmark of errors is worthless).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from bench.s3_push_pull import BenchError


@dataclass
class LoadResult:
    """Requests completed in the timed window, its length, and every request's latency (seconds)."""

    completed: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


async def _worker(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    barrier: asyncio.Barrier,
    deadline: list[float],
    result: LoadResult,
    expected: int,
) -> None:
    async def once() -> None:
        async with session.request(method, url, headers=headers) as response:
            await response.read()
            if response.status != expected:
                raise BenchError(f"{method} {url} answered {response.status} under load (expected {expected})")

    try:
        await once()  # opens this worker's connection
    except BaseException:
        await barrier.abort()  # the others and the timer stop waiting
        raise
    await barrier.wait()
    while (start := time.perf_counter()) < deadline[0]:
        await once()
        result.latencies.append(time.perf_counter() - start)


async def _load(method: str, url: str, headers: dict[str, str], concurrency: int, seconds: float) -> LoadResult:
    result = LoadResult()
    barrier = asyncio.Barrier(concurrency + 1)
    deadline = [float("inf")]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        tasks = [
            asyncio.create_task(_worker(session, method, url, headers, barrier, deadline, result, 200))
            for _ in range(concurrency)
        ]
        try:
            await barrier.wait()
        except asyncio.BrokenBarrierError:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            errors = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, asyncio.BrokenBarrierError)]
            raise errors[0] if errors else BenchError(f"{method} {url}: load aborted") from None
        start = time.perf_counter()
        deadline[0] = start + seconds
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - start
    result.completed = len(result.latencies)
    return result


def run_load(method: str, url: str, headers: dict[str, str], concurrency: int, seconds: float) -> LoadResult:
    """``concurrency`` workers sending ``method url`` for ``seconds`` (the last requests finish a little later;
    the window is measured to the last answer)."""
    return asyncio.run(_load(method, url, headers, concurrency, seconds))

"""Failed-login throttling: slow down, then refuse, guessing from one client or against one account.

Each failed login is remembered for ``window`` seconds, counted per client address and per account name.
Once either count reaches ``max_failures`` further attempts are refused (429 ``TOOMANYREQUESTS`` with
``Retry-After``) until the oldest remembered failure expires, without even checking the password, so a
guesser learns nothing more. Before that, each failure is answered after a growing delay. A successful
login clears the account's failures (not the client's: one client guessing many accounts stays limited).

The counts live in this process (a later issue shares them between replicas).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_DELAY = 2.0
_KEYS_MAX = 100_000


class LoginLimiter:
    """Per-client and per-account failure windows."""

    def __init__(self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, client: str, account: str) -> float | None:
        """Seconds until this client may try this account again, or None when it may try now."""
        waits = []
        for key in (f"client:{client}", f"account:{account}"):
            times = self._recent(key)
            if len(times) >= self.max_failures:
                waits.append(times[len(times) - self.max_failures] + self.window - self.clock())
        return max(waits) if waits else None

    def failed(self, client: str, account: str) -> float:
        """Record a failed login; returns how long to delay the answer (grows with the failures)."""
        now = self.clock()
        if len(self._failures) > _KEYS_MAX:
            for key in list(self._failures):
                self._recent(key)
        counts = []
        for key in (f"client:{client}", f"account:{account}"):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            counts.append(len(times))
        return float(min(MAX_DELAY, 0.1 * 2.0 ** (max(counts) - 1)))

    def succeeded(self, account: str) -> None:
        """A correct login clears the account's failures."""
        self._failures.pop(f"account:{account}", None)


class TooManyLogins(Exception):
    """Refused without checking the secret: over the failure limit; ``retry_after`` in whole seconds (≥ 1)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = max(1, round(retry_after))


async def throttled(
    limiter: LoginLimiter, client: str, name: str, check: Callable[[], Awaitable[T | None]]
) -> T | None:
    """Run the credential ``check`` of account ``name`` from ``client`` under the limiter: refused
    (:class:`TooManyLogins`) over the limit, a failure (None) answered after the growing delay, a success
    clearing the account's failures. Every way in (``docker login``, the web sign-in, Basic on the catalog API)
    goes through here, so none is a side door for guessing."""
    wait = limiter.retry_after(client, name)
    if wait is not None:
        raise TooManyLogins(wait)  # the secret is not even checked
    found = await check()
    if found is None:
        await asyncio.sleep(limiter.failed(client, name))
        return None
    limiter.succeeded(name)
    return found

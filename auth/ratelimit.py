"""Failed-login throttling: slow down, then refuse, guessing from one client or against one account.

Each failed login is remembered for ``window`` seconds, counted per client address and per account name.
Once either count reaches ``max_failures`` further attempts are refused (429 ``TOOMANYREQUESTS`` with
``Retry-After``) until the oldest counted failure expires, without even checking the password, so a
guesser learns nothing more. Before that, each failure is answered after a growing delay. A successful
login clears the account's failures (not the client's: one client guessing many accounts stays limited).

The failures live in the account database (table ``login_failures``, see ``auth.models``), so every worker
process of ``dockyard serve`` and every replica on one database count them together: N workers do not give a
guesser N times the limit. Times are the wall clock in UTC (replicas need synchronised clocks). Writing a failure
also deletes every row older than the window, so the table holds at most one window of failures. A database that
can't be reached makes the attempt fail with the database's error (the callers answer 503): guesses are never let
through unlimited. A failure counts once its check has finished: attempts already under way when the limit is
reached are still answered (as with the counts in memory before).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.database import WRITE
from auth.models import FAILURE_KEY_LENGTH, LoginFailureRow

__all__ = ["MAX_DELAY", "LoginLimiter", "TooManyLogins", "failure_key", "throttled"]

T = TypeVar("T")
F = LoginFailureRow

MAX_DELAY = 2.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def failure_key(kind: str, subject: str) -> str:
    """The ``login_failures.key`` of ``subject`` (a client address or an account name): ``kind:subject``, or
    ``kind:sha256:<hex>`` when that would be too long or ``subject`` has unprintable characters (a name typed by
    a guesser may be anything; no account has such a name, but its failures still count)."""
    key = f"{kind}:{subject}"
    if len(key) <= FAILURE_KEY_LENGTH and subject.isprintable():
        return key
    return f"{kind}:sha256:{hashlib.sha256(subject.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _keys(client: str, account: str) -> tuple[str, str]:
    return failure_key("client", client), failure_key("account", account)


class LoginLimiter:
    """Per-client and per-account failure windows in the account database behind ``engine`` (migrated).

    ``max_failures`` and ``window`` (seconds) may be changed at any time; ``clock`` gives the current UTC time.
    Every method raises the database's error when it can't be reached (``auth.database.is_unavailable``).
    """

    def __init__(
        self, engine: AsyncEngine, max_failures: int, window: float, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = window
        self.clock = clock

    def _cutoff(self, now: datetime) -> datetime:
        """Failures at or before this moment are forgotten."""
        return now - timedelta(seconds=self.window)

    async def retry_after(self, client: str, account: str) -> float | None:
        """Seconds until this client may try this account again, or None when it may try now."""
        cutoff = self._cutoff(self.clock())
        waits = []
        async with self.engine.connect() as connection:
            for key in _keys(client, account):
                # The max_failures-th newest failure: once it expires, the count drops below the limit.
                query = select(F.at).where(F.key == key, F.at > cutoff).order_by(F.at.desc())
                limiting = await connection.scalar(query.offset(self.max_failures - 1).limit(1))
                if limiting is not None:
                    waits.append((limiting - cutoff).total_seconds())
        return max(waits) if waits else None

    async def failed(self, client: str, account: str) -> float:
        """Record a failed login (and forget expired ones); returns how long to delay the answer: 0.1 s, doubling
        with each failure counted for the client or the account, at most :data:`MAX_DELAY`."""
        now = self.clock()
        cutoff = self._cutoff(now)
        keys = _keys(client, account)
        # Expired rows locked by a concurrent writer are left to it (no waiting, no deadlock on PostgreSQL).
        expired = select(F.id).where(F.at <= cutoff).with_for_update(skip_locked=True)
        counted = select(func.count()).where(F.key.in_(keys), F.at > cutoff).group_by(F.key)
        async with self.engine.execution_options(**{WRITE: True}).begin() as connection:
            await connection.execute(delete(F).where(F.id.in_(expired)))
            await connection.execute(insert(F), [{"key": key, "at": now} for key in keys])
            counts = (await connection.scalars(counted)).all()
        return float(min(MAX_DELAY, 0.1 * 2.0 ** (max(counts) - 1)))

    async def succeeded(self, account: str) -> None:
        """A correct login clears the account's failures (a read first: most logins have none to clear)."""
        key = failure_key("account", account)
        async with self.engine.connect() as connection:
            if await connection.scalar(select(F.id).where(F.key == key).limit(1)) is None:
                return
        async with self.engine.execution_options(**{WRITE: True}).begin() as connection:
            await connection.execute(delete(F).where(F.key == key))


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
    goes through here, so none is a side door for guessing. When the limiter's database can't be reached its
    error propagates (before ``check`` runs, or instead of the answer): the attempt fails, closed."""
    wait = await limiter.retry_after(client, name)
    if wait is not None:
        raise TooManyLogins(wait)  # the secret is not even checked
    found = await check()
    if found is None:
        await asyncio.sleep(await limiter.failed(client, name))
        return None
    await limiter.succeeded(name)
    return found

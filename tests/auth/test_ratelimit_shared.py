"""The failed-login limits in the account database (``auth.ratelimit``): counted per client and per account on
SQLite and PostgreSQL, shared by every engine on one database (workers, replicas), expired rows deleted, failing
closed when the database can't be reached; and end to end, a live ``dockyard serve --workers 2`` in token mode
refusing the attempt after ``login_failures`` failures spread over both workers, whichever worker answers it."""

from __future__ import annotations

import asyncio
import base64
import http.client
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.database import is_unavailable, open_database
from auth.models import LoginFailureRow
from auth.ratelimit import MAX_DELAY, LoginLimiter, TooManyLogins, throttled
from tests.registry.test_workers import serving_worker, worker_pids
from tests.support.registries import ALICE, TOKEN_ENV, add_user
from tests.support.server import LiveRegistry, free_port, live_registry

WINDOW = 60.0
LIMIT = 3


class Clock:
    """A settable UTC clock shared by the limiters of one test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    opened = await open_database(database_url)
    yield opened
    await opened.dispose()


@pytest.fixture
def limiter(engine: AsyncEngine, clock: Clock) -> LoginLimiter:
    return LoginLimiter(engine, LIMIT, WINDOW, clock)


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(LoginFailureRow)) or 0)


# -- the limiter on each database ---------------------------------------------------------------------------------


async def test_refused_per_client_and_per_account_until_the_window_passes(limiter: LoginLimiter, clock: Clock) -> None:
    for _ in range(LIMIT - 1):
        await limiter.failed("10.0.0.1", "alice")
        clock.advance(10)
    assert await limiter.retry_after("10.0.0.1", "alice") is None  # one below the limit
    await limiter.failed("10.0.0.1", "alice")
    assert await limiter.retry_after("10.0.0.1", "bob") == WINDOW - 20  # the client is over: any account
    assert await limiter.retry_after("10.0.0.2", "alice") == WINDOW - 20  # the account is over: any client
    assert await limiter.retry_after("10.0.0.2", "bob") is None
    clock.advance(WINDOW - 20)  # the oldest failure expires: one below the limit again
    assert await limiter.retry_after("10.0.0.1", "alice") is None


async def test_the_delay_grows_with_the_failures_up_to_its_maximum(limiter: LoginLimiter) -> None:
    limiter.max_failures = 100
    delays = [await limiter.failed("10.0.0.1", f"user{i % 2}") for i in range(7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, MAX_DELAY, MAX_DELAY]  # counted per client: it grows throughout


async def test_a_success_clears_the_accounts_failures_not_the_clients(limiter: LoginLimiter) -> None:
    for _ in range(LIMIT):
        await limiter.failed("10.0.0.1", "alice")
    await limiter.succeeded("alice")
    assert await limiter.retry_after("10.0.0.2", "alice") is None
    assert await limiter.retry_after("10.0.0.1", "bob") is not None
    await limiter.succeeded("nobody")  # nothing to clear: no error


async def test_every_engine_on_the_database_shares_the_counts(database_url: str, clock: Clock) -> None:
    engines = [await open_database(database_url) for _ in range(2)]  # as two workers or two replicas
    try:
        first, second = (LoginLimiter(engine, LIMIT, WINDOW, clock) for engine in engines)
        for attempt in range(LIMIT):
            await (first if attempt % 2 else second).failed("10.0.0.1", "alice")
        assert await first.retry_after("10.0.0.9", "alice") is not None
        assert await second.retry_after("10.0.0.9", "alice") is not None
        await second.succeeded("alice")
        assert await first.retry_after("10.0.0.9", "alice") is None
    finally:
        for engine in engines:
            await engine.dispose()


async def test_expired_failures_are_deleted_when_a_failure_is_written(
    limiter: LoginLimiter, engine: AsyncEngine, clock: Clock
) -> None:
    for i in range(20):
        await limiter.failed(f"10.0.0.{i}", f"user{i}")
    assert await rows(engine) == 40  # one row for the client, one for the account
    clock.advance(WINDOW)
    await limiter.failed("10.0.1.1", "alice")
    assert await rows(engine) == 2


@pytest.mark.parametrize("name", ["a" * 5000, "nul\x00name", "tab\tname", "\ud800surrogate", "ünïcödé"])
async def test_any_name_a_guesser_types_is_counted(limiter: LoginLimiter, name: str) -> None:
    for _ in range(LIMIT):
        await limiter.failed("10.0.0.1", name)
    assert await limiter.retry_after("10.0.0.2", name) is not None
    assert await limiter.retry_after("10.0.0.2", name + "x") is None


# -- throttled ----------------------------------------------------------------------------------------------------


class Check:
    """A credential check that answers ``result`` and counts its calls."""

    def __init__(self, result: str | None) -> None:
        self.result = result
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.result


async def test_throttled_refuses_without_checking_over_the_limit(limiter: LoginLimiter) -> None:
    wrong, right = Check(None), Check("alice")
    for _ in range(LIMIT):
        assert await throttled(limiter, "10.0.0.1", "alice", wrong) is None
    with pytest.raises(TooManyLogins) as refused:
        await throttled(limiter, "10.0.0.2", "alice", right)
    assert refused.value.retry_after == WINDOW  # the clock stood still
    assert (wrong.calls, right.calls) == (LIMIT, 0)
    limiter.max_failures = LIMIT + 1
    assert await throttled(limiter, "10.0.0.2", "alice", right) == "alice"
    assert await limiter.retry_after("10.0.0.3", "alice") is None  # the success cleared the account


def unreachable_urls(tmp_path: Path) -> list[str]:
    """A PostgreSQL port nothing listens on, and a SQLite file in a directory that does not exist."""
    return [
        f"postgresql+asyncpg://dockyard@127.0.0.1:{free_port()}/accounts",
        f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'accounts.db'}",
    ]


async def stopped_connection_threads(before: set[threading.Thread]) -> None:
    """Wait for the aiosqlite connection threads started since ``before`` to end. A connection that fails to open
    is stopped without waiting, and its thread then reports to the loop that opened it: were this test's loop
    closed by then, the thread would die with "Event loop is closed" (reported under whichever test runs next)."""
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 30)


async def test_an_unreachable_database_fails_the_login_closed(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    threads = set(threading.enumerate())
    for url in unreachable_urls(tmp_path):
        engine = create_async_engine(url)
        check = Check("alice")
        try:
            with pytest.raises((OSError, DBAPIError)) as failed:  # asyncpg's connect errors come unwrapped
                await throttled(LoginLimiter(engine, LIMIT, WINDOW), "10.0.0.1", "alice", check)
        finally:
            await engine.dispose()
        assert is_unavailable(failed.value), url  # the callers answer 503 for these
        assert check.calls == 0  # not one guess checked without its count
    await stopped_connection_threads(threads)


# -- end to end: a live server with two workers -------------------------------------------------------------------

LIVE_LIMIT = 4


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[LiveRegistry]:
    """Token mode, user alice, ``login_failures`` = 4, two worker processes."""
    add_user(tmp_path / "registry-data", *ALICE)
    env = {**TOKEN_ENV, "DOCKYARD_AUTH__LOGIN_FAILURES": str(LIVE_LIMIT)}
    with live_registry(tmp_path, "--workers", "2", env=env) as registry:
        yield registry


def connection_to(
    registry: LiveRegistry, worker: int, pids: list[int], opened: list[http.client.HTTPConnection]
) -> http.client.HTTPConnection:
    """A fresh connection that ``worker`` serves (connections are opened until the kernel gives it one; all are
    kept in ``opened``, so source ports are not reused, and closed by the caller)."""
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
        opened.append(conn)
        conn.request("GET", "/healthz")  # a request makes a worker accept the connection
        conn.getresponse().read()
        if serving_worker(conn, registry.port, pids) == worker:
            return conn
    raise AssertionError(f"no connection reached worker {worker} in 200 tries")


def login(conn: http.client.HTTPConnection, password: str) -> http.client.HTTPResponse:
    conn.request("GET", "/auth/token?service=dockyard", headers=basic(ALICE[0], password))
    resp = conn.getresponse()
    resp.read()
    return resp


def test_failures_on_either_worker_count_toward_one_limit(two_workers: LiveRegistry) -> None:
    pids = worker_pids(two_workers)
    opened: list[http.client.HTTPConnection] = []
    try:
        for attempt in range(LIVE_LIMIT):  # alternating: each worker sees only half of the failures
            worker = pids[attempt % 2]
            assert login(connection_to(two_workers, worker, pids, opened), f"guess-{attempt}").status == 401
        for worker in pids:  # even the right password, on either worker
            refused = login(connection_to(two_workers, worker, pids, opened), ALICE[1])
            assert refused.status == 429, worker
            assert int(refused.headers["Retry-After"]) >= 1
    finally:
        for conn in opened:
            conn.close()

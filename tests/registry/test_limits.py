"""``registry/limits.py``: the token bucket, the upload-session counter (on a fake clock) and the middleware
through ``create_app`` (429 bodies, the body timeout, where the counters are disabled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from registry.app import create_app
from registry.config import ConfigError, LimitsSettings, MemoryStorage, Settings, load_settings
from registry.limits import RateLimiter, TooManyRequests, UploadSessions, handler_args
from tests.support.oci import digest, error_code


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") is None  # clients are independent
    clock.now += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 100
    assert [limiter.take("a") for _ in range(4)][-1] is not None  # refilled to the burst, not beyond


def test_bucket_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock(), max_clients=10)
    for i in range(1000):
        limiter.take(f"client-{i}")
    assert len(limiter) == 10


def test_sessions_limit_per_client_and_free_on_close() -> None:
    clock = Clock()
    sessions = UploadSessions(limit=2, idle=60.0, clock=clock)
    for upload in ("u1", "u2"):
        slot = sessions.reserve("a")
        sessions.release("a", slot)
        sessions.opened("a", upload)
    with pytest.raises(TooManyRequests) as refused:
        sessions.reserve("a")
    assert refused.value.headers == {"Retry-After": "60"}
    sessions.reserve("b")  # another client has its own count
    sessions.closed("u1")
    sessions.reserve("a")
    assert sessions.count("a") == 2


def test_reserved_slots_count_so_concurrent_posts_cannot_overshoot() -> None:
    sessions = UploadSessions(limit=2, idle=60.0, clock=Clock())
    sessions.reserve("a")
    sessions.reserve("a")
    with pytest.raises(TooManyRequests):
        sessions.reserve("a")


def test_idle_sessions_stop_counting_and_touch_keeps_them() -> None:
    clock = Clock()
    sessions = UploadSessions(limit=1, idle=10.0, clock=clock)
    sessions.opened("a", "u1")
    clock.now += 9
    sessions.touch("u1")
    clock.now += 9
    with pytest.raises(TooManyRequests) as refused:
        sessions.reserve("a")
    assert refused.value.headers == {"Retry-After": "1"}
    clock.now += 1
    sessions.reserve("a")


def test_expired_clients_are_swept() -> None:
    clock = Clock()
    sessions = UploadSessions(limit=5, idle=1.0, clock=clock, max_clients=10)
    for i in range(50):
        sessions.opened(f"c{i}", f"u{i}")
    clock.now += 2
    for i in range(11):
        sessions.reserve(f"new{i}")
    assert sum(sessions.count(f"c{i}") for i in range(50)) == 0
    assert len(sessions) <= 11


def test_settings_and_handler_args() -> None:
    limits = load_settings(None, limits={"header_timeout": "2s", "max_header_size": 8192}).limits
    assert handler_args(limits) == {"keepalive_timeout": 2.0, "max_line_size": 8192, "max_field_size": 8192}
    with pytest.raises(ConfigError, match=r"limits\.header_timeout"):
        load_settings(None, limits={"header_timeout": 0})
    with pytest.raises(ConfigError, match=r"limits\.nope"):
        load_settings(None, limits={"nope": 1})


def app_with(**limits: Any) -> Any:
    return create_app(Settings(storage=MemoryStorage(), limits=LimitsSettings(**limits)))


async def test_rate_limit_answers_the_spec_error(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app_with(requests_per_second=1, burst=2))
    assert [(await client.get("/v2/")).status for _ in range(2)] == [200, 200]
    resp = await client.get("/v2/")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert await error_code(resp) == "TOOMANYREQUESTS"
    head = await client.head("/v2/")
    assert head.status == 429
    assert await head.read() == b""


async def test_session_limit_through_the_api(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app_with(upload_sessions_per_client=2))
    started = [await client.post("/v2/lim/it/blobs/uploads/") for _ in range(2)]
    assert [resp.status for resp in started] == [202, 202]
    refused = await client.post("/v2/lim/it/blobs/uploads/")
    assert refused.status == 429
    assert await error_code(refused) == "TOOMANYREQUESTS"
    location = started[0].headers["Location"]
    assert (await client.put(f"{location}?digest={digest(b'data')}", data=b"data")).status == 201
    assert (await client.post("/v2/lim/it/blobs/uploads/")).status == 202


async def test_limits_off(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app_with(upload_sessions_per_client=0, requests_per_second=0))
    assert {(await client.post("/v2/lim/it/blobs/uploads/")).status for _ in range(50)} == {202}


async def stalling(data: bytes) -> AsyncIterator[bytes]:
    yield data
    await asyncio.sleep(5)
    yield data


async def test_a_stalled_body_is_ended_with_408_and_the_session_stays(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app_with(body_timeout=0.2))
    location = (await client.post("/v2/slow/up/blobs/uploads/")).headers["Location"]
    resp = await client.patch(location, data=stalling(b"x" * 1000))
    assert resp.status == 408
    assert await error_code(resp) == "SIZE_INVALID"
    status = await client.get(location)
    assert status.status == 204  # the session stays; its lock is free again
    rest = b"y" * 10
    offset = int(status.headers["Range"].split("-")[1]) + 1 if status.headers["Range"] != "0-0" else 0
    patched = await client.patch(location, data=rest, headers={"Content-Range": f"{offset}-{offset + 9}"})
    assert patched.status == 202


async def test_a_slow_but_moving_body_is_not_ended(aiohttp_client: Any) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"z" * 10
            await asyncio.sleep(0.1)

    client = await aiohttp_client(app_with(body_timeout=0.3))
    location = (await client.post("/v2/slow/up/blobs/uploads/")).headers["Location"]
    assert (await client.patch(location, data=trickle())).status == 202


def test_config_error_names_the_field() -> None:
    with pytest.raises(ConfigError, match="upload_sessions_per_client"):
        load_settings(None, limits={"upload_sessions_per_client": -1})

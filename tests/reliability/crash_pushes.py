"""The crash workload: waves of concurrent pushes against a ``dockyard serve`` that is SIGKILLed and restarted (same
port, same data directory) while they run, and a client that resumes what the kill interrupted.

A push uploads its blobs (monolithic ``POST ?digest=``, or ``POST`` + ``PATCH`` chunks with ``Content-Range`` + ``PUT``)
and then its manifest. A request cut by a kill waits for the restart and carries on as a careful client would:

* a cut chunked upload asks for its status (``GET`` the session): ``204`` with a ``Range`` → resume from there;
  ``404 BLOB_UPLOAD_UNKNOWN`` → start that blob again. Any other answer, or a ``Range`` beyond the bytes sent (or
  below the bytes acknowledged while chunks were still being sent), is a broken promise;
* a cut monolithic upload or manifest ``PUT`` is sent again.

The :class:`Ledger` keeps what the registry acknowledged (each blob ``201`` and each manifest ``201``), for the test to
check afterwards, and every broken promise as a line of text.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import aiohttp

from tests.reliability.load_client import (
    CUT,
    Answer,
    Image,
    call,
    error_code,
    push_monolithic,
    put_manifest,
    upload_offset,
)
from tests.support.oci import digest
from tests.support.server import LiveRegistry, start_registry, stop_process

CHUNK = 192 << 10
ATTEMPTS = 30  # per request; a registry restarted this often is broken anyway
KillPoint = Literal["random", "blob finish", "manifest write"]
KILL_POINTS: tuple[KillPoint, ...] = ("random", "blob finish", "manifest write")
WORKERS = 2


@dataclass
class Ledger:
    """What the registry acknowledged, and what went wrong, during a crash run."""

    acked_blobs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (repository, bytes)
    acked_images: list[Image] = field(default_factory=list)
    kills: int = 0
    kills_mid_request: int = 0
    requests_cut: int = 0
    uploads_resumed: int = 0
    uploads_unknown: int = 0
    broken: list[str] = field(default_factory=list)


async def _listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


class CrashingRegistry:
    """A ``dockyard serve`` on a fixed port and data directory, killed and restarted by the test."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.up = asyncio.Event()
        self.live: LiveRegistry | None = None

    @property
    def data(self) -> Path:
        return self.workdir / "registry-data"

    async def start(self) -> None:
        """Start serving with :data:`WORKERS` worker processes (the default on a machine with that many cores)."""
        self.live = await asyncio.to_thread(start_registry, self.workdir, self.port, "--workers", str(WORKERS))
        self.up.set()

    async def kill(self) -> None:
        """SIGKILL the server's pid (no shutdown of any kind; its workers die with it), and wait until nothing
        listens on the port any more."""
        assert self.live is not None
        self.up.clear()
        self.live.process.kill()
        await asyncio.to_thread(self.live.process.wait)
        while await _listening(self.port):
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        """A clean stop (SIGTERM, by pid)."""
        self.up.clear()
        if self.live is not None:
            stop_process(self.live.process)


class Pusher:
    """Pushes images through one client session, riding out kills (see the module docstring)."""

    def __init__(self, client: aiohttp.ClientSession, registry: CrashingRegistry, ledger: Ledger) -> None:
        self.client = client
        self.registry = registry
        self.ledger = ledger
        self.in_flight = 0
        self.answered = 0
        self.phase: dict[KillPoint, asyncio.Event] = {point: asyncio.Event() for point in KILL_POINTS}

    async def push(self, image: Image) -> None:
        for blob in image.blobs:
            if not await (self._chunked(image.repo, blob) if image.chunked else self._monolithic(image.repo, blob)):
                return
        self.phase["manifest write"].set()
        answer = await self._until_answered(lambda: put_manifest(self.client, image.repo, image.tag, image.manifest))
        if answer[0] == 201 and answer[1].get("Docker-Content-Digest") == digest(image.manifest):
            self.ledger.acked_images.append(image)
        else:
            self._broken(f"manifest PUT {image.repo}:{image.tag}", answer)

    # -- requests -------------------------------------------------------------------------------------------------

    async def _request(self, send: Callable[[], Awaitable[Answer]]) -> Answer | None:
        """One request; None when a kill cut it (returns once the registry is back)."""
        self.in_flight += 1
        try:
            answer = await send()
        except CUT:
            self.ledger.requests_cut += 1
            await self.registry.up.wait()
            return None
        finally:
            self.in_flight -= 1
        self.answered += 1
        if answer[0] >= 500:
            self._broken("server error", answer)
        return answer

    async def _until_answered(self, send: Callable[[], Awaitable[Answer]]) -> Answer:
        """Send again until the registry answers (a cut monolithic upload or manifest PUT is simply repeated)."""
        for _ in range(ATTEMPTS):
            if (answer := await self._request(send)) is not None:
                return answer
        raise AssertionError(f"no answer after {ATTEMPTS} attempts")

    def _broken(self, what: str, answer: Answer) -> None:
        self.ledger.broken.append(f"{what}: {answer[0]} {answer[2][:200]!r}")

    # -- blobs ----------------------------------------------------------------------------------------------------

    def _acked(self, repo: str, data: bytes, answer: Answer) -> bool:
        if answer[0] == 201 and answer[1].get("Docker-Content-Digest") == digest(data):
            self.ledger.acked_blobs[digest(data)] = (repo, data)
            return True
        self._broken(f"blob upload to {repo}", answer)
        return False

    async def _monolithic(self, repo: str, data: bytes) -> bool:
        return self._acked(repo, data, await self._until_answered(lambda: push_monolithic(self.client, repo, data)))

    async def _chunked(self, repo: str, data: bytes) -> bool:
        """Upload in chunks; a session the registry no longer knows is started again."""
        for _ in range(ATTEMPTS):
            opened = await self._until_answered(lambda: call(self.client, "POST", f"/v2/{repo}/blobs/uploads/"))
            if opened[0] != 202:
                self._broken(f"upload POST to {repo}", opened)
                return False
            answer = await self._send(opened[1]["Location"], data)
            if answer is not None:
                return self._acked(repo, data, answer)
        raise AssertionError(f"upload to {repo} never finished")

    async def _send(self, location: str, data: bytes) -> Answer | None:
        """PATCH the chunks from where the session stands, then PUT; None when the session is gone."""
        offset = acked = 0
        while True:
            end = min(offset + CHUNK, len(data))
            if offset < len(data):
                headers = {"Content-Range": f"{offset}-{end - 1}", "Content-Type": "application/octet-stream"}
                answer = await self._request(partial(call, self.client, "PATCH", location, data[offset:end], headers))
            else:
                self.phase["blob finish"].set()
                answer = await self._request(partial(call, self.client, "PUT", f"{location}?digest={digest(data)}"))
            if answer is None:
                resumed = await self._resume(location, acked, end, offset)
                if resumed is None:
                    return None
                offset = resumed
            elif offset >= len(data) or answer[0] != 202:
                return answer
            else:
                offset = acked = upload_offset(answer[1])

    async def _resume(self, location: str, acked: int, sent: int, offset: int) -> int | None:
        """Ask a cut session where it stands: its offset, or None when it answers BLOB_UPLOAD_UNKNOWN.

        While chunks are being sent the offset must lie between the bytes acknowledged and the bytes sent. A cut
        final PUT may also have published the blob already (offset 0: the bytes moved into place) or finished
        (unknown)."""
        finishing = offset >= sent
        for _ in range(ATTEMPTS):
            answer = await self._request(lambda: call(self.client, "GET", location))
            if answer is None:
                continue
            if answer[0] == 404 and error_code(answer[2]) == "BLOB_UPLOAD_UNKNOWN":
                self.ledger.uploads_unknown += 1
                return None
            if answer[0] != 204:
                self._broken(f"upload status {location}", answer)
                return None
            now = upload_offset(answer[1])
            if now > sent or (now < acked and not finishing):
                self._broken(f"upload {location} holds {now} bytes, acknowledged {acked}, sent {sent}", answer)
            self.ledger.uploads_resumed += 1
            return now
        raise AssertionError(f"no status for {location}")


def requests_of(image: Image) -> int:
    """How many requests pushing ``image`` takes when nothing is cut."""
    if not image.chunked:
        return len(image.blobs) + 1
    return sum(2 + -(-len(blob) // CHUNK) for blob in image.blobs) + 1


async def _reached(pusher: Pusher, point: KillPoint, answered: int) -> None:
    """Until the first push reaches ``point``; for ``random``, until the registry has answered ``answered``
    requests of the wave (a random share of them, so the kill lands at a random moment while pushes are running)."""
    if point != "random":
        await pusher.phase[point].wait()
        return
    while pusher.answered < answered:
        await asyncio.sleep(0.002)


async def kill_during(
    registry: CrashingRegistry, pusher: Pusher, images: Sequence[Image], point: KillPoint, rng: random.Random
) -> None:
    """Push ``images`` concurrently and SIGKILL the registry once at ``point`` (plus up to 30 ms), then restart it and
    let the pushes finish. The kill is skipped (and not counted) only if every push was already done."""
    for event in pusher.phase.values():
        event.clear()
    goal = pusher.answered + int(rng.uniform(0.05, 0.9) * sum(requests_of(image) for image in images))
    tasks = [asyncio.ensure_future(pusher.push(image)) for image in images]
    reached = asyncio.ensure_future(_reached(pusher, point, goal))
    await asyncio.wait([reached, *tasks], return_when="FIRST_COMPLETED")
    reached.cancel()
    await asyncio.sleep(rng.uniform(0.0, 0.03))
    if not all(task.done() for task in tasks):
        pusher.ledger.kills_mid_request += pusher.in_flight > 0
        await registry.kill()
        pusher.ledger.kills += 1
        await registry.start()
    await asyncio.gather(*tasks)

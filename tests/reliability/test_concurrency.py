"""Concurrency against a live ``dockyard serve`` whose own garbage collection runs every 0.2 s with zero grace and
``delete_untagged`` (the most aggressive setting there is) during all of it:

* 50 clients push the same blob at once (half monolithic, half chunked), then the same manifest naming it at once:
  every one gets its ``201`` with the right digest, the blob is stored once with the right bytes, nothing is left in
  the upload area;
* one client moves a tag back and forth between two manifests while 50 others pull it: every pull returns one of the
  two manifests, byte-consistent with its ``Docker-Content-Digest``, and every blob it names is there (HEAD);
* afterwards (and after one more GC run) every tag is pullable and every blob its manifest names is present and right.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.reliability.load_client import (
    Image,
    blob_present,
    call,
    copies,
    created,
    error_code,
    leftovers,
    manifest_blobs,
    pull_manifest,
    push_monolithic,
    put_manifest,
    random_image,
    session,
    tag_intact,
)
from tests.reliability.tally import Tally, scaled
from tests.support.oci import digest
from tests.support.server import LiveRegistry, live_registry

CLIENTS = 50
FLIP_SECONDS = scaled(10, 120)
MIN_FLIPS = 6
GC_ENV = {
    "DOCKYARD_GC__INTERVAL": "0.2",
    "DOCKYARD_GC__GRACE": "0",
    "DOCKYARD_GC__DELETE_UNTAGGED": "true",
}
_GC_LINE = re.compile(r"gc deleted (\d+) manifests, (\d+) blobs")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with live_registry(tmp_path_factory.mktemp("concurrency"), "--workers", "2", env=GC_ENV) as live:
        yield live


def gc_runs(registry: LiveRegistry) -> int:
    """Garbage collections the server has finished so far (one summary line each in its log)."""
    return len(_GC_LINE.findall(registry.log.read_text(errors="replace")))


async def wait_for_gc(registry: LiveRegistry, after: int, timeout: float = 20.0) -> None:
    """Wait until the server has finished a collection that started after the count ``after`` was taken."""
    deadline = time.monotonic() + timeout
    while gc_runs(registry) < after + 2:
        assert time.monotonic() < deadline, "the server's garbage collection did not run"
        await asyncio.sleep(0.1)


async def at_once(count: int, job: Callable[[int], Awaitable[tuple[int, str]]]) -> list[tuple[int, str]]:
    """Run ``job(0..count-1)`` concurrently, all released by one barrier; their (status, Docker-Content-Digest)."""
    start = asyncio.Event()

    async def one(n: int) -> tuple[int, str]:
        await start.wait()
        return await job(n)

    tasks = [asyncio.ensure_future(one(n)) for n in range(count)]
    await asyncio.sleep(0.05)
    start.set()
    return await asyncio.gather(*tasks)


async def chunked_upload(client: aiohttp.ClientSession, repo: str, data: bytes) -> tuple[int, str]:
    """POST, one PATCH with the whole blob, PUT ``?digest=``: the (status, digest) of the last answer."""
    status, headers, _ = await call(client, "POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        return status, ""
    location = headers["Location"]
    content_range = {"Content-Range": f"0-{len(data) - 1}", "Content-Type": "application/octet-stream"}
    status, headers, _ = await call(client, "PATCH", location, data, content_range)
    if status != 202:
        return status, ""
    return created(await call(client, "PUT", f"{location}?digest={digest(data)}"))


async def test_50_clients_push_the_same_blob_and_manifest(registry: LiveRegistry, tally: Tally) -> None:
    image = random_image(random.Random(), "conc/same", "latest", (2 << 20, 2 << 20))
    layer = image.layers[0]
    runs_before = gc_runs(registry)
    async with session(registry.url, CLIENTS + 4) as client:

        async def push_layer(n: int) -> tuple[int, str]:
            if n % 2:
                return await chunked_upload(client, image.repo, layer)
            return created(await push_monolithic(client, image.repo, layer))

        async def push_config(_n: int) -> tuple[int, str]:
            return created(await push_monolithic(client, image.repo, image.config))

        async def push_manifest(n: int) -> tuple[int, str]:
            reference = image.tag if n % 2 else digest(image.manifest)
            return created(await put_manifest(client, image.repo, reference, image.manifest))

        layers = await at_once(CLIENTS, push_layer)
        configs = await at_once(CLIENTS, push_config)
        manifests = await at_once(CLIENTS, push_manifest)
        await wait_for_gc(registry, gc_runs(registry))
        intact = await tag_intact(client, image.repo, image.tag, image.manifest)
    wrong_blob = sum(answer != (201, digest(layer)) for answer in layers)
    wrong_blob += sum(answer != (201, digest(image.config)) for answer in configs)
    wrong_manifest = sum(answer != (201, digest(image.manifest)) for answer in manifests)
    stored = copies(registry.data / "v1", layer)
    left = leftovers(registry.data)
    tally.record(
        "Faults",
        "50 clients push the same blob at once (GC running)",
        tried=len(layers) + len(configs),
        not_created=wrong_blob,
        copies_stored=stored,
        upload_leftovers=len(left.temp_files) + len(left.upload_objects),
    )
    tally.record(
        "Faults",
        "50 clients push the same manifest at once (GC running)",
        tried=len(manifests),
        not_created=wrong_manifest,
        data_lost=int(not intact),
    )
    assert (wrong_blob, wrong_manifest) == (0, 0), (layers, configs, manifests)
    assert stored == 1, "the layer's bytes are stored once"
    assert intact, "the manifest, its config and its layer pull back byte-identical after GC ran"
    assert left.temp_files == left.upload_objects == [], left
    assert gc_runs(registry) > runs_before


@dataclass
class PullCounts:
    pulls: int = 0
    inconsistent: int = 0
    foreign: int = 0  # consistent, but neither of the two manifests
    missing: int = 0  # the tag or a blob it names not there
    server_errors: int = 0


async def _puller(
    client: aiohttp.ClientSession, repo: str, known: set[bytes], done: asyncio.Event, counts: PullCounts
) -> None:
    while not done.is_set():
        pulled = await pull_manifest(client, repo, "moving")
        counts.pulls += 1
        counts.server_errors += pulled.status >= 500
        if pulled.status != 200:
            counts.missing += 1
            continue
        counts.inconsistent += not pulled.consistent
        counts.foreign += pulled.consistent and pulled.body not in known
        named = await asyncio.gather(*(blob_present(client, repo, d) for d in manifest_blobs(pulled.body)))
        counts.missing += not all(named)


async def _flipper(client: aiohttp.ClientSession, images: tuple[Image, Image]) -> list[str]:
    """Move the tag ``moving`` between the two manifests for :data:`FLIP_SECONDS` (and at least :data:`MIN_FLIPS`
    times); how each PUT was answered."""
    answers: list[str] = []
    deadline = time.monotonic() + FLIP_SECONDS
    while time.monotonic() < deadline or len(answers) < MIN_FLIPS:
        image = images[len(answers) % 2]
        status, _, body = await put_manifest(client, image.repo, "moving", image.manifest)
        answers.append(f"{status} {error_code(body)}".strip())
    return answers


async def _churn(client: aiohttp.ClientSession, repo: str, done: asyncio.Event) -> int:
    """Push untagged images (by digest) until ``done``: garbage for the GC to delete meanwhile. Returns the count."""
    rng, pushed = random.Random(), 0
    while not done.is_set():
        image = random_image(rng, repo, "", (1 << 10, 16 << 10))
        for blob in image.blobs:
            await push_monolithic(client, repo, blob)
        await put_manifest(client, repo, digest(image.manifest), image.manifest)
        pushed += 1
    return pushed


async def _push(client: aiohttp.ClientSession, image: Image, tag: str) -> None:
    for blob in image.blobs:
        assert (await push_monolithic(client, image.repo, blob))[0] == 201
    assert (await put_manifest(client, image.repo, tag, image.manifest))[0] == 201


def gc_deleted_blobs(registry: LiveRegistry) -> int:
    """Blobs the server's garbage collection has deleted so far."""
    return sum(int(blobs) for _, blobs in _GC_LINE.findall(registry.log.read_text(errors="replace")))


async def test_tag_moved_while_50_clients_pull_it(registry: LiveRegistry, tally: Tally) -> None:
    """Both manifests keep a tag of their own (``a``, ``b``): GC must keep them and all they name, while it deletes
    the untagged images a churning client keeps pushing into the same repository."""
    rng, repo = random.Random(), "conc/flip"
    images = (
        random_image(rng, repo, "a", (4 << 10, 64 << 10), 2),
        random_image(rng, repo, "b", (4 << 10, 64 << 10), 2),
    )
    counts = PullCounts()
    runs_before, deleted_before = gc_runs(registry), gc_deleted_blobs(registry)
    async with session(registry.url, CLIENTS + 4) as client:
        for image in images:
            await _push(client, image, image.tag)
        await _push(client, images[0], "moving")
        done = asyncio.Event()
        known = {image.manifest for image in images}
        pullers = [asyncio.ensure_future(_puller(client, repo, known, done, counts)) for _ in range(CLIENTS)]
        churn = asyncio.ensure_future(_churn(client, repo, done))
        try:
            flips = await _flipper(client, images)
        finally:
            done.set()
            await asyncio.gather(*pullers)
            churned = await churn
        gc_during = gc_runs(registry) - runs_before
        await wait_for_gc(registry, gc_runs(registry))
        tags = json.loads((await call(client, "GET", f"/v2/{repo}/tags/list"))[2])["tags"]
        intact = await asyncio.gather(*(tag_intact(client, repo, tag, None) for tag in tags))
    deleted = gc_deleted_blobs(registry) - deleted_before
    tally.record(
        "Faults",
        "tag moved while 50 clients pull it (GC running)",
        tried=counts.pulls,
        tag_moves=len(flips),
        moves_refused=sum(answer != "201" for answer in flips),
        inconsistent=counts.inconsistent,
        foreign=counts.foreign,
        missing=counts.missing,
        server_errors=counts.server_errors,
        gc_runs=gc_during,
        gc_blobs_deleted=deleted,
        tags_broken_after=intact.count(False),
    )
    assert all(answer == "201" for answer in flips), flips
    assert counts.pulls > CLIENTS, counts
    assert (counts.inconsistent, counts.foreign, counts.missing, counts.server_errors) == (0, 0, 0, 0), counts
    assert (gc_during > 0, churned > 0, deleted > 0) == (True, True, True), "GC deleted garbage while the tag moved"
    assert tags == ["a", "b", "moving"]
    assert all(intact), intact

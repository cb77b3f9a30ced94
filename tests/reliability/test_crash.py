"""Crash: ``kill -9`` of a real ``dockyard serve`` (filesystem storage) during waves of concurrent pushes.

Each wave starts many pushes at once (random images of distinct random bytes; half of them chunked PATCH uploads)
and SIGKILLs the server once, at a random moment or a few milliseconds after the first push of the wave reaches its
final blob PUT (verify, then rename into place) or its manifest PUT; the server restarts on the same port and data
directory and the pushes resume (``crash_pushes.py``). Then:

* every blob and manifest the registry acknowledged with ``201`` is pulled back byte-identical;
* every blob any repository links (layers, configs, manifests) is downloaded and hashed: none differs from its
  digest, over HTTP or on disk;
* every interrupted upload either resumed from the ``Range`` its status reported, or answered
  ``BLOB_UPLOAD_UNKNOWN`` (checked as it happens; anything else is a broken promise);
* after ``dockyard gc --grace 0 --upload-max-age 0`` the data directory holds no temporary file, upload object,
  upload session directory or empty directory, and every acknowledged image is still pullable.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.crash_pushes import KILL_POINTS, CrashingRegistry, Ledger, Pusher, kill_during
from tests.reliability.load_client import (
    blob_matches,
    leftovers,
    linked_blobs,
    random_image,
    session,
    stored_blobs_corrupt,
    tag_intact,
)
from tests.reliability.tally import Tally, scaled
from tests.support.server import free_port, run_dockyard

WAVES = scaled(4, 9)
PUSHES_PER_WAVE = scaled(50, 200)
LAYER_SIZES = (16 << 10, 640 << 10)
REPOSITORIES = 6


async def _lost(client: aiohttp.ClientSession, ledger: Ledger, blobs_too: bool) -> int:
    """Acknowledged images (and, with ``blobs_too``, acknowledged blobs) not pulled back byte-identical."""
    checks = [tag_intact(client, i.repo, i.tag, i.manifest) for i in ledger.acked_images]
    if blobs_too:
        checks += [blob_matches(client, repo, d, data) for d, (repo, data) in ledger.acked_blobs.items()]
    return sum(not ok for ok in await asyncio.gather(*checks))


async def _corrupt_served(client: aiohttp.ClientSession, data: Path) -> tuple[int, int]:
    """(blobs downloaded, how many of them did not hash to their digest): every blob any repository links."""
    linked = sorted(set(linked_blobs(data)))
    served = await asyncio.gather(*(blob_matches(client, repo, d, None) for repo, d in linked))
    return len(linked), sum(not ok for ok in served)


async def _push_through_kills(registry: CrashingRegistry, ledger: Ledger, rng: random.Random) -> None:
    async with session(f"http://127.0.0.1:{registry.port}") as client:
        pusher = Pusher(client, registry, ledger)
        for wave in range(WAVES):
            images = [
                random_image(rng, f"crash/r{n % REPOSITORIES}", f"w{wave}-{n}", LAYER_SIZES, rng.randint(1, 2))
                for n in range(PUSHES_PER_WAVE)
            ]
            await kill_during(registry, pusher, images, KILL_POINTS[wave % len(KILL_POINTS)], rng)


@pytest.mark.timeout(scaled(300, 1800))
async def test_kill_9_during_concurrent_pushes(tmp_path: Path, tally: Tally) -> None:
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    registry = CrashingRegistry(tmp_path, free_port())
    ledger = Ledger()
    await registry.start()
    try:
        await _push_through_kills(registry, ledger, rng)
        async with session(f"http://127.0.0.1:{registry.port}") as client:
            lost = await _lost(client, ledger, blobs_too=True)
            downloaded, corrupt = await _corrupt_served(client, registry.data)
        corrupt_on_disk = stored_blobs_corrupt(registry.data)
        registry.stop()
        gc = run_dockyard("gc", "--data", str(registry.data), "--grace", "0", "--upload-max-age", "0")
        assert gc.returncode == 0, gc.stderr
        left = leftovers(registry.data)
        await registry.start()
        async with session(f"http://127.0.0.1:{registry.port}") as client:
            lost_after_gc = await _lost(client, ledger, blobs_too=False)
    finally:
        registry.stop()

    pushes = WAVES * PUSHES_PER_WAVE
    tally.record(
        "Faults",
        "kill -9 during concurrent pushes",
        tried=ledger.kills,
        pushes=pushes,
        pushes_acknowledged=len(ledger.acked_images),
        requests_cut=ledger.requests_cut,
        acknowledged_lost=lost + lost_after_gc,
        corrupt_served=corrupt + len(corrupt_on_disk),
        uploads_resumed=ledger.uploads_resumed,
        uploads_unknown=ledger.uploads_unknown,
        broken_answers=len(ledger.broken),
        orphans_after_gc=left.total,
    )
    assert ledger.broken == []
    assert ledger.kills == WAVES, ledger
    assert ledger.kills_mid_request == ledger.kills, ledger
    assert ledger.requests_cut > 0
    assert len(ledger.acked_images) == pushes, "every push is acknowledged in the end (after retries)"
    assert downloaded >= pushes * 2
    assert (lost, lost_after_gc) == (0, 0)
    assert (corrupt, corrupt_on_disk) == (0, [])
    assert left.total == 0, left


# A process that writes one record through the filesystem driver (fsynced, so the write lasts long enough to be killed
# between writing the temporary file and renaming it into place).
_WRITER = """
import asyncio, sys
from pathlib import Path
from storage.filesystem import FilesystemDriver
driver = FilesystemDriver(Path(sys.argv[1]), fsync_puts=True)
asyncio.run(driver.put_content(sys.argv[2], b"x" * (256 << 20)))
"""
RECORDS = (
    "/v1/repositories/crash/one/_uploads/0b5e7c3a-7d1e-4a57-9d8e-2f7a3c1b9e01/startedat",
    "/v1/repositories/crash/one/_manifests/tags/latest/link",
    f"/v1/blobs/sha256/ab/ab{'0' * 62}/data",
)


def _kill_mid_write(data: Path, key: str) -> bool:
    """Start a writer of ``key`` and SIGKILL it as soon as its temporary file exists; True if it died mid-write
    (the temporary file there, the record not)."""
    target = data / key.lstrip("/")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(data), key], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 20
        while not list(target.parent.glob(f"{target.name}~tmp~*")) and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        writer.kill()
        writer.wait()
    return bool(list(target.parent.glob(f"{target.name}~tmp~*"))) and not target.exists()


def test_kill_9_between_write_and_rename_leaves_nothing_after_gc(tmp_path: Path, tally: Tally) -> None:
    """Kill points that random timing rarely hits: a writer killed after writing a record's temporary file and before
    renaming it (an upload's start record, a tag, a manifest's bytes). The next ``dockyard gc`` removes the files and
    the directories they kept."""
    data = tmp_path / "registry-data"
    killed_mid_write = sum(_kill_mid_write(data, key) for key in RECORDS)
    assert killed_mid_write == len(RECORDS), "every writer died between writing and renaming"
    time.sleep(2.5)  # older than the grace period of 0 s plus GC's clock slack
    gc = run_dockyard("gc", "--data", str(data), "--grace", "0", "--upload-max-age", "0")
    assert gc.returncode == 0, gc.stderr
    left = leftovers(data)
    tally.record(
        "Faults",
        "kill -9 between writing a record and renaming it",
        tried=killed_mid_write,
        orphans_after_gc=left.total,
    )
    assert f"{len(RECORDS)} stale temporary files" in gc.stdout
    assert left.total == 0, left
    assert list((data / "v1").iterdir()) == [], "every directory went with its temporary file"

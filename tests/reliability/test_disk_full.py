"""Disk full (issue 9): a real ``dockyard serve`` whose data directory — blobs, uploads, tags and its SQLite account
and index database, as by default — is a small tmpfs the test mounts (20 MiB under CI); a filler file takes the
free space.

For each way of pushing (monolithic blob upload, chunked upload, manifest PUT), every round fills the disk so the
push does not fit, then checks: the answer is a clear server error (507 ``STORAGE_FULL`` with the spec's JSON body,
never a traceback or a hang); nothing partial is kept (no temporary file, no blob or tag visible, no leftover
upload data for a session the client cannot name); the image stored before still pulls byte-identical; and once
the filler is deleted, the same push succeeds (a chunked session resumes from the ``Range`` it reports) and
pulls back byte-identical, listed by the metadata index.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.outage_client import Answer, Image, RegistryClient, make_image, pulled_intact, push_image, sha256
from tests.reliability.outage_disk import files_below, fill, small_filesystem
from tests.reliability.tally import Tally, scaled
from tests.support.server import LiveRegistry, live_registry

ROUNDS = scaled(3, 12)
PAGE = 4096
BLOB = 3 << 20
SIZE_MIB = 8 + ROUNDS * 4  # room for every round's blob once the filler is gone
CHUNK = 1 << 20
DATABASE = "accounts.db"  # the SQLite account/index database (and its -wal, -shm), changed by any push
TEMP_MARK = "~tmp~"
INDEX_REPAIR_WAIT = 15.0  # seconds for the index to repair itself (catalog.index.Index.repair_interval: 2 s)


@dataclass
class SmallDisk:
    """A registry on a small filesystem, with an image pushed while there was room."""

    registry: LiveRegistry
    mount: Path
    client: RegistryClient
    seed: Image
    rng: random.Random

    @property
    def data(self) -> Path:
        return self.mount / "data"

    def stored(self) -> dict[str, int]:
        """The files of the data directory, the database left out."""
        return files_below(self.data, skip=(DATABASE,))

    def fill(self, leave: int) -> Path:
        return fill(self.mount, leave)

    def image(self, tag: str, *sizes: int) -> Image:
        return make_image("full/app", tag, sizes, self.rng.randbytes)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_filesystem(tmp_path / "small", SIZE_MIB) as mount:
        env = {"DOCKYARD_STORAGE__TYPE": "filesystem", "DOCKYARD_STORAGE__ROOT": str(mount / "data")}
        with live_registry(tmp_path, env=env) as registry:
            client = RegistryClient(registry.url)
            rng = random.Random(9)
            seed = make_image("full/seed", "v1", (64 << 10, 32 << 10), rng.randbytes)
            assert push_image(client, seed).status == 201
            yield SmallDisk(registry, mount, client, seed, rng)


def clear_refusal(answer: Answer) -> bool:
    """507 with the spec's JSON error body naming the cause (what a client can show its user)."""
    return answer.status == 507 and answer.code == "STORAGE_FULL" and b"Traceback" not in answer.body


def listed(client: RegistryClient, image: Image) -> bool:
    """The metadata index lists the tag (``tags/list`` reads the index)."""
    answer = client.request("GET", f"/v2/{image.repo}/tags/list")
    return answer.status == 200 and image.tag.encode() in answer.body


def unlisted_after(client: RegistryClient, images: list[Image], seconds: float) -> int:
    """How many of ``images`` the index still does not list after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (missing := sum(not listed(client, image) for image in images)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return missing


def temp_files(disk: SmallDisk) -> int:
    return sum(TEMP_MARK in name for name in disk.stored())


def test_monolithic_upload_on_a_full_disk(disk: SmallDisk, tally: Tally) -> None:
    rounds = ROUNDS
    unclear = partial = seed_broken = not_recovered = 0
    for round_ in range(rounds):
        blob = disk.rng.randbytes(BLOB)
        before = disk.stored()
        filler = disk.fill(leave=round_ * (BLOB // rounds))  # from nothing to most of the blob fitting
        answer = disk.client.push_blob("full/app", blob)
        unclear += not clear_refusal(answer)
        partial += disk.stored() != before
        seed_broken += not pulled_intact(disk.client, disk.seed)
        filler.unlink()
        retried = disk.client.push_blob("full/app", blob)
        fetched = disk.client.get_blob("full/app", sha256(blob))
        not_recovered += not (retried.status == 201 and fetched.body == blob)
    record_upload_rounds(tally, "monolithic", rounds, unclear, partial, seed_broken, not_recovered)


def record_upload_rounds(
    tally: Tally, kind: str, rounds: int, unclear: int, partial: int, seed_broken: int, not_recovered: int
) -> None:
    """Report the rounds of a blob upload on a full disk, then require that every count is zero."""
    tally.record(
        "Faults",
        f"disk full: {kind} blob upload",
        tried=rounds,
        unclear_errors=unclear,
        partial_kept=partial,
        existing_broken=seed_broken,
        not_recovered=not_recovered,
    )
    assert (unclear, partial, seed_broken, not_recovered) == (0, 0, 0, 0)


def test_chunked_upload_on_a_full_disk(disk: SmallDisk, tally: Tally) -> None:
    """The disk fills in the middle of a chunk: that PATCH is refused, the session keeps a prefix of the data
    (never a visible blob) and resumes from the ``Range`` it reports once there is room."""
    rounds = ROUNDS
    unclear = partial = seed_broken = not_recovered = 0
    for round_ in range(rounds):
        blob = disk.rng.randbytes(BLOB)
        answer, location = disk.client.start_upload("full/app")
        assert answer.status == 202, answer
        assert disk.client.patch(location, blob[:CHUNK], 0).status == 202
        filler = disk.fill(leave=CHUNK // 2 + round_ * PAGE * 16)
        refused = disk.client.patch(location, blob[CHUNK:], CHUNK)
        unclear += not clear_refusal(refused)
        partial += disk.client.get_blob("full/app", sha256(blob)).status != 404 or temp_files(disk) > 0
        seed_broken += not pulled_intact(disk.client, disk.seed)
        filler.unlink()
        not_recovered += not resumed(disk, location, blob)
    record_upload_rounds(tally, "chunked", rounds, unclear, partial, seed_broken, not_recovered)


def resumed(disk: SmallDisk, location: str, blob: bytes) -> bool:
    """Continue the session from the offset it reports, finish it, and read the blob back."""
    offset = disk.client.upload_offset(location)
    if offset is None or not CHUNK <= offset <= len(blob):
        return False
    if offset < len(blob) and disk.client.patch(location, blob[offset:], offset).status != 202:
        return False
    finished = disk.client.finish(location, blob)
    return finished.status == 201 and disk.client.get_blob("full/app", sha256(blob)).body == blob


def test_manifest_put_on_a_full_disk(disk: SmallDisk, tally: Tally) -> None:
    """The blobs are stored; the disk is filled right before the manifest PUT, leaving 0, 1, 2 or 3 pages, so the
    PUT runs out of room at its different writes (usage marks, manifest bytes, revision link, tag, index row).
    A refused PUT is repeated once there is room; a PUT that fitted while the index database did not is not
    repeated: the index must repair itself from storage once the space is back."""
    rounds = ROUNDS + 1
    unclear = broken_tag = seed_broken = not_recovered = refused = 0
    fitted: list[Image] = []
    images = [disk.image(f"r{round_}", 16 << 10) for round_ in range(rounds)]
    for round_, image in enumerate(images):
        for blob in image.blobs:
            assert disk.client.push_blob(image.repo, blob).status == 201
        filler = disk.fill(leave=(round_ % 4) * PAGE)
        answer = disk.client.put_manifest(image.repo, image.tag, image.manifest)
        if answer.status != 201:
            refused += 1
            unclear += not clear_refusal(answer)
            tagged = disk.client.get_manifest(image.repo, image.tag)
            broken_tag += tagged.status != 404 and not pulled_intact(disk.client, image)
        seed_broken += not pulled_intact(disk.client, disk.seed)
        filler.unlink()
        if answer.status == 201:
            fitted.append(image)
            continue
        retried = disk.client.put_manifest(image.repo, image.tag, image.manifest)
        not_recovered += not (retried.status == 201 and pulled_intact(disk.client, image))
    not_recovered += sum(not pulled_intact(disk.client, image) for image in fitted)
    stale_index = unlisted_after(disk.client, images, INDEX_REPAIR_WAIT)
    tally.record(
        "Faults",
        "disk full: manifest PUT",
        tried=rounds,
        refused=refused,
        unclear_errors=unclear,
        broken_tags=broken_tag,
        existing_broken=seed_broken,
        not_recovered=not_recovered,
        index_stale=stale_index,
    )
    assert refused > 0, "the disk never filled before a manifest PUT: the test tried nothing"
    assert (unclear, broken_tag, seed_broken, not_recovered, stale_index) == (0, 0, 0, 0, 0)

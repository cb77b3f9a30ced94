"""Scrub: re-hash every stored blob, and check that every manifest's references are present.

``repair=True`` moves a corrupt blob aside to ``/v1/quarantine/<alg>/<hex>/data`` so it is no longer
served: a pull then fails with BLOB_UNKNOWN instead of handing out bytes that do not match their digest.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry.manifests import parse_manifest
from registry.reference import Digest
from registry.store import links
from registry.store.paths import key
from registry.store.repos import repositories

if TYPE_CHECKING:
    from registry.store import Store
from storage.driver import StorageDriver
from storage.errors import PathNotFound


@dataclass
class ScrubReport:
    """What a scrub found (and, with repair, moved aside)."""

    blobs_checked: int = 0
    bytes_checked: int = 0
    manifests_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (repository, manifest, missing digest)
    quarantined: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.corrupt and not self.missing


async def rehash(driver: StorageDriver, storage_key: str, digest: Digest) -> tuple[str, int]:
    """The actual hex digest (in ``digest``'s algorithm) and size of the bytes at ``storage_key``."""
    hasher = digest.hasher()
    size = 0
    async for chunk in driver.reader(storage_key):
        await asyncio.to_thread(hasher.update, chunk)
        size += len(chunk)
    return str(hasher.hexdigest()), size


def references(body: bytes, media_type: str) -> list[Digest]:
    """What a stored manifest needs stored: its blobs (foreign layers excepted, as on push) or, for an
    index, its child manifests. The same parser as on push decides, so the two never disagree."""
    parsed = parse_manifest(body, media_type)
    return [d.parsed_digest() for d in (*parsed.blobs, *parsed.children)]


async def scrub(store: Store, repair: bool = False) -> ScrubReport:
    """Check every blob and every manifest; see the module docstring."""
    report = ScrubReport()
    async for digest in links.digests_in(store.driver, key("blobs"), sharded=True):
        await _check_blob(store, digest, report, repair)
    async for name in repositories(store.driver):
        await _check_repository(store, name, report)
    return report


async def _check_blob(store: Store, digest: Digest, report: ScrubReport, repair: bool) -> None:
    located = await store.blobs.locate(digest)
    if located is None:
        return
    try:
        actual, size = await rehash(store.driver, located.storage_key, digest)
    except PathNotFound:
        return
    report.blobs_checked += 1
    report.bytes_checked += size
    if actual != digest.hex:
        report.corrupt.append(str(digest))
        if repair:
            await store.blobs.quarantine(digest, located)
            report.quarantined.append(str(digest))


async def _check_repository(store: Store, name: str, report: ScrubReport) -> None:
    driver = store.driver
    async for manifest in links.digests_in(driver, key("revisions", name=name)):
        record = await links.read_optional(driver, key("revision_link", name=name, digest=manifest))
        if record is None:
            continue
        report.manifests_checked += 1
        try:
            body = await store.blobs.read_small(manifest)
        except PathNotFound:
            report.missing.append((name, str(manifest), str(manifest)))
            continue
        for ref in references(body, json.loads(record)["mediaType"]):
            if await store.blobs.size(ref) is None:
                report.missing.append((name, str(manifest), str(ref)))

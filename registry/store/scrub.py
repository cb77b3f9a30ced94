"""Scrub: re-hash every stored blob, and check that every manifest's references are present.

``repair=True`` moves a corrupt blob aside to ``/v1/quarantine/<alg>/<hex>/data`` so it is no longer
served: a pull then fails with BLOB_UNKNOWN instead of handing out bytes that do not match their digest.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from registry.manifests import parse_manifest
from registry.reference import Digest
from registry.store import links
from registry.store.paths import key
from registry.store.repos import repositories
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


async def rehash(driver: StorageDriver, digest: Digest) -> tuple[str, int]:
    """The actual hex digest and size of a stored blob."""
    hasher = digest.hasher()
    size = 0
    async for chunk in driver.reader(key("blob_data", digest=digest)):
        await asyncio.to_thread(hasher.update, chunk)
        size += len(chunk)
    return str(hasher.hexdigest()), size


def references(body: bytes, media_type: str) -> list[Digest]:
    """What a stored manifest needs stored: its blobs (foreign layers excepted, as on push) or, for an
    index, its child manifests. The same parser as on push decides, so the two never disagree."""
    parsed = parse_manifest(body, media_type)
    return [d.parsed_digest() for d in (*parsed.blobs, *parsed.children)]


async def scrub(driver: StorageDriver, repair: bool = False) -> ScrubReport:
    """Check every blob and every manifest; see the module docstring."""
    report = ScrubReport()
    async for digest in links.digests_in(driver, key("blobs"), sharded=True):
        try:
            actual, size = await rehash(driver, digest)
        except PathNotFound:
            continue
        report.blobs_checked += 1
        report.bytes_checked += size
        if actual != digest.hex:
            report.corrupt.append(str(digest))
            if repair:
                await driver.move(key("blob_data", digest=digest), key("quarantine", digest=digest))
                report.quarantined.append(str(digest))
    async for name in repositories(driver):
        await _check_repository(driver, name, report)
    return report


async def _check_repository(driver: StorageDriver, name: str, report: ScrubReport) -> None:
    async for manifest in links.digests_in(driver, key("revisions", name=name)):
        record = await links.read_optional(driver, key("revision_link", name=name, digest=manifest))
        if record is None:
            continue
        report.manifests_checked += 1
        body = await links.read_optional(driver, key("blob_data", digest=manifest))
        if body is None:
            report.missing.append((name, str(manifest), str(manifest)))
            continue
        for ref in references(body, json.loads(record)["mediaType"]):
            if not await links.exists(driver, key("blob_data", digest=ref)):
                report.missing.append((name, str(manifest), str(ref)))

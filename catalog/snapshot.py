"""One repository as storage holds it, for ``Index.rebuild``: :func:`snapshot`.

Times come from storage too: a manifest's push time is its revision link's modification time, a tag's its tag
link's; the repository was created with its oldest manifest and pushed with its newest manifest or tag. A
manifest that can't be read or parsed is reported in ``unreadable`` and left out; a tag pointing at a manifest
that is not in the repository is left out (garbage collection removes such tags).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from catalog.describe import ManifestFacts, describe
from registry.reference import Digest, parse_digest
from registry.store import Store, links
from registry.store.paths import key

__all__ = ["RepositorySnapshot", "snapshot"]

log = logging.getLogger("dockyard.catalog")


@dataclass
class RepositorySnapshot:
    """``manifests``: (facts, pushed at); ``tags``: (tag, digest, pushed at)."""

    name: str
    manifests: list[tuple[ManifestFacts, datetime]] = field(default_factory=list)
    tags: list[tuple[str, str, datetime]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def created_at(self) -> datetime:
        return min((at for _, at in self.manifests), default=_now())

    @property
    def pushed_at(self) -> datetime:
        times = [at for _, at in self.manifests] + [at for _, _, at in self.tags]
        return max(times, default=_now())


async def snapshot(store: Store, name: str) -> RepositorySnapshot:
    """Every manifest and tag of repository ``name`` in storage. Storage errors raise."""
    found = RepositorySnapshot(name)
    async for digest in links.digests_in(store.driver, key("revisions", name=name)):
        facts = await _describe(store, name, digest)
        if facts is None:
            found.unreadable.append(str(digest))
            continue
        found.manifests.append((facts, await _modified(store, key("revision_link", name=name, digest=digest))))
    known = {facts.digest for facts, _ in found.manifests}
    for tag in await store.manifests.tags(name):
        link = await links.read_optional(store.driver, key("tag_link", name=name, tag=tag))
        target = _digest(link)
        if target is not None and target in known:
            found.tags.append((tag, target, await _modified(store, key("tag_link", name=name, tag=tag))))
    return found


async def _describe(store: Store, name: str, digest: Digest) -> ManifestFacts | None:
    try:
        return await describe(store, name, digest)
    except Exception as exc:  # one bad manifest must not stop a rebuild; it is reported instead
        log.warning("index rebuild: cannot read %s@%s: %s", name, digest, exc)
        return None


def _digest(link: bytes | None) -> str | None:
    if link is None:
        return None
    try:
        return str(parse_digest(link.decode().strip()))
    except Exception:  # a rotten tag link names no manifest
        return None


async def _modified(store: Store, path: str) -> datetime:
    modified = await links.modified(store.driver, path)
    return datetime.fromtimestamp(modified, UTC) if modified > 0 else _now()


def _now() -> datetime:
    return datetime.now(UTC)

"""What the registry tells a metadata index, and what it asks of it (the catalog plugs one in, see
``catalog.index.Index``; the registry itself never imports the catalog's code at import time).

Every event method is called after storage changed successfully and must not raise: storage is the source of
truth, an index that missed an event is repaired by ``dockyard index rebuild``.
"""

from __future__ import annotations

from typing import Protocol

from registry.reference import Digest


class MetadataIndex(Protocol):
    """Implemented by :class:`catalog.index.Index`."""

    async def manifest_pushed(self, name: str, digest: Digest | str, tags: list[str]) -> None:
        """A manifest was stored in ``name`` under ``tags`` (maybe none)."""
        ...

    async def manifest_deleted(self, name: str, digest: Digest | str) -> None:
        """A manifest and every tag pointing to it left ``name``."""
        ...

    async def tag_deleted(self, name: str, tag: str) -> None:
        """A tag left ``name``; its manifest stays."""
        ...

    async def repository_deleted(self, name: str) -> None:
        """Every record of ``name`` left storage."""
        ...

    async def pulled(self, name: str, reference: Digest | str) -> None:
        """A manifest of ``name`` was served by GET (HEAD is not a pull); must return without waiting on I/O."""
        ...

    async def repository_names(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Names of the repositories holding at least one manifest, sorted, after ``after``, at most ``limit``."""
        ...

    async def tag_names(self, name: str, after: str | None = None, limit: int | None = None) -> list[str] | None:
        """The tags of ``name`` sorted, after ``after``, at most ``limit``; None when the index lacks ``name``."""
        ...


async def forget_collected(index: MetadataIndex, manifests_deleted: list[str]) -> None:
    """Tell ``index`` of the manifests a garbage collection deleted (``GcReport.manifests_deleted``:
    ``<repository>@<digest>`` each)."""
    for entry in manifests_deleted:
        name, _, digest = entry.rpartition("@")
        await index.manifest_deleted(name, digest)

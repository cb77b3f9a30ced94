"""Repositories as a whole: existence, the walk over all of them, and the catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator

from registry.errors import ErrorCode, RegistryError
from registry.store import links
from registry.store.paths import REPOSITORIES, key
from storage.driver import StorageDriver


async def repositories(driver: StorageDriver, folder: str = REPOSITORIES, prefix: str = "") -> AsyncIterator[str]:
    """Every repository name, depth first: a folder holding any ``_``-record folder (``_layers``,
    ``_manifests``, ``_uploads``...) is a repository; its other sub-folders may hold nested ones."""
    entries = await links.children(driver, folder)
    if any(entry.startswith("_") for entry in entries):
        yield prefix.rstrip("/")
    for entry in entries:
        if not entry.startswith("_"):
            async for name in repositories(driver, f"{folder}/{entry}", f"{prefix}{entry}/"):
                yield name


class RepoStore:
    """Which repositories exist. A repository exists once it holds a blob, a manifest or an upload."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def exists(self, name: str) -> bool:
        """True if anything was ever pushed to ``name``."""
        return await links.exists(self.driver, key("repo", name=name), folder=True)

    async def catalog(self) -> list[str]:
        """Names of the repositories that hold at least one manifest, sorted lexically."""
        return sorted(
            [
                name
                async for name in repositories(self.driver)
                if await links.children(self.driver, key("revisions", name=name))
            ]
        )

    async def remove(self, name: str) -> None:
        """Delete every record of repository ``name`` (not its nested repositories), or NAME_UNKNOWN.
        Its blobs stay until garbage collection finds them unreferenced."""
        base = key("repo", name=name)
        records = [entry for entry in await links.children(self.driver, base) if entry.startswith("_")]
        if not records:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, f"repository {name} is not known", {"name": name})
        for entry in records:
            await links.delete_optional(self.driver, f"{base}/{entry}")

"""Repositories as a whole: existence and the catalog."""

from __future__ import annotations

from registry.store import links
from registry.store.paths import REPOSITORIES, key
from storage.driver import StorageDriver


class RepoStore:
    """Which repositories exist. A repository exists once it holds a blob, a manifest or an upload."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def exists(self, name: str) -> bool:
        """True if anything was ever pushed to ``name``."""
        return await links.exists(self.driver, key("repo", name=name))

    async def catalog(self) -> list[str]:
        """Names of the repositories that hold at least one manifest, sorted lexically."""
        names: list[str] = []
        await self._collect(REPOSITORIES, "", names)
        return sorted(names)

    async def _collect(self, folder: str, prefix: str, names: list[str]) -> None:
        entries = await links.children(self.driver, folder)
        if "_manifests" in entries and await links.children(self.driver, f"{folder}/_manifests/revisions"):
            names.append(prefix.rstrip("/"))
        for entry in entries:
            if not entry.startswith("_"):
                await self._collect(f"{folder}/{entry}", f"{prefix}{entry}/", names)

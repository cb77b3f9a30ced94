"""Small helpers for link files: tiny records that point at a digest."""

from __future__ import annotations

from storage.driver import StorageDriver
from storage.errors import PathNotFound


async def exists(driver: StorageDriver, key: str) -> bool:
    """True if a file or directory exists at ``key``."""
    try:
        await driver.stat(key)
    except PathNotFound:
        return False
    return True


async def read_optional(driver: StorageDriver, key: str) -> bytes | None:
    """The content at ``key``, or None when it does not exist."""
    try:
        return await driver.get_content(key)
    except PathNotFound:
        return None


async def delete_optional(driver: StorageDriver, key: str) -> bool:
    """Delete ``key`` if present; True if something was deleted."""
    try:
        await driver.delete(key)
    except PathNotFound:
        return False
    return True


async def children(driver: StorageDriver, key: str) -> list[str]:
    """The names (last key component) of the children of ``key``; empty when it does not exist."""
    try:
        return [child.rsplit("/", 1)[1] for child in await driver.list(key)]
    except PathNotFound:
        return []

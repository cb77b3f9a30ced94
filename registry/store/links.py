"""Small helpers for link files: tiny records that point at a digest."""

from __future__ import annotations

from collections.abc import AsyncIterator

from registry.errors import RegistryError
from registry.reference import ALGORITHMS, Digest, parse_digest
from storage.driver import StorageDriver
from storage.errors import PathNotFound


async def exists(driver: StorageDriver, key: str, *, folder: bool = False) -> bool:
    """True if a record (a file, see :meth:`StorageDriver.stat_file`) exists at ``key``; with ``folder``, a file or a
    directory."""
    try:
        await (driver.stat(key) if folder else driver.stat_file(key))
    except PathNotFound:
        return False
    return True


async def modified(driver: StorageDriver, key: str) -> float:
    """The UNIX modification time of the record at ``key``, 0.0 when it does not exist."""
    try:
        return (await driver.stat_file(key)).modified
    except PathNotFound:
        return 0.0


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


async def digests_in(driver: StorageDriver, folder: str, sharded: bool = False) -> AsyncIterator[Digest]:
    """Every digest recorded as ``<folder>/<alg>/<hex>`` (or ``<folder>/<alg>/<hex[0:2]>/<hex>`` when
    ``sharded``); names that are not valid digests are skipped."""
    for algorithm in await children(driver, folder):
        if algorithm not in ALGORITHMS:
            continue
        shards = await children(driver, f"{folder}/{algorithm}") if sharded else [""]
        for shard in shards:
            base = f"{folder}/{algorithm}/{shard}".rstrip("/")
            for hexpart in await children(driver, base):
                if digest := digest_of_names(algorithm, hexpart):
                    yield digest


def digest_of_names(algorithm: str, hexpart: str) -> Digest | None:
    """The digest two key components name (``sha256``, ``<hex>``), or None when they name none."""
    try:
        return parse_digest(f"{algorithm}:{hexpart}")
    except RegistryError:
        return None

"""The request-level client: small pushes and listings through the OCI API with aiohttp (keep-alive).

Used to populate both registries (10,000 tags, 10,000 repositories) and for the small-image pushes. Every
method raises :class:`BenchError` on an unexpected status, naming the server and the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from bench.s3_push_pull import BenchError
from bench.sidebyside.servers import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TIMEOUT = aiohttp.ClientTimeout(total=600)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class SmallImage:
    """A tiny image: one random layer, a config naming it, and the manifest bytes."""

    layer: bytes
    config: bytes
    manifest: bytes

    @classmethod
    def make(cls, label: str, layer_size: int = 1024) -> SmallImage:
        layer = os.urandom(layer_size)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"bench": label}},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            },
            sort_keys=True,
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
            },
            sort_keys=True,
        ).encode()
        return cls(layer, config, manifest)

    @property
    def blobs(self) -> tuple[bytes, bytes]:
        return self.layer, self.config

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


class Api:
    """An aiohttp session on one registry; use as ``async with Api(registry, connections) as api``."""

    def __init__(self, registry: Registry, connections: int = 32) -> None:
        self.registry = registry
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=self._connections, force_close=False)
        self._session = aiohttp.ClientSession(self.registry.url, connector=connector, timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Api as an async context manager"
        return self._session

    async def _call(self, method: str, path: str, expected: int, **kwargs: Any) -> tuple[aiohttp.ClientResponse, bytes]:
        async with self.session.request(method, path, **kwargs) as response:
            body = await response.read()
        if response.status != expected:
            text = body[:300].decode(errors="replace").replace("\n", " ")
            raise BenchError(f"{self.registry.name}: {method} {path} answered {response.status}: {text}")
        return response, body

    def _relative(self, location: str) -> str:
        """A Location (absolute or relative) as a path on this registry."""
        return URL(location).raw_path_qs

    async def push_blob(self, repo: str, data: bytes, check_first: bool = False) -> str:
        """Upload ``data`` monolithically (POST, PUT ?digest=); with ``check_first``, HEAD it first as clients do
        and skip the upload when the repository has it. Returns the digest."""
        digest = digest_of(data)
        if check_first:
            async with self.session.head(f"/v2/{repo}/blobs/{digest}") as response:
                if response.status == 200:
                    return digest
        response, _ = await self._call("POST", f"/v2/{repo}/blobs/uploads/", 202)
        target = self._relative(response.headers["Location"])
        separator = "&" if "?" in target else "?"
        headers = {"Content-Type": "application/octet-stream"}
        await self._call("PUT", f"{target}{separator}digest={digest}", 201, data=data, headers=headers)
        return digest

    async def mount_blob(self, repo: str, digest: str, source: str) -> None:
        """Cross-repository mount of a blob ``source`` has (both registries answer 201)."""
        await self._call("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", 201)

    async def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        await self._call(
            "PUT", f"/v2/{repo}/manifests/{reference}", 201, data=manifest, headers={"Content-Type": OCI_MANIFEST}
        )

    async def push_image(self, repo: str, tag: str, image: SmallImage, check_first: bool = False) -> None:
        """Blobs (config and layer, one after the other, as a client does), then the manifest under ``tag``."""
        for blob in image.blobs:
            await self.push_blob(repo, blob, check_first)
        await self.put_manifest(repo, tag, image.manifest)

    async def list_all(self, path: str, key: str) -> list[str]:
        """Every entry of a paginated listing (``tags`` or ``repositories``), following ``Link`` headers."""
        entries: list[str] = []
        next_path: str | None = path
        while next_path:
            response, body = await self._call("GET", next_path, 200)
            entries.extend(json.loads(body)[key] or [])
            link = response.headers.get("Link", "")
            next_path = self._relative(link.split(";")[0].strip(" <>")) if link else None
        return entries


async def for_each(count: int, workers: int, work: Callable[[int], Awaitable[None]]) -> None:
    """Run ``work(0..count-1)`` with ``workers`` concurrent tasks pulling the next index; the first error
    cancels the rest and is raised."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await work(index)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(workers, count)):
            group.create_task(worker())

"""An HTTP client for the load and crash tests: pushes and pulls against a live ``dockyard serve`` with aiohttp,
plus what the tests check afterwards (what every stored blob hashes to, what is left in the data directory).

Requests return ``(status, headers, body)`` after reading the whole body, so no connection is left half-read; a
connection cut (the server killed) raises :class:`aiohttp.ClientConnectionError` as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from multidict import CIMultiDictProxy

from tests.support.oci import OCI_MANIFEST, digest, image_manifest

Answer = tuple[int, CIMultiDictProxy[str], bytes]
CUT = (aiohttp.ClientConnectionError, asyncio.TimeoutError)  # what a killed server looks like to a client


def session(base_url: str, connections: int = 64) -> aiohttp.ClientSession:
    """A client session for ``base_url``: at most ``connections`` at once, 60 s per request (never a hang)."""
    return aiohttp.ClientSession(
        base_url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def call(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request, its body read whole."""
    async with client.request(method, url, data=data, headers=dict(headers or {})) as resp:
        return resp.status, resp.headers, await resp.read()


def error_code(body: bytes) -> str:
    """The first error code of a spec error body, or '' when the body is not one."""
    try:
        return str(json.loads(body)["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def upload_offset(headers: Mapping[str, str]) -> int:
    """Bytes an upload session holds, from its ``Range: 0-N`` header (``0-0`` means empty, as Distribution)."""
    end = int(headers["Range"].split("-", 1)[1])
    return end + 1 if end else 0


@dataclass(frozen=True)
class Image:
    """One image to push: a random config and layers under ``repo:tag``; ``chunked`` picks PATCH uploads (for the
    clients that choose)."""

    repo: str
    tag: str
    config: bytes
    layers: tuple[bytes, ...]
    chunked: bool = False

    @property
    def blobs(self) -> tuple[bytes, ...]:
        return (self.config, *self.layers)

    @property
    def manifest(self) -> bytes:
        return json.dumps(image_manifest(self.config, list(self.layers))).encode()


def random_image(rng: random.Random, repo: str, tag: str, sizes: tuple[int, int], layers: int = 1) -> Image:
    """An image of distinct random bytes (a seeded ``rng`` makes a run reproducible)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": rng.getrandbits(64)}).encode()
    blobs = tuple(rng.randbytes(rng.randint(*sizes)) for _ in range(layers))
    return Image(repo, tag, config, blobs, chunked=rng.random() < 0.5)


async def push_monolithic(client: aiohttp.ClientSession, repo: str, data: bytes) -> Answer:
    """POST ``?digest=`` with the whole blob."""
    return await call(client, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest(data)}", data)


async def put_manifest(client: aiohttp.ClientSession, repo: str, reference: str, body: bytes) -> Answer:
    return await call(client, "PUT", f"/v2/{repo}/manifests/{reference}", body, {"Content-Type": OCI_MANIFEST})


@dataclass
class Pulled:
    """What one manifest pull saw."""

    status: int
    body: bytes = b""
    header_digest: str = ""

    @property
    def consistent(self) -> bool:
        """The body hashes to the ``Docker-Content-Digest`` the server sent with it."""
        return self.status == 200 and digest(self.body) == self.header_digest


async def pull_manifest(client: aiohttp.ClientSession, repo: str, reference: str) -> Pulled:
    status, headers, body = await call(
        client, "GET", f"/v2/{repo}/manifests/{reference}", None, {"Accept": OCI_MANIFEST}
    )
    return Pulled(status, body, headers.get("Docker-Content-Digest", ""))


async def blob_matches(client: aiohttp.ClientSession, repo: str, blob_digest: str, expected: bytes | None) -> bool:
    """GET the blob: 200, hashing to its digest, and equal to ``expected`` when given."""
    status, _, body = await call(client, "GET", f"/v2/{repo}/blobs/{blob_digest}")
    return status == 200 and digest(body) == blob_digest and (expected is None or body == expected)


async def blob_present(client: aiohttp.ClientSession, repo: str, blob_digest: str) -> bool:
    """HEAD the blob: 200 with its digest."""
    status, headers, _ = await call(client, "HEAD", f"/v2/{repo}/blobs/{blob_digest}")
    return status == 200 and headers.get("Docker-Content-Digest") == blob_digest


def manifest_blobs(manifest: bytes) -> list[str]:
    """The digests of the config and layers a manifest names."""
    doc = json.loads(manifest)
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


async def tag_intact(client: aiohttp.ClientSession, repo: str, tag: str, expected: bytes | None) -> bool:
    """The tag pulls back consistent (and equal to ``expected`` when given), and every blob it names is served
    hashing to its digest."""
    pulled = await pull_manifest(client, repo, tag)
    if not pulled.consistent or (expected is not None and pulled.body != expected):
        return False
    return all(await asyncio.gather(*(blob_matches(client, repo, d, None) for d in manifest_blobs(pulled.body))))


def created(answer: Answer) -> tuple[int, str]:
    """The status and ``Docker-Content-Digest`` of an answer (a push succeeded when they are ``201`` and its digest)."""
    return answer[0], answer[1].get("Docker-Content-Digest", "")


def copies(data: Path, content: bytes) -> int:
    """How many files below ``data`` hold exactly ``content``."""
    return sum(
        1
        for path in data.rglob("*")
        if path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content
    )


# -- the data directory (filesystem driver) ------------------------------------------------------------------------


def linked_blobs(data: Path) -> Iterator[tuple[str, str]]:
    """Every ``(repository, digest)`` the data directory links: layers, configs and manifests."""
    repositories = data / "v1" / "repositories"
    for link in repositories.rglob("link"):
        parts = link.relative_to(repositories).parts
        if len(parts) >= 5 and parts[-4] == "_layers":
            yield "/".join(parts[:-4]), f"{parts[-3]}:{parts[-2]}"
        elif len(parts) >= 6 and parts[-5:-3] == ("_manifests", "revisions"):
            yield "/".join(parts[:-5]), f"{parts[-3]}:{parts[-2]}"


@dataclass
class Leftovers:
    """What a data directory holds that no live record owns (counted after a GC with zero grace)."""

    temp_files: list[str] = field(default_factory=list)
    upload_objects: list[str] = field(default_factory=list)
    upload_dirs: list[str] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.temp_files) + len(self.upload_objects) + len(self.upload_dirs) + len(self.empty_dirs)


def leftovers(data: Path) -> Leftovers:
    """Walk ``data``: temporary files (``~tmp~``), upload objects, upload session directories, empty directories."""
    found = Leftovers()
    root = data / "v1"
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(data))
        if "~tmp~" in path.name:
            found.temp_files.append(relative)
        elif path.parent == root / "objects" or (path.name == "data" and path.parent.parent.name == "_uploads"):
            found.upload_objects.append(relative)
        elif path.parent.name == "_uploads":
            found.upload_dirs.append(relative)
        elif path.is_dir() and not any(path.iterdir()):
            found.empty_dirs.append(relative)
    return found


def stored_blobs_corrupt(data: Path) -> list[str]:
    """Blob files under ``blobs/`` whose bytes do not hash to the digest their path names."""
    corrupt = []
    for path in (data / "v1" / "blobs").glob("*/*/*/data"):
        algorithm, expected = path.parts[-4], path.parts[-2]
        if hashlib.new(algorithm, path.read_bytes()).hexdigest() != expected:
            corrupt.append(f"{algorithm}:{expected}")
    return corrupt

"""Helpers for API tests: push blobs and manifests through the aiohttp test client."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp.test_utils import TestClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


async def push_blob(client: TestClient[Any, Any], name: str, data: bytes) -> str:
    """Monolithic POST ?digest=; asserts 201 and returns the digest."""
    d = digest(data)
    resp = await client.post(f"/v2/{name}/blobs/uploads/?digest={d}", data=data)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Docker-Content-Digest"] == d
    return d


def image_manifest(config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    docker = media_type == DOCKER_MANIFEST
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers],
        **extra,
    }


async def push_image(
    client: TestClient[Any, Any],
    name: str,
    tag: str,
    layers: list[bytes] | None = None,
    media_type: str = OCI_MANIFEST,
    **extra: Any,
) -> tuple[str, bytes]:
    """Push config, layers and the manifest under ``tag``; returns (manifest digest, manifest bytes)."""
    layers = layers if layers is not None else [f"layer of {name}:{tag}".encode()]
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    for blob in [config, *layers]:
        await push_blob(client, name, blob)
    body = json.dumps(image_manifest(config, layers, media_type, **extra)).encode()
    resp = await client.put(f"/v2/{name}/manifests/{tag}", data=body, headers={"Content-Type": media_type})
    assert resp.status == 201, await resp.text()
    return resp.headers["Docker-Content-Digest"], body


async def error_code(resp: Any) -> str:
    """The first error code of a JSON error body."""
    body = await resp.json(content_type=None)
    return str(body["errors"][0]["code"])

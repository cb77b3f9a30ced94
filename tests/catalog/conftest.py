"""Fixtures of the catalog tests: a real registry app with its metadata index, and helpers that push real images.

``catalog_client``: ``create_app`` over filesystem storage in ``tmp_path``, open registry (``auth.mode: none``).
``token_catalog_client``: token mode; users ``alice`` (owns ``alice/``, member of org ``acme`` as admin),
``bob`` (not a member of anything) and site admin ``root``; their passwords are in ``PASSWORDS``. Get request
headers for it with ``await auth_headers(client, "alice", "repository:alice/app:pull,push")``.

``push_image`` builds a real image (a gzipped tar layer of ``files``, an OCI config with history, an OCI
manifest) and pushes it through ``/v2``; ``push_index`` pushes an index over already pushed images;
``push_artifact`` pushes an artifact manifest with a ``subject`` (a signature, an SBOM). The index behind an app
is ``index_of(client)``; ``await index_of(client).flush()`` writes pending pull counts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from registry.app import create_app
from registry.config import AuthSettings, FilesystemStorage, Settings
from tests.support.images import (
    CREATED,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Layer,
    TarEntry,
    canonical_json,
    image_config,
    layer_from_entries,
    sha256_digest,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from catalog.index import Index

__all__ = [
    "CREATED",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "ORG",
    "PASSWORDS",
    "Client",
    "ClientFactory",
    "PushedImage",
    "PushedManifest",
    "app_of",
    "auth_headers",
    "basic",
    "catalog_settings",
    "engine_of",
    "files_layer",
    "index_of",
    "manifest_json",
    "platform_of",
    "push_artifact",
    "push_blob",
    "push_image",
    "push_index",
    "put_manifest",
]

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "root": "root-secret-333"}
ORG = "acme"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"


@dataclass(frozen=True)
class PushedImage:
    """An image pushed by :func:`push_image`: its manifest, config and layers as they are stored."""

    name: str
    tag: str
    manifest: bytes
    config: bytes
    layers: tuple[Layer, ...]
    architecture: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def size(self) -> int:
        """Compressed bytes: manifest + config + layers (what the index counts for this image)."""
        return len(self.manifest) + len(self.config) + sum(len(layer.blob) for layer in self.layers)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": len(self.manifest)}


@dataclass(frozen=True)
class PushedManifest:
    """An index or artifact manifest pushed by :func:`push_index` or :func:`push_artifact`."""

    name: str
    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.body)


# -- apps -------------------------------------------------------------------------------------------------------


def catalog_settings(tmp_path: Path, *, token: bool = False, database_url: str | None = None) -> Settings:
    """Filesystem storage under ``tmp_path/data``; the account database (and index) next to it unless
    ``database_url`` names another one."""
    auth = AuthSettings(
        mode="token" if token else "none",
        state_dir=tmp_path / "state",
        database_url=database_url,
        bcrypt_rounds=4,
    )
    return Settings(storage=FilesystemStorage(root=tmp_path / "data"), auth=auth)


def app_of(client: Client) -> web.Application:
    """The application behind a test client."""
    app: web.Application | None = getattr(client.server, "app", None)
    assert app is not None
    return app


def index_of(client: Client) -> Index:
    """The metadata index of the client's app."""
    from catalog import keys

    return app_of(client)[keys.INDEX]


def engine_of(client: Client) -> AsyncEngine:
    """The database engine of the client's app (the catalog's tables live there)."""
    from catalog import keys

    return app_of(client)[keys.ENGINE]


@pytest.fixture
async def catalog_client(aiohttp_client: ClientFactory, tmp_path: Path) -> Client:
    """An open registry (no auth) on filesystem storage, with its metadata index in SQLite under ``tmp_path``."""
    return await aiohttp_client(create_app(catalog_settings(tmp_path)))


@pytest.fixture
async def token_catalog_client(aiohttp_client: ClientFactory, tmp_path: Path) -> Client:
    """A token-mode registry with users alice, bob and root (site admin) and org ``acme`` (alice: admin)."""
    from auth.guard import GUARD

    client = await aiohttp_client(create_app(catalog_settings(tmp_path, token=True)))
    accounts = app_of(client)[GUARD].accounts
    for name, password in PASSWORDS.items():
        await accounts.add_user(name, password, admin=name == "root", actor="test")
    await accounts.add_org(ORG, actor="test")
    await accounts.set_member(ORG, "alice", "admin", actor="test")
    return client


# -- credentials ------------------------------------------------------------------------------------------------


def basic(user: str, password: str | None = None) -> dict[str, str]:
    """``Authorization: Basic`` for ``user`` (password from ``PASSWORDS`` unless given)."""
    secret = password if password is not None else PASSWORDS[user]
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def auth_headers(client: Client, user: str | None, *scopes: str) -> dict[str, str]:
    """Bearer headers for ``user`` (None: anonymous) with ``scopes`` from the app's token service."""
    query = [("service", "dockyard"), *[("scope", scope) for scope in scopes]]
    resp = await client.get("/auth/token", params=query, headers=basic(user) if user else {})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


# -- pushing ----------------------------------------------------------------------------------------------------


async def push_blob(client: Client, name: str, data: bytes, headers: Mapping[str, str] | None = None) -> str:
    """A monolithic blob upload; asserts 201 and returns the digest."""
    digest = sha256_digest(data)
    resp = await client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data, headers=dict(headers or {}))
    assert resp.status == 201, await resp.text()
    return digest


async def put_manifest(
    client: Client, name: str, reference: str, body: bytes, media_type: str, headers: Mapping[str, str] | None = None
) -> str:
    """PUT a manifest; asserts 201 and returns its digest."""
    resp = await client.put(
        f"/v2/{name}/manifests/{reference}", data=body, headers={**(headers or {}), "Content-Type": media_type}
    )
    assert resp.status == 201, await resp.text()
    return str(resp.headers["Docker-Content-Digest"])


def files_layer(files: Mapping[str, bytes], comment: str | None = None) -> Layer:
    """A gzipped tar layer holding ``files`` (paths relative to ``/``, parent directories added)."""
    entries: dict[str, TarEntry] = {}
    for path, data in files.items():
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth]) + "/"
            entries.setdefault(directory, TarEntry(directory, "dir"))
        entries["/".join(parts)] = TarEntry("/".join(parts), "file", data, mode=0o644)
    return layer_from_entries(entries.values(), comment or f"COPY {' '.join(sorted(files))} /")


async def push_image(
    client: Client,
    name: str,
    tag: str | None,
    files: Mapping[str, bytes],
    *,
    architecture: str = "amd64",
    base: Sequence[Layer] = (),
    labels: Mapping[str, str] | None = None,
    process: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> PushedImage:
    """Push an image: ``base`` layers, then one layer of ``files``; its config has one history entry per layer
    (``created_by`` is the layer's comment) and ``labels`` or a ``process`` section. ``tag`` None pushes by
    digest only (e.g. a child of an index)."""
    layers = (*base, files_layer(files))
    config = image_config(layers, architecture, labels, process)
    for blob in (config, *(layer.blob for layer in layers)):
        await push_blob(client, name, blob, headers)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [layer.descriptor() for layer in layers],
        }
    )
    await put_manifest(client, name, tag or sha256_digest(manifest), manifest, OCI_MANIFEST, headers)
    return PushedImage(name, tag or "", manifest, config, tuple(layers), architecture)


def platform_of(architecture: str) -> dict[str, str]:
    """The ``platform`` of an index entry for ``architecture`` (arm64 gets variant v8, as image_config does)."""
    return {"os": "linux", "architecture": architecture, **({"variant": "v8"} if architecture == "arm64" else {})}


async def push_index(
    client: Client,
    name: str,
    tag: str,
    images: Sequence[PushedImage],
    headers: Mapping[str, str] | None = None,
) -> PushedManifest:
    """Push an OCI index over ``images`` (already pushed to ``name``), one platform per image, under ``tag``."""
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**image.descriptor(), "platform": platform_of(image.architecture)} for image in images],
        }
    )
    await put_manifest(client, name, tag, index, OCI_INDEX, headers)
    return PushedManifest(name, index, OCI_INDEX)


async def push_artifact(
    client: Client,
    name: str,
    subject: PushedImage | PushedManifest,
    artifact_type: str,
    payload: bytes,
    *,
    annotations: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> PushedManifest:
    """Push an artifact (empty config, one ``payload`` layer) whose subject is ``subject``, by digest."""
    for blob in (EMPTY_CONFIG, payload):
        await push_blob(client, name, blob, headers)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_JSON, "digest": sha256_digest(EMPTY_CONFIG), "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256_digest(payload), "size": len(payload)}],
        "subject": {"mediaType": _media_type(subject), "digest": subject.digest, "size": len(_body(subject))},
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    body = canonical_json(doc)
    await put_manifest(client, name, sha256_digest(body), body, OCI_MANIFEST, headers)
    return PushedManifest(name, body, OCI_MANIFEST)


def _media_type(pushed: PushedImage | PushedManifest) -> str:
    return OCI_MANIFEST if isinstance(pushed, PushedImage) else pushed.media_type


def _body(pushed: PushedImage | PushedManifest) -> bytes:
    return pushed.manifest if isinstance(pushed, PushedImage) else pushed.body


def manifest_json(pushed: PushedImage | PushedManifest) -> dict[str, Any]:
    """The pushed manifest, parsed."""
    doc: dict[str, Any] = json.loads(_body(pushed))
    return doc

"""A tag's details from the stored bytes: per platform its layers with the history that made them, its config
summary and its manifest; the tag's referrers with their annotations.

Reads go through the OCI store (``store.manifests.get`` for manifests, ``store.blobs.read_small`` for configs, both
cached in memory by the store), never through the storage layout. Matching history to layers follows the image
spec: every ``history`` entry without ``empty_layer: true`` belongs to the next layer in order; entries with
``empty_layer: true`` (``ENV``, ``WORKDIR``, ...) attach to the next layer as ``empty_layer_history``, and those
after the last layer (typically ``CMD``/``ENTRYPOINT``) go to ``PlatformDetail.trailing_history``. A config that is
missing, larger than ``MAX_CONFIG_BYTES`` or not JSON gives layers without history and an empty config summary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from catalog import describe
from catalog.errors import NotFound
from catalog.views import ImageConfigSummary, Layer, Platform, PlatformDetail, Referrer, TagDetail, TagSummary
from registry.errors import RegistryError
from registry.reference import parse_digest
from registry.store import Store
from storage.errors import StorageError

__all__ = ["MAX_CONFIG_BYTES", "config_summary", "layers_with_history", "tag_detail"]

MAX_CONFIG_BYTES = 4 << 20


async def tag_detail(store: Store, repository: str, tag: TagSummary, referrers: Sequence[Any]) -> TagDetail:
    """The details of ``tag`` (already known to the index); ``referrers``: rows with ``digest``, ``media_type``,
    ``artifact_type`` of the manifests whose subject is the tag's digest. ``NotFound`` when storage lost the
    manifest."""
    document, body = await _manifest(store, repository, tag.digest)
    platforms = tag.platforms or _own_platform(tag, document)
    return TagDetail(
        repository=repository,
        tag=tag,
        manifest_json=_pretty(body),
        platforms=[await _platform_detail(store, repository, p, (tag.digest, document, body)) for p in platforms],
        referrers=[await _referrer(store, repository, row) for row in referrers],
    )


def layers_with_history(layers: Sequence[dict[str, Any]], history: Sequence[Any]) -> tuple[list[Layer], list[str]]:
    """The manifest's ``layers`` with the config's ``history`` matched to them (see the module docstring), and the
    empty-layer history after the last layer."""
    commands: list[tuple[str | None, list[str]]] = []
    pending: list[str] = []
    for entry in history:
        if not isinstance(entry, dict):
            continue
        created_by = str(entry.get("created_by") or entry.get("comment") or "")
        if entry.get("empty_layer"):
            pending.append(created_by)
        else:
            commands.append((created_by or None, pending))
            pending = []
    if len(commands) < len(layers):
        commands += [(None, [])] * (len(layers) - len(commands))
    matched = [_layer(descriptor, *commands[i]) for i, descriptor in enumerate(layers)]
    extra = [cmd for created_by, before in commands[len(layers) :] for cmd in (*before, created_by or "") if cmd]
    return matched, extra + pending


def config_summary(config: dict[str, Any]) -> ImageConfigSummary:
    """The interesting part of an image config: the same summary the index stores (``catalog.describe``)."""
    return ImageConfigSummary.model_validate(describe.config_summary(config))


async def _platform_detail(
    store: Store, repository: str, platform: Platform, top: tuple[str, dict[str, Any], bytes]
) -> PlatformDetail:
    """``top``: the tag's own manifest (digest, document, bytes), not read twice when it is the platform's."""
    if platform.digest == top[0]:
        document, body = top[1], top[2]
    else:
        document, body = await _manifest(store, repository, platform.digest)
    config = await _config(store, document)
    layers, trailing = layers_with_history(_descriptors(document.get("layers")), config.get("history") or [])
    return PlatformDetail(
        platform=platform,
        layers=layers,
        config=config_summary(config),
        manifest_json=_pretty(body),
        trailing_history=trailing,
    )


async def _manifest(store: Store, repository: str, digest: str) -> tuple[dict[str, Any], bytes]:
    try:
        stored = await store.manifests.get(repository, parse_digest(digest))
    except (RegistryError, StorageError):
        raise NotFound(f"manifest {digest} of repository {repository!r} is not in storage") from None
    return _json_object(stored.body), stored.body


async def _config(store: Store, manifest: dict[str, Any]) -> dict[str, Any]:
    descriptor = manifest.get("config")
    if not isinstance(descriptor, dict) or not 0 < int(descriptor.get("size") or 0) <= MAX_CONFIG_BYTES:
        return {}
    try:
        return _json_object(await store.blobs.read_small(parse_digest(str(descriptor.get("digest")))))
    except (RegistryError, StorageError):
        return {}


async def _referrer(store: Store, repository: str, row: Any) -> Referrer:
    try:
        stored = await store.manifests.get(repository, parse_digest(row.digest))
        body: bytes | None = stored.body
    except (RegistryError, StorageError):
        body = None
    annotations = _json_object(body).get("annotations") if body else None
    return Referrer(
        digest=row.digest,
        media_type=row.media_type,
        artifact_type=row.artifact_type,
        size=len(body) if body else 0,
        annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def _own_platform(tag: TagSummary, document: dict[str, Any]) -> list[Platform]:
    """A platform for an image manifest the index recorded none for (unknown os/architecture)."""
    if not isinstance(document.get("layers"), list) or "config" not in document:
        return []
    return [Platform(os="", architecture="", digest=tag.digest, size=tag.size)]


def _layer(descriptor: dict[str, Any], created_by: str | None, before: list[str]) -> Layer:
    return Layer(
        digest=str(descriptor.get("digest") or ""),
        media_type=str(descriptor.get("mediaType") or ""),
        size=int(descriptor.get("size") or 0),
        created_by=created_by,
        empty_layer_history=before,
    )


def _descriptors(value: Any) -> list[dict[str, Any]]:
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")

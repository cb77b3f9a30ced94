"""What the index records of one stored manifest, read from the OCI store: :func:`describe`.

Pure reads, no database. An image manifest's facts come from its JSON and its config blob; an index's from its
JSON and its children (child manifests read from the same repository). Sizes are compressed bytes as stored:

- ``blobs``: the distinct digests the manifest references with their sizes — an image's config and layers; an
  index's child manifests (their own bytes) and everything those reference;
- ``size``: the manifest's own bytes plus ``blobs``;
- ``platforms`` and ``config``: the JSON shapes documented in :mod:`catalog.models`.

An image whose ``artifactType`` is set, or whose config is not an image config (a signature, an SBOM, a Helm
chart), is an artifact: ``artifact_type`` set, no platforms, empty config. Attestation manifests inside an index
(``vnd.docker.reference.type``) are not platforms. Malformed config fields are left out, never raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.manifests import INDEX_TYPES, Descriptor, ImageIndex, ImageManifest
from registry.reference import Digest, parse_digest
from registry.store import Store

__all__ = ["IMAGE_CONFIG_TYPES", "BlobRef", "ManifestFacts", "config_summary", "describe"]

IMAGE_CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a bigger "config" is not an image config worth summarising
MAX_DEPTH = 2  # an index of indexes of images is as deep as anyone goes
_ATTESTATION = "vnd.docker.reference.type"
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class BlobRef:
    """A digest a manifest references, with its size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True)
class ManifestFacts:
    """Everything the index stores of one manifest (see the module docstring)."""

    digest: str
    media_type: str
    artifact_type: str | None
    subject: str | None
    body_size: int
    blobs: tuple[BlobRef, ...]
    platforms: list[dict[str, Any]]
    config: dict[str, Any]

    @property
    def size(self) -> int:
        return self.body_size + sum(blob.size for blob in self.blobs)


async def describe(store: Store, name: str, digest: Digest | str, depth: int = 0) -> ManifestFacts:
    """The facts of manifest ``digest`` of repository ``name``. Raises the store's errors (``RegistryError``
    MANIFEST_UNKNOWN, storage errors) and ``ValueError`` for stored bytes that are not a manifest."""
    stored = await store.manifests.get(name, parse_digest(str(digest)))
    doc = json.loads(stored.body)
    if stored.media_type in INDEX_TYPES:
        index = ImageIndex.model_validate(doc)
        return await _describe_index(store, name, str(stored.digest), len(stored.body), stored.media_type, index, depth)
    image = ImageManifest.model_validate(doc)
    return await _describe_image(store, str(stored.digest), len(stored.body), stored.media_type, image)


async def _describe_image(
    store: Store, digest: str, body_size: int, media_type: str, image: ImageManifest
) -> ManifestFacts:
    blobs = _distinct([image.config, *image.layers])
    artifact_type = image.artifactType or (
        None if image.config.mediaType in IMAGE_CONFIG_TYPES else image.config.mediaType or None
    )
    subject = image.subject.digest if image.subject else None
    size = body_size + sum(blob.size for blob in blobs)
    if artifact_type is not None:
        return ManifestFacts(digest, media_type, artifact_type, subject, body_size, blobs, [], {})
    doc = await _read_config(store, image.config)
    platform = {**_platform(doc), "digest": digest, "size": size}
    return ManifestFacts(digest, media_type, None, subject, body_size, blobs, [platform], config_summary(doc))


async def _describe_index(
    store: Store, name: str, digest: str, body_size: int, media_type: str, index: ImageIndex, depth: int
) -> ManifestFacts:
    blobs: list[BlobRef] = []
    platforms: list[dict[str, Any]] = []
    for entry in index.manifests:
        child = await _child(store, name, entry, depth)
        blobs += [BlobRef(entry.digest, child.body_size if child else entry.size), *(child.blobs if child else ())]
        if child is not None and not _is_attestation(entry) and child.artifact_type is None and child.platforms:
            platforms.append({**child.platforms[0], **_declared_platform(entry), "digest": child.digest})
    subject = index.subject.digest if index.subject else None
    return ManifestFacts(
        digest, media_type, index.artifactType, subject, body_size, _distinct_refs(blobs), platforms, {}
    )


async def _child(store: Store, name: str, entry: Descriptor, depth: int) -> ManifestFacts | None:
    """The facts of an index entry, or None when it is not in the repository (or nested too deep)."""
    if depth >= MAX_DEPTH:
        return None
    try:
        return await describe(store, name, entry.digest, depth + 1)
    except Exception:  # a missing or unreadable child leaves a gap, not a failed index entry
        return None


async def _read_config(store: Store, config: Descriptor) -> dict[str, Any]:
    """The image config JSON, or ``{}`` when it is missing, too big or not a JSON object."""
    try:
        doc = json.loads(await store.blobs.read_small(parse_digest(config.digest), MAX_CONFIG_BYTES))
    except Exception:  # a config we can't read is summarised as empty; the manifest is still indexed
        return {}
    return doc if isinstance(doc, dict) else {}


def config_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` JSON of :mod:`catalog.models` from an image config (Docker or OCI)."""
    section = doc.get("config")
    process: dict[str, Any] = section if isinstance(section, dict) else {}
    ports = process.get("ExposedPorts")
    labels = process.get("Labels")
    return {
        "entrypoint": _strings_or_none(process.get("Entrypoint")),
        "cmd": _strings_or_none(process.get("Cmd")),
        "env": _strings_or_none(process.get("Env")) or [],
        "working_dir": _text(process.get("WorkingDir")),
        "user": _text(process.get("User")),
        "exposed_ports": sorted(str(port) for port in ports) if isinstance(ports, dict) else [],
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        "created": _timestamp(doc.get("created")),
    }


def _platform(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "os": _text(doc.get("os")) or "",
        "architecture": _text(doc.get("architecture")) or "",
        "variant": _text(doc.get("variant")),
    }


def _declared_platform(entry: Descriptor) -> dict[str, Any]:
    """The ``platform`` an index declares for an entry (it wins over the child's config), or ``{}``."""
    declared = (entry.model_extra or {}).get("platform")
    if not isinstance(declared, dict) or not _text(declared.get("os")) or not _text(declared.get("architecture")):
        return {}
    return _platform(declared)


def _is_attestation(entry: Descriptor) -> bool:
    return _ATTESTATION in (entry.annotations or {})


def _distinct(descriptors: list[Descriptor]) -> tuple[BlobRef, ...]:
    return _distinct_refs([BlobRef(d.digest, d.size) for d in descriptors])


def _distinct_refs(refs: list[BlobRef]) -> tuple[BlobRef, ...]:
    """``refs`` without repeated digests, in first-seen order."""
    seen: dict[str, BlobRef] = {}
    for ref in refs:
        seen.setdefault(ref.digest, ref)
    return tuple(seen.values())


def _strings_or_none(value: object) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [str(item) for item in value]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _timestamp(value: object) -> str | None:
    """An RFC 3339 time normalised to UTC ISO format (nanoseconds cut to micro), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat()

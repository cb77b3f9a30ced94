"""Manifest media types, the models of manifests and indexes, and the checks made on every push.

:func:`parse_manifest` turns the pushed bytes into a :class:`ParsedManifest` (what the store must check
exists, and what the referrers API reports) or raises MANIFEST_INVALID. The bytes themselves are never
re-serialised: the registry stores and serves exactly what was pushed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest, parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


class Descriptor(BaseModel):
    """An OCI content descriptor; unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    mediaType: str = ""
    digest: str
    size: int = Field(ge=0)
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    artifactType: str | None = None

    def parsed_digest(self) -> Digest:
        try:
            return parse_digest(self.digest)
        except RegistryError as exc:
            raise RegistryError(ErrorCode.MANIFEST_INVALID, f"descriptor digest: {exc.message}") from None

    @property
    def is_foreign(self) -> bool:
        """Foreign/non-distributable layers (or layers with ``urls``) need not be in the registry."""
        return self.mediaType in FOREIGN_LAYER_TYPES or bool(self.urls)


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    schemaVersion: int
    mediaType: str | None = None
    artifactType: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


class ImageManifest(_Common):
    """OCI image manifest or Docker schema 2 manifest."""

    config: Descriptor
    layers: list[Descriptor]


class ImageIndex(_Common):
    """OCI image index or Docker manifest list."""

    manifests: list[Descriptor]


@dataclass
class ParsedManifest:
    """What the store needs to know of a pushed manifest."""

    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, message, detail)


def _media_type(doc: dict[str, Any], content_type: str) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = content_type.split(";", 1)[0].strip().lower()
    if declared and header not in _GENERIC_TYPES and header != declared:
        raise _invalid(f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}")
    media_type = declared or (header if header not in _GENERIC_TYPES else "")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type in DOCKER_SCHEMA1:
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    return media_type


def _load(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or MANIFEST_INVALID: not JSON, not an object, or nested deeper than the
    decoder's recursion limit (``[[[[…`` far inside the manifest size limit raises RecursionError)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise _invalid("manifest is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    return doc


def parse_manifest(body: bytes, content_type: str) -> ParsedManifest:
    """Validate a pushed manifest; raise MANIFEST_INVALID with a readable message when it is not one."""
    doc = _load(body)
    media_type = _media_type(doc, content_type)
    model: type[ImageIndex] | type[ImageManifest] = ImageIndex if media_type in INDEX_TYPES else ImageManifest
    try:
        parsed = model.model_validate(doc)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        raise _invalid("manifest does not follow its schema", errors) from None
    if parsed.schemaVersion != 2:
        raise _invalid(f"schemaVersion must be 2, not {parsed.schemaVersion}")
    result = ParsedManifest(media_type, subject=parsed.subject, annotations=parsed.annotations)
    if isinstance(parsed, ImageIndex):
        result.children = parsed.manifests
        result.artifact_type = parsed.artifactType
    else:
        result.blobs = [parsed.config, *(layer for layer in parsed.layers if not layer.is_foreign)]
        result.artifact_type = parsed.artifactType or parsed.config.mediaType
    for descriptor in [*result.blobs, *result.children, *([result.subject] if result.subject else [])]:
        descriptor.parsed_digest()
    return result


def referrer_descriptor(parsed: ParsedManifest, digest: Digest, size: int) -> dict[str, Any]:
    """The descriptor the referrers API lists for a manifest with a ``subject``."""
    entry: dict[str, Any] = {"mediaType": parsed.media_type, "digest": str(digest), "size": size}
    if parsed.artifact_type:
        entry["artifactType"] = parsed.artifact_type
    if parsed.annotations:
        entry["annotations"] = parsed.annotations
    return entry


def subject_of(body: bytes) -> Digest | None:
    """The subject digest of stored manifest bytes (already validated when pushed), or None."""
    try:
        subject = json.loads(body).get("subject")
        return parse_digest(subject["digest"]) if isinstance(subject, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError, RegistryError):
        return None

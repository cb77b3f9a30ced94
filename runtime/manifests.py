"""What the registry client and the image store share, without the HTTP stack: media types, the
:class:`DistributionError` family, platforms, descriptors, manifests and the :class:`Progress` protocol.

Kept apart from :mod:`runtime.distribution` (asyncio, http.client, ssl) so that the image store and ``dockyard run``
import none of that unless they talk to a registry.
"""

from __future__ import annotations

import hashlib
import json
import platform as host_platform_module
from dataclasses import dataclass, field
from typing import Any, Protocol

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
MAX_MANIFEST_BYTES = 4 << 20


class DistributionError(Exception):
    """Base of every registry client error; the message is one line."""


class RegistryUnreachableError(DistributionError):
    """The registry (or its token service) could not be reached, or the connection broke."""


class RegistryResponseError(DistributionError):
    """The registry answered with an unexpected status; ``status`` and the spec's ``code`` are kept."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationError(RegistryResponseError):
    """Credentials are missing, wrong, or do not grant what was asked."""


class NotFoundError(RegistryResponseError):
    """The manifest, tag, blob or repository does not exist (or is not visible to the caller)."""


class BlobVerificationError(DistributionError):
    """A downloaded blob's size or digest differs from its descriptor; nothing of it was kept."""


class ManifestError(DistributionError):
    """A manifest is malformed, does not match its digest, or has no entry for the wanted platform."""


class InvalidPlatformError(DistributionError, ValueError):
    """A ``--platform`` value that is not ``os/architecture[/variant]``."""


# -- platforms ---------------------------------------------------------------------------------------

_MACHINES = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as in an index's ``platform`` object."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8``, ``linux/amd64`` (docker's ``--platform``); raises InvalidPlatformError otherwise."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidPlatformError(f"invalid platform {text!r}: expected os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform, named the way images name it (``x86_64`` → ``linux/amd64``)."""
        machine = host_platform_module.machine().lower()
        architecture, variant = _MACHINES.get(machine, (machine, None))
        return cls("linux", architecture, variant)

    @classmethod
    def from_json(cls, doc: Any) -> Platform | None:
        if not isinstance(doc, dict) or not doc.get("os") or not doc.get("architecture"):
            return None
        variant = doc.get("variant")
        return cls(str(doc["os"]), str(doc["architecture"]), str(variant) if variant else None)

    def accepts(self, other: Platform) -> bool:
        """True when an index entry for ``other`` runs here. Without a variant asked for, any variant does."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return self.variant is None or self.variant == (other.variant or _DEFAULT_VARIANTS.get(other.architecture))


# -- manifests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or a child manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: a descriptor is not a JSON object")
        digest, size = doc.get("digest"), doc.get("size")
        if not isinstance(digest, str) or ":" not in digest or not isinstance(size, int) or size < 0:
            raise ManifestError(f"{where}: a descriptor lacks a valid digest or size")
        found = doc.get("annotations")
        annotations = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
        return cls(str(doc.get("mediaType", "")), digest, size, Platform.from_json(doc.get("platform")), annotations)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as served (``body``), its media type and digest.

    ``index_digest`` is set by :meth:`RegistryClient.resolve` when the manifest was picked from an index."""

    media_type: str
    digest: str
    body: bytes
    doc: dict[str, Any] = field(repr=False, compare=False)
    index_digest: str | None = None

    @classmethod
    def parse(cls, body: bytes, digest: str, header_type: str = "", where: str = "manifest") -> Manifest:
        """Parse ``body``; the media type is the document's own, else ``header_type``. Raises ManifestError."""
        try:
            doc = json.loads(body)
        except ValueError:
            raise ManifestError(f"{where} ({digest}) is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"{where} ({digest}) is not a JSON object")
        media_type = str(doc.get("mediaType") or header_type.split(";")[0].strip())
        if doc.get("schemaVersion") != 2:
            raise ManifestError(
                f"{where} ({digest}) has schemaVersion {doc.get('schemaVersion')!r}; only 2 is supported"
            )
        if media_type not in IMAGE_TYPES | INDEX_TYPES:
            media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
        manifest = cls(media_type, digest, body, doc)
        _ = manifest.children if manifest.is_index else (manifest.config, manifest.layers)  # validate now
        return manifest

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def config(self) -> Descriptor:
        return Descriptor.from_json(self.doc.get("config"), f"config of manifest {self.digest}")

    @property
    def layers(self) -> list[Descriptor]:
        layers = self.doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"manifest {self.digest} has no layers list")
        return [Descriptor.from_json(layer, f"layer of manifest {self.digest}") for layer in layers]

    @property
    def children(self) -> list[Descriptor]:
        children = self.doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestError(f"index {self.digest} has no manifests list")
        return [Descriptor.from_json(child, f"entry of index {self.digest}") for child in children]

    def blobs(self) -> list[Descriptor]:
        """Config then layers: every blob an image manifest needs."""
        return [self.config, *self.layers]


def select_platform(index: Manifest, wanted: Platform, where: str) -> Descriptor:
    """The index entry for ``wanted`` (the first match; attestation entries never match). Raises ManifestError
    listing what the index offers."""
    entries = [c for c in index.children if c.media_type not in INDEX_TYPES]
    for entry in entries:
        if entry.platform is not None and wanted.accepts(entry.platform):
            return entry
    offered = ", ".join(str(e.platform) for e in entries if e.platform and e.platform.os != "unknown") or "none"
    raise ManifestError(f"{where}: no manifest for platform {wanted} in the index (available: {offered})")


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# -- progress ----------------------------------------------------------------------------------------


class Progress(Protocol):
    """Per-blob transfer events. ``action`` is ``download`` or ``upload``; ``outcome`` is ``done``,
    ``exists`` (nothing moved), ``mounted`` (cross-repository mount) or ``failed``."""

    def begin(self, digest: str, total: int, action: str) -> None: ...

    def update(self, digest: str, done: int) -> None: ...

    def end(self, digest: str, outcome: str) -> None: ...


class NullProgress:
    """Reports nothing."""

    def begin(self, digest: str, total: int, action: str) -> None:
        """Ignore the start of a transfer."""

    def update(self, digest: str, done: int) -> None:
        """Ignore progress."""

    def end(self, digest: str, outcome: str) -> None:
        """Ignore the end of a transfer."""

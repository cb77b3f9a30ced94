"""Docker-style image references: ``busybox``, ``127.0.0.1:5000/ns/app:1.0``, ``host/ns/app@sha256:...``.

:func:`parse` follows docker's own normalisation (``distribution/reference``'s ``ParseNormalizedNamed`` and
``TagNameOnly``), so a name means here what it means to ``docker pull``:

- The first ``/``-separated component is a registry host when it contains ``.`` or ``:``, is ``localhost``,
  or has an upper-case letter; otherwise the registry is ``docker.io`` (``index.docker.io`` is folded into it).
- On ``docker.io`` a one-component repository gets the ``library/`` prefix (``busybox`` → ``library/busybox``).
- Without tag and digest the tag is ``latest``; with only a digest there is no tag; both may be given.
- Repository components are lower case ``[a-z0-9]`` runs joined by ``.``, ``_``, ``__`` or dashes; the whole
  name (host included) is at most 255 characters; a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; a digest is
  ``algorithm:hex`` and a ``sha256`` digest has exactly 64 lower-case hex digits; a bare 64-hex name is refused
  (it would be mistaken for an image id).

Every problem raises :class:`InvalidReferenceError` with one line naming the input and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidReferenceError(ValueError):
    """An image reference docker would refuse; the message is one line naming the input."""


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference. ``tag`` and ``digest`` may both be set; at least one is, after :func:`parse`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What follows ``/manifests/`` in the API: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """The host to contact: Docker Hub's API lives at ``registry-1.docker.io``; others as named."""
        return DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def familiar(self) -> str:
        """Docker's short spelling: ``busybox:latest`` for ``docker.io/library/busybox:latest``."""
        text = str(self)
        if self.registry != DEFAULT_REGISTRY:
            return text
        text = text.removeprefix(f"{DEFAULT_REGISTRY}/")
        return text.removeprefix(OFFICIAL_PREFIX) if self.repository.count("/") == 1 else text

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` and no digest."""
        _check_tag(tag, tag)
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest`` (no tag)."""
        _check_digest(digest, digest)
        return replace(self, tag=None, digest=digest)


def parse(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise ``text`` like ``docker pull`` does; ``default_tag`` is used when neither a tag nor a
    digest is given (None keeps the reference untagged). Raises :class:`InvalidReferenceError`."""
    if not text:
        raise InvalidReferenceError("invalid reference format: empty reference")
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReferenceError(f"invalid repository name ({text}): cannot specify 64-byte hexadecimal strings")
    registry, remainder = _split_registry(text)
    rest, digest = _split_digest(text, remainder)
    repository, tag = _split_tag(rest)
    _check_repository(text, registry, repository)
    if tag is not None:
        _check_tag(text, tag)
    if digest is not None:
        _check_digest(text, digest)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, repository, tag, digest)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]``, with or without a port."""
    hostname = split_host_port(host)[0].lower()
    if hostname in ("localhost", "::1"):
        return True
    parts = hostname.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


def split_host_port(host: str) -> tuple[str, int | None]:
    """``("127.0.0.1", 5000)`` for ``127.0.0.1:5000``; ``("::1", None)`` for ``[::1]``; the port may be absent."""
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def _split_registry(text: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: the registry and what follows it (still with tag and digest)."""
    first, sep, rest = text.partition("/")
    looks_like_host = any(c in first for c in ".:") or first == "localhost" or first.lower() != first
    if not sep or not looks_like_host:
        registry, remainder = DEFAULT_REGISTRY, text
    else:
        registry, remainder = first, rest
    if registry == LEGACY_DEFAULT_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in remainder.partition("@")[0]:
        remainder = OFFICIAL_PREFIX + remainder
    if not _DOMAIN_RE.fullmatch(registry):
        raise InvalidReferenceError(f"invalid reference format: {text!r}: bad registry host {registry!r}")
    return registry, remainder


def _split_digest(text: str, remainder: str) -> tuple[str, str | None]:
    rest, sep, digest = remainder.partition("@")
    if not sep:
        return rest, None
    if not digest:
        raise InvalidReferenceError(f"invalid reference format: {text!r}: empty digest")
    return rest, digest


def _split_tag(rest: str) -> tuple[str, str | None]:
    """Split ``repo:tag``; a ``:`` before the last ``/`` belongs to the name, never to a tag."""
    name, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        return rest, None
    return name, tag


def _check_repository(text: str, registry: str, repository: str) -> None:
    if repository.lower() != repository:
        raise InvalidReferenceError(f"invalid reference format: {text!r}: repository name must be lowercase")
    if not _PATH_RE.fullmatch(repository):
        raise InvalidReferenceError(f"invalid reference format: {text!r}: bad repository name {repository!r}")
    if len(registry) + 1 + len(repository) > NAME_MAX:
        raise InvalidReferenceError(
            f"invalid reference format: {text!r}: repository name must not be more than {NAME_MAX} characters"
        )


def _check_tag(text: str, tag: str) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReferenceError(f"invalid reference format: {text!r}: bad tag {tag!r}")


def _check_digest(text: str, digest: str) -> None:
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidReferenceError(f"invalid reference format: {text!r}: bad digest {digest!r}")
    algorithm, _, hex_part = digest.partition(":")
    expected = _DIGEST_LENGTHS.get(algorithm)
    if expected is not None and (len(hex_part) != expected or hex_part.lower() != hex_part):
        raise InvalidReferenceError(
            f"invalid reference format: {text!r}: a {algorithm} digest has {expected} lower-case hex digits"
        )

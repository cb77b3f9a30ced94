"""Repository names, tags and digests: the spec's grammar, parsing and the :class:`Digest` type.

Everything that reaches the storage layout passes through here first, so a name or tag that could
traverse paths (``..``, ``/``, encoded dots) never gets further than a 400.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import ErrorCode, RegistryError

NAME_MAX = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest of a supported algorithm, e.g. ``sha256:<64 lowercase hex>``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Any:
        """A new hashlib object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def parse_digest(text: str) -> Digest:
    """Parse a digest or raise DIGEST_INVALID: malformed, unsupported algorithm, or wrong length/case."""
    if not DIGEST_RE.fullmatch(text):
        raise RegistryError(ErrorCode.DIGEST_INVALID, f"invalid digest {text[:200]!r}")
    algorithm, encoded = text.split(":", 1)
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID,
            f"unsupported digest algorithm {algorithm!r} (supported: {', '.join(ALGORITHMS)})",
        )
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise RegistryError(
            ErrorCode.DIGEST_INVALID, f"{algorithm} digests are {length} lowercase hex characters: {text[:200]!r}"
        )
    return Digest(algorithm, encoded)


def check_name(name: str) -> str:
    """Return ``name`` if it follows the spec's repository-name grammar and length limit, else NAME_INVALID."""
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise RegistryError(ErrorCode.NAME_INVALID, f"invalid repository name {name[:300]!r}", {"name": name[:300]})
    return name


def is_tag(text: str) -> bool:
    """True if ``text`` is a valid tag."""
    return TAG_RE.fullmatch(text) is not None


def parse_reference(reference: str) -> Digest | str:
    """A manifest reference: a :class:`Digest` if it contains ``:``, else a validated tag."""
    if ":" in reference:
        return parse_digest(reference)
    if not is_tag(reference):
        raise RegistryError(ErrorCode.TAG_INVALID, f"invalid tag {reference[:200]!r}")
    return reference

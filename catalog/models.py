"""The catalog's metadata index: tables in the account database (same ``Base``, same Alembic migrations).

::

    catalog_repositories  name PK, namespace (first path component, "" for top-level names), created_at,
                          pushed_at (newest manifest or tag push), tag_count, size (compressed bytes of the
                          distinct blobs and manifests the repository references), pull_count, last_pull_at
    ├── catalog_tags      (repository → catalog_repositories CASCADE, name) PK, digest, pushed_at, last_pull_at;
    │                     (repository, pushed_at) indexed for "tags by push time"
    ├── catalog_manifests (repository CASCADE, digest) PK, media_type, artifact_type, subject (referrers),
    │                     size (this manifest + what it references, compressed), platforms JSON, config JSON,
    │                     pushed_at
    └── catalog_blobs     (repository CASCADE, manifest, digest) PK, size; (digest, repository) indexed (shared vs
                          unique bytes), (repository, digest, size) covering a repository's sizes

Storage stays the source of truth: ``dockyard index rebuild`` recreates every row from it. Visibility and the
description live in the account table ``repositories`` (no row there: public, no description). JSON shapes:

- ``platforms``: ``[{"os", "architecture", "variant", "digest", "size"}]`` (an image manifest: one entry, its
  own digest; an index: one per child image manifest; artifacts: ``[]``);
- ``config``: an image's config summary ``{"entrypoint", "cmd", "env", "working_dir", "user", "exposed_ports",
  "labels", "created"}`` (``{}`` for indexes and artifacts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import REPOSITORY_NAME_LENGTH, Base

__all__ = ["IndexedBlobRow", "IndexedManifestRow", "IndexedRepositoryRow", "IndexedTagRow"]

DIGEST_LENGTH = 150
TAG_LENGTH = 128
MEDIA_TYPE_LENGTH = 255


def _repository() -> Mapped[str]:
    return mapped_column(
        String(REPOSITORY_NAME_LENGTH), ForeignKey("catalog_repositories.name", ondelete="CASCADE"), primary_key=True
    )


class IndexedRepositoryRow(Base):
    """One repository that has (or had, until its last manifest went) content in storage."""

    __tablename__ = "catalog_repositories"

    name: Mapped[str] = mapped_column(String(REPOSITORY_NAME_LENGTH), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    pushed_at: Mapped[datetime] = mapped_column(index=True)
    tag_count: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    pull_count: Mapped[int] = mapped_column(BigInteger, index=True)
    last_pull_at: Mapped[datetime | None]


class IndexedTagRow(Base):
    """A tag and the manifest digest it points to."""

    __tablename__ = "catalog_tags"
    __table_args__ = (Index(None, "repository", "pushed_at"),)

    repository: Mapped[str] = _repository()
    name: Mapped[str] = mapped_column(String(TAG_LENGTH), primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    pushed_at: Mapped[datetime]
    last_pull_at: Mapped[datetime | None]


class IndexedManifestRow(Base):
    """A manifest (image, index or artifact) stored in a repository."""

    __tablename__ = "catalog_manifests"
    __table_args__ = (Index(None, "repository", "subject"),)

    repository: Mapped[str] = _repository()
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(MEDIA_TYPE_LENGTH))
    artifact_type: Mapped[str | None] = mapped_column(String(MEDIA_TYPE_LENGTH))
    subject: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
    size: Mapped[int] = mapped_column(BigInteger)
    platforms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    pushed_at: Mapped[datetime]


class IndexedBlobRow(Base):
    """A blob (config or layer) or child manifest that a manifest of the repository references, with its size."""

    __tablename__ = "catalog_blobs"
    # "who else references this digest" (shared vs unique bytes) and a covering index for a repository's sizes
    __table_args__ = (Index(None, "digest", "repository"), Index(None, "repository", "digest", "size"))

    repository: Mapped[str] = _repository()
    manifest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)

"""The catalog's metadata index: repositories, tags, manifests and blobs as stored (see ``catalog/models.py``).

Revision ID: 0002
Revises: 0001
Create Date: 2024-07-01

Written out in full (not imported from ``catalog.models``): a migration must keep creating the same schema when
the models move on. The tables start empty; ``dockyard serve`` fills them from storage on its first start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPOSITORY = sa.String(255)
_DIGEST = sa.String(150)
_MEDIA_TYPE = sa.String(255)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _repository(table: str) -> tuple[sa.Column[str], sa.ForeignKeyConstraint]:
    """The ``repository`` column of a child table and its cascading foreign key to ``catalog_repositories``."""
    name = op.f(f"fk_{table}_repository_catalog_repositories")
    column = sa.Column("repository", _REPOSITORY, nullable=False)
    return column, sa.ForeignKeyConstraint(["repository"], ["catalog_repositories.name"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    """Create the four ``catalog_*`` tables and their indexes."""
    _create_repositories()
    _create_tags()
    _create_manifests()
    _create_blobs()


def _create_repositories() -> None:
    op.create_table(
        "catalog_repositories",
        sa.Column("name", _REPOSITORY, nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _timestamp("pushed_at"),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pull_count", sa.BigInteger(), nullable=False),
        _timestamp("last_pull_at", nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_catalog_repositories")),
    )
    for column in ("namespace", "pushed_at", "pull_count"):
        op.create_index(op.f(f"ix_catalog_repositories_{column}"), "catalog_repositories", [column])


def _create_tags() -> None:
    repository, owner = _repository("catalog_tags")
    op.create_table(
        "catalog_tags",
        repository,
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("digest", _DIGEST, nullable=False),
        _timestamp("pushed_at"),
        _timestamp("last_pull_at", nullable=True),
        owner,
        sa.PrimaryKeyConstraint("repository", "name", name=op.f("pk_catalog_tags")),
    )
    op.create_index(op.f("ix_catalog_tags_repository_pushed_at"), "catalog_tags", ["repository", "pushed_at"])


def _create_manifests() -> None:
    repository, owner = _repository("catalog_manifests")
    op.create_table(
        "catalog_manifests",
        repository,
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("media_type", _MEDIA_TYPE, nullable=False),
        sa.Column("artifact_type", _MEDIA_TYPE, nullable=True),
        sa.Column("subject", _DIGEST, nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _timestamp("pushed_at"),
        owner,
        sa.PrimaryKeyConstraint("repository", "digest", name=op.f("pk_catalog_manifests")),
    )
    op.create_index(op.f("ix_catalog_manifests_repository_subject"), "catalog_manifests", ["repository", "subject"])


def _create_blobs() -> None:
    repository, owner = _repository("catalog_blobs")
    op.create_table(
        "catalog_blobs",
        repository,
        sa.Column("manifest", _DIGEST, nullable=False),
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        owner,
        sa.PrimaryKeyConstraint("repository", "manifest", "digest", name=op.f("pk_catalog_blobs")),
    )
    op.create_index(op.f("ix_catalog_blobs_digest_repository"), "catalog_blobs", ["digest", "repository"])
    op.create_index(op.f("ix_catalog_blobs_repository_digest_size"), "catalog_blobs", ["repository", "digest", "size"])


def downgrade() -> None:
    """Drop the index tables (``dockyard index rebuild`` recreates their content after an upgrade)."""
    op.drop_index(op.f("ix_catalog_blobs_repository_digest_size"), table_name="catalog_blobs")
    op.drop_index(op.f("ix_catalog_blobs_digest_repository"), table_name="catalog_blobs")
    op.drop_index(op.f("ix_catalog_manifests_repository_subject"), table_name="catalog_manifests")
    op.drop_index(op.f("ix_catalog_tags_repository_pushed_at"), table_name="catalog_tags")
    for table in ("catalog_blobs", "catalog_manifests", "catalog_tags"):
        op.drop_table(table)
    for column in ("pull_count", "pushed_at", "namespace"):
        op.drop_index(op.f(f"ix_catalog_repositories_{column}"), table_name="catalog_repositories")
    op.drop_table("catalog_repositories")

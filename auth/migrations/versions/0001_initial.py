"""The initial account database: namespaces, users, organizations, memberships, repositories, tokens, audit.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Written out in full (not imported from ``auth.models``): a migration must keep creating the same schema when
the models move on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = sa.String(64)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _owner(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    """``table.column`` refers to ``parent.name``; deleting the parent row deletes this one."""
    name = op.f(f"fk_{table}_{column}_{parent}")
    return sa.ForeignKeyConstraint([column], [f"{parent}.name"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    """Create every table of the account database."""
    op.create_table(
        "namespaces",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'org')", name=op.f("ck_namespaces_kind")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_namespaces")),
    )
    _create_accounts()
    _create_repositories()
    _create_access_tokens()
    _create_audit_events()


def _create_accounts() -> None:
    op.create_table(
        "users",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _owner("users", "name", "namespaces"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "organizations",
        sa.Column("name", _NAME, nullable=False),
        _timestamp("created_at"),
        _owner("organizations", "name", "namespaces"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_organizations")),
    )
    op.create_table(
        "memberships",
        sa.Column("org_name", _NAME, nullable=False),
        sa.Column("user_name", _NAME, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.CheckConstraint("role IN ('read', 'write', 'admin')", name=op.f("ck_memberships_role")),
        _owner("memberships", "org_name", "organizations"),
        _owner("memberships", "user_name", "users"),
        sa.PrimaryKeyConstraint("org_name", "user_name", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_user_name"), "memberships", ["user_name"])


def _create_repositories() -> None:
    op.create_table(
        "repositories",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("namespace", _NAME, nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint("visibility IN ('public', 'private')", name=op.f("ck_repositories_visibility")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_repositories")),
    )
    op.create_index(op.f("ix_repositories_namespace"), "repositories", ["namespace"])


def _create_access_tokens() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_name", _NAME, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _owner("access_tokens", "user_name", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
    )
    op.create_index(op.f("ix_access_tokens_user_name"), "access_tokens", ["user_name"])


def _create_audit_events() -> None:
    op.create_table(
        "audit_events",
        # BIGINT on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        _timestamp("at"),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_target_id"), "audit_events", ["target", "id"])


def downgrade() -> None:
    """Drop every table (all account data is lost)."""
    for index, table in [
        ("ix_audit_events_target_id", "audit_events"),
        ("ix_access_tokens_user_name", "access_tokens"),
        ("ix_repositories_namespace", "repositories"),
        ("ix_memberships_user_name", "memberships"),
    ]:
        op.drop_index(op.f(index), table_name=table)
    for table in ["audit_events", "access_tokens", "repositories", "memberships", "organizations", "users"]:
        op.drop_table(table)
    op.drop_table("namespaces")

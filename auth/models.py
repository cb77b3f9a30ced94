"""The tables of the account database, as SQLAlchemy 2 declarative models (SQLite and PostgreSQL alike).

::

    namespaces      name PK, kind 'user'|'org'         one row per user or organization: the names share ONE space
    ├── users       name PK → namespaces ON DELETE CASCADE, password_hash, is_admin, created_at
    │   └── access_tokens  id PK (public id), user_name → users CASCADE, name, secret_digest, read_only, ...
    └── organizations  name PK → namespaces CASCADE, created_at
        └── memberships  (org_name → organizations CASCADE, user_name → users CASCADE) PK, role
    repositories    name PK, namespace (indexed; no foreign key: "" for top-level names, and a repository outlives
                    the user or organization that owned it, as its images do in storage), visibility, description
    audit_events    id PK (increasing), at, actor, action, target, detail JSON; (target, id) indexed
    leases          name PK, holder, expires_at: one process at a time does a job (``gc``) among replicas
    login_failures  id PK, key ('client:<address>' or 'account:<name>'), at; (key, at) and (at) indexed: the
                    failed logins of the last window, shared by every worker and replica (``auth.ratelimit``)

Deleting a namespace row deletes the user or organization, and with it their tokens and memberships; SQLite
enforces that only with ``PRAGMA foreign_keys=ON`` (the store turns it on). Times are timezone-aware UTC on both
databases (``timestamptz`` on PostgreSQL, ISO text on SQLite, see ``UTCDateTime``). Names follow one naming
convention so that migrations can refer to constraints on both databases. The schema is created by the Alembic
migrations in ``auth/migrations``; a test checks they match these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccessTokenRow",
    "AuditEventRow",
    "Base",
    "LeaseRow",
    "LoginFailureRow",
    "MembershipRow",
    "NamespaceRow",
    "OrganizationRow",
    "RepositoryRow",
    "UTCDateTime",
    "UserRow",
]

NAME_LENGTH = 64
REPOSITORY_NAME_LENGTH = 255
FAILURE_KEY_LENGTH = 255

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every database.

    Binding a naive datetime is a programming error (``ValueError``). SQLite has no time zones, so values are
    stored there as naive UTC and read back with ``tzinfo=UTC``; PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base; ``Base.metadata`` is the target of the migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _owner(table: str) -> ForeignKey:
    return ForeignKey(f"{table}.name", ondelete="CASCADE")


class NamespaceRow(Base):
    """A taken name: every user and every organization has one row here, so a name can't be both."""

    __tablename__ = "namespaces"
    __table_args__ = (CheckConstraint("kind IN ('user', 'org')", name="kind"),)

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))


class UserRow(Base):
    """A user account; ``password_hash`` is bcrypt (``$2b$``, or ``$2y$``/``$2a$`` when imported)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), _owner("namespaces"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    is_admin: Mapped[bool]
    created_at: Mapped[datetime]


class OrganizationRow(Base):
    """An organization: a namespace whose repositories its members share."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), _owner("namespaces"), primary_key=True)
    created_at: Mapped[datetime]


class MembershipRow(Base):
    """A user's role in an organization: 'read', 'write' or 'admin'."""

    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("role IN ('read', 'write', 'admin')", name="role"),)

    org_name: Mapped[str] = mapped_column(String(NAME_LENGTH), _owner("organizations"), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(NAME_LENGTH), _owner("users"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(8))


class RepositoryRow(Base):
    """A repository's account-side record (who may see it); its images live in the registry's storage."""

    __tablename__ = "repositories"
    __table_args__ = (CheckConstraint("visibility IN ('public', 'private')", name="visibility"),)

    name: Mapped[str] = mapped_column(String(REPOSITORY_NAME_LENGTH), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    visibility: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AccessTokenRow(Base):
    """A personal access token: only the SHA-256 of its secret is kept."""

    __tablename__ = "access_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(NAME_LENGTH), _owner("users"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_digest: Mapped[str] = mapped_column(String(64))
    read_only: Mapped[bool]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class AuditEventRow(Base):
    """One change: who (``actor``), what (``action``, ``detail``), to what (``target``) and when (``at``)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "target", "id"),)

    # BIGINT on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class LeaseRow(Base):
    """Who holds the named lease, until when (see ``auth.leases``)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]


class LoginFailureRow(Base):
    """One failed login, counted under ``key`` (a client address or an account name, see ``auth.ratelimit``)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(FAILURE_KEY_LENGTH))
    at: Mapped[datetime] = mapped_column(index=True)

"""The account database: users, organizations, memberships, repositories, personal access tokens, audit events.

``AccountStore`` is the only way in. It runs on SQLite (``sqlite+aiosqlite:////abs/path/accounts.db``, the default:
a file in the data directory, WAL journal, foreign keys on) and PostgreSQL (``postgresql+asyncpg://...``, for
several replicas), migrates the schema to the newest revision when opened, and returns frozen dataclasses, never
database rows. Authorization decisions are the caller's: the store answers questions (``namespace_role``,
``authenticate``) and records who changed what (``actor``), it does not check that the actor was allowed to.

Names of users and organizations share one namespace and are single repository path components:
``^[a-z0-9]+(?:[._-][a-z0-9]+)*$``, 2 to 64 characters. Every mutating method writes its change and one audit
event in the same transaction (``import_htpasswd``: one per imported user); audit events never hold passwords or
token secrets. ``actor`` is whoever made the change (a user name, "system", ...; 1 to 255 characters, else
``InvalidInput`` and no change). Errors are ``AccountError`` subclasses whose message is one readable line.

Write transactions on SQLite start with ``BEGIN IMMEDIATE``: writers queue on the database lock (up to the busy
timeout) instead of failing when a read transaction tries to become a write one. On PostgreSQL, inserts that may
race (``ensure_repository``, ``set_member``) use ``ON CONFLICT``, and concurrent migrations wait on an advisory lock.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth.database import WRITE, DatabaseError, DatabaseURLError, insert, open_database
from auth.models import (
    AccessTokenRow,
    AuditEventRow,
    Base,
    MembershipRow,
    NamespaceRow,
    OrganizationRow,
    RepositoryRow,
    UserRow,
)
from auth.passwords import (
    MAX_PASSWORD_BYTES,
    HtpasswdError,
    hash_password,
    new_token_secret,
    parse_htpasswd,
    parse_token_secret,
    token_digest,
    token_matches,
    verify_password,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

__all__ = [
    "ROLES",
    "VISIBILITIES",
    "AccessToken",
    "AccountError",
    "AccountStore",
    "AlreadyExists",
    "AuditEvent",
    "Authenticated",
    "InvalidInput",
    "Membership",
    "NotFound",
    "Organization",
    "Repository",
    "Role",
    "User",
    "Visibility",
]

Role = Literal["read", "write", "admin"]
Visibility = Literal["public", "private"]
ROLES: tuple[Role, ...] = get_args(Role)
"""The roles from least to most: ``ROLES.index(a) < ROLES.index(b)`` means ``b`` may do all ``a`` may."""
VISIBILITIES: tuple[Visibility, ...] = get_args(Visibility)

MIN_PASSWORD_LENGTH = 8
MAX_DESCRIPTION_LENGTH = 25_000
MAX_AUDIT_EVENTS = 10_000

_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")  # the OCI distribution-spec name grammar
_TOKEN_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_SECRET_KEY = re.compile(r"password|secret", re.IGNORECASE)


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True)
class Organization:
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Membership:
    org: str
    user: str
    role: Role


@dataclass(frozen=True)
class Repository:
    """``name`` is the full repository name; ``namespace`` its first component, "" for a top-level name."""

    name: str
    namespace: str
    visibility: Visibility
    description: str
    created_at: datetime


@dataclass(frozen=True)
class AccessToken:
    """A personal access token as its owner sees it later: everything but the secret. ``id`` is public."""

    id: str
    user: str
    name: str
    read_only: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Authenticated:
    """A successful ``authenticate``; ``token_id`` is set when a personal access token was the secret."""

    user: User
    read_only: bool
    token_id: str | None


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AccountError(Exception):
    """Base of the store's errors; ``str(exc)`` is one readable line."""


class NotFound(AccountError):
    """The user, organization, membership, repository or token does not exist."""


class AlreadyExists(AccountError):
    """The name is taken (by a user or an organization), or a concurrent change conflicted."""


class InvalidInput(AccountError):
    """A name, password, role, visibility, URL or file that is not acceptable."""


class AccountStore:
    """The account database. Open with ``await AccountStore.open(url)``; ``await store.close()`` when done.

    Safe to share between the tasks of one event loop and between processes on the same database.
    """

    def __init__(self, engine: AsyncEngine, bcrypt_rounds: int) -> None:
        self._engine = engine
        self._rounds = bcrypt_rounds
        self._reader = async_sessionmaker(engine, expire_on_commit=False)
        self._writer = async_sessionmaker(engine.execution_options(**{WRITE: True}), expire_on_commit=False)
        self._dummy: str | None = None

    @classmethod
    async def open(cls, url: str, *, bcrypt_rounds: int = 12) -> AccountStore:
        """Connect to ``url`` and migrate the schema to the newest revision (idempotent).

        ``bcrypt_rounds`` (4..31) is the cost of new password hashes. A SQLite file (and its directory) is created
        when missing, readable by its owner only. Raises ``InvalidInput`` for an unsupported URL and
        ``AccountError`` when the database can't be reached or migrated.
        """
        if not 4 <= bcrypt_rounds <= 31:
            raise InvalidInput(f"bcrypt_rounds must be between 4 and 31, not {bcrypt_rounds}")
        try:
            engine = await open_database(url)
        except DatabaseURLError as exc:
            raise InvalidInput(str(exc)) from exc
        except DatabaseError as exc:
            raise AccountError(str(exc)) from exc
        return cls(engine, bcrypt_rounds)

    @property
    def engine(self) -> AsyncEngine:
        """The engine of the account database (what shares it, such as the login limits, uses it too)."""
        return self._engine

    async def close(self) -> None:
        """Close every connection; the store is unusable afterwards."""
        await self._engine.dispose()

    # -- users ------------------------------------------------------------------------------------------------

    async def add_user(self, name: str, password: str, *, admin: bool = False, actor: str = "system") -> User:
        """Create a user. ``AlreadyExists`` if a user or organization has the name; ``InvalidInput`` for a bad
        name or a password shorter than 8 characters or longer than 72 bytes."""
        _check_name(name)
        hashed = await self._hash(password)
        async with self._write(f"the name {name!r} is already taken") as session:
            await _claim(session, name, "user")
            row = UserRow(name=name, password_hash=hashed, is_admin=admin, created_at=_now())
            session.add(row)
            _record(session, actor, "user.add", name, {"admin": admin})
        return _user(row)

    async def set_password(self, name: str, password: str, *, actor: str) -> None:
        """Replace a user's password (``NotFound``, ``InvalidInput`` as for ``add_user``). Tokens stay valid."""
        hashed = await self._hash(password)
        async with self._write() as session:
            row = await _require_user(session, name)
            row.password_hash = hashed
            _record(session, actor, "user.passwd", name, {})

    async def set_admin(self, name: str, admin: bool, *, actor: str) -> None:
        """Make a user a site admin (admin everywhere) or take that away. ``NotFound`` for an unknown user."""
        async with self._write() as session:
            row = await _require_user(session, name)
            row.is_admin = admin
            _record(session, actor, "user.admin", name, {"admin": admin})

    async def remove_user(self, name: str, *, actor: str) -> None:
        """Delete a user with their tokens and memberships; their name becomes free. Repository records in
        their namespace stay (their images are still in storage) for an admin to remove. ``NotFound``."""
        async with self._write() as session:
            await _require_user(session, name)
            await session.execute(delete(NamespaceRow).where(NamespaceRow.name == name))
            _record(session, actor, "user.remove", name, {})

    async def user(self, name: str) -> User | None:
        """The user called ``name``, or None (also for a name that could not be a user's)."""
        if not _valid_name(name):
            return None
        async with self._reader() as session:
            row = await session.get(UserRow, name)
        return _user(row) if row else None

    async def users(self) -> list[User]:
        """Every user, sorted by name."""
        async with self._reader() as session:
            rows = await session.scalars(select(UserRow).order_by(UserRow.name))
            return [_user(row) for row in rows]

    async def authenticate(self, name: str, secret: str) -> Authenticated | None:
        """The user ``name`` if ``secret`` is their password or one of their personal access tokens, else None.

        A token must belong to ``name`` and not be revoked; using it updates its ``last_used_at`` and gives
        ``read_only`` and ``token_id`` from the token. Password checks run bcrypt in a worker thread, also against
        a dummy hash when the user does not exist, so the answer takes about as long either way.
        """
        token_id = parse_token_secret(secret)
        if token_id is not None:
            found = await self._authenticate_token(name, token_id, secret)
            if found is not None:
                return found
        return await self._authenticate_password(name, secret)

    async def _authenticate_password(self, name: str, password: str) -> Authenticated | None:
        row = await self._user_row(name)
        hashed = row.password_hash if row else await self._dummy_hash()
        matches = await asyncio.to_thread(verify_password, password, hashed)
        return Authenticated(_user(row), read_only=False, token_id=None) if row and matches else None

    async def _authenticate_token(self, name: str, token_id: str, secret: str) -> Authenticated | None:
        async with self._reader() as session:
            token = await session.get(AccessTokenRow, token_id)
            user = await session.get(UserRow, name) if token and token.user_name == name else None
        if token is None or user is None or not token_matches(secret, token.secret_digest):
            return None
        async with self._write() as session:
            touched = await session.scalar(
                update(AccessTokenRow)
                .where(AccessTokenRow.id == token_id)
                .values(last_used_at=_now())
                .returning(AccessTokenRow.id)
            )
        if touched is None:  # revoked (or the user removed) since we read it
            return None
        return Authenticated(_user(user), read_only=token.read_only, token_id=token.id)

    async def _user_row(self, name: str) -> UserRow | None:
        if not _valid_name(name):
            return None
        async with self._reader() as session:
            return await session.get(UserRow, name)

    # -- organizations ----------------------------------------------------------------------------------------

    async def add_org(self, name: str, *, actor: str) -> Organization:
        """Create an organization. ``AlreadyExists`` if a user or organization has the name; ``InvalidInput``."""
        _check_name(name)
        async with self._write(f"the name {name!r} is already taken") as session:
            await _claim(session, name, "org")
            row = OrganizationRow(name=name, created_at=_now())
            session.add(row)
            _record(session, actor, "org.add", name, {})
        return _organization(row)

    async def remove_org(self, name: str, *, actor: str) -> None:
        """Delete an organization and its memberships; repository records stay (see ``remove_user``)."""
        async with self._write() as session:
            await _require_org(session, name)
            await session.execute(delete(NamespaceRow).where(NamespaceRow.name == name))
            _record(session, actor, "org.remove", name, {})

    async def org(self, name: str) -> Organization | None:
        """The organization called ``name``, or None."""
        if not _valid_name(name):
            return None
        async with self._reader() as session:
            row = await session.get(OrganizationRow, name)
        return _organization(row) if row else None

    async def orgs(self) -> list[Organization]:
        """Every organization, sorted by name."""
        async with self._reader() as session:
            rows = await session.scalars(select(OrganizationRow).order_by(OrganizationRow.name))
            return [_organization(row) for row in rows]

    async def set_member(self, org: str, user: str, role: Role, *, actor: str) -> None:
        """Add ``user`` to ``org`` with ``role``, or change their role. ``NotFound`` for an unknown org or user,
        ``InvalidInput`` for a role other than read, write, admin."""
        _check_choice("role", role, ROLES)
        async with self._write() as session:
            await _require_org(session, org)
            await _require_user(session, user)
            upsert = self._insert(MembershipRow).values(org_name=org, user_name=user, role=role)
            await session.execute(
                upsert.on_conflict_do_update(index_elements=["org_name", "user_name"], set_={"role": role})
            )
            _record(session, actor, "org.member.set", org, {"user": user, "role": role})

    async def remove_member(self, org: str, user: str, *, actor: str) -> None:
        """Take ``user`` out of ``org``. ``NotFound`` for an unknown org or a user who is not a member."""
        async with self._write() as session:
            await _require_org(session, org)
            removed = await session.scalar(
                delete(MembershipRow)
                .where(MembershipRow.org_name == org, MembershipRow.user_name == user)
                .returning(MembershipRow.user_name)
            )
            if removed is None:
                raise NotFound(f"{user!r} is not a member of organization {org!r}")
            _record(session, actor, "org.member.remove", org, {"user": user})

    async def members(self, org: str) -> list[Membership]:
        """The members of ``org``, sorted by user name. ``NotFound`` for an unknown organization."""
        async with self._reader() as session:
            await _require_org(session, org)
            query = select(MembershipRow).where(MembershipRow.org_name == org).order_by(MembershipRow.user_name)
            return [_membership(row) for row in await session.scalars(query)]

    async def user_orgs(self, user: str) -> list[Membership]:
        """The memberships of ``user``, sorted by organization. ``NotFound`` for an unknown user."""
        async with self._reader() as session:
            await _require_user(session, user)
            query = select(MembershipRow).where(MembershipRow.user_name == user).order_by(MembershipRow.org_name)
            return [_membership(row) for row in await session.scalars(query)]

    async def namespace_role(self, namespace: str, user: str | None) -> Role | None:
        """What ``user`` may do in ``namespace`` ("" is the top level): None for anonymous or unknown users and
        strangers; "admin" for site admins (everywhere) and in the user's own namespace; an organization member's
        role in that organization."""
        row = await self._user_row(user) if user is not None else None
        if row is None:
            return None
        if row.is_admin or namespace == row.name:
            return "admin"
        if not _valid_name(namespace):
            return None
        async with self._reader() as session:
            member = await session.get(MembershipRow, (namespace, row.name))
        return cast(Role, member.role) if member else None

    async def namespace_exists(self, namespace: str) -> bool:
        """Whether a user or an organization is called ``namespace``."""
        if not _valid_name(namespace):
            return False
        async with self._reader() as session:
            return await session.get(NamespaceRow, namespace) is not None

    # -- repositories -----------------------------------------------------------------------------------------

    async def repository(self, name: str) -> Repository | None:
        """The repository record of ``name`` (a full name such as ``acme/app``), or None."""
        if not _valid_repository(name):
            return None
        async with self._reader() as session:
            row = await session.get(RepositoryRow, name)
        return _repository(row) if row else None

    async def ensure_repository(self, name: str, visibility: Visibility, *, actor: str) -> Repository:
        """The repository ``name``, created with ``visibility`` if it does not exist yet (its first push).

        An existing repository is returned unchanged, whatever ``visibility`` says; concurrent calls (tasks,
        processes, replicas) create one record and one audit event. ``InvalidInput`` for a name outside the OCI
        grammar or longer than 255 characters, or an unknown visibility.
        """
        namespace = _check_repository(name)
        _check_choice("visibility", visibility, VISIBILITIES)
        existing = await self.repository(name)
        if existing is not None:
            return existing
        async with self._write() as session:
            values = {"name": name, "namespace": namespace, "visibility": visibility, "description": ""}
            insert = self._insert(RepositoryRow).values(**values, created_at=_now())
            created = await session.scalar(
                insert.on_conflict_do_nothing(index_elements=["name"]).returning(RepositoryRow.name)
            )
            if created is not None:
                _record(session, actor, "repo.create", name, {"visibility": visibility})
            row = (await session.scalars(select(RepositoryRow).where(RepositoryRow.name == name))).one()
        return _repository(row)

    async def set_visibility(self, name: str, visibility: Visibility, *, actor: str) -> Repository:
        """Make a repository public or private. ``NotFound``; ``InvalidInput`` for an unknown visibility."""
        _check_choice("visibility", visibility, VISIBILITIES)
        async with self._write() as session:
            row = await _require_repository(session, name)
            _record(session, actor, "repo.visibility", name, {"from": row.visibility, "to": visibility})
            row.visibility = visibility
        return _repository(row)

    async def set_description(self, name: str, description: str, *, actor: str) -> Repository:
        """Replace a repository's description (at most 25,000 characters). ``NotFound``, ``InvalidInput``."""
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidInput(f"the description is longer than {MAX_DESCRIPTION_LENGTH} characters")
        async with self._write() as session:
            row = await _require_repository(session, name)
            row.description = description
            _record(session, actor, "repo.description", name, {"length": len(description)})
        return _repository(row)

    async def remove_repository(self, name: str, *, actor: str) -> None:
        """Delete a repository's record (its images are the registry's business). ``NotFound``."""
        async with self._write() as session:
            row = await _require_repository(session, name)
            await session.delete(row)
            _record(session, actor, "repo.remove", name, {})

    async def repositories(self, *, namespace: str | None = None) -> list[Repository]:
        """Every repository (or those of ``namespace``; "" for top-level names), sorted by name."""
        query = select(RepositoryRow).order_by(RepositoryRow.name)
        if namespace is not None:
            query = query.where(RepositoryRow.namespace == namespace)
        async with self._reader() as session:
            return [_repository(row) for row in await session.scalars(query)]

    # -- personal access tokens -------------------------------------------------------------------------------

    async def create_token(
        self, user: str, name: str, *, read_only: bool = False, actor: str
    ) -> tuple[AccessToken, str]:
        """A new token for ``user`` and its secret ``dyp_<id>_<random>``, returned this once: only its SHA-256
        is stored. ``name`` (1..100 characters, no control characters) describes it; names need not be unique.
        ``NotFound`` for an unknown user, ``InvalidInput`` for a bad name."""
        if _TOKEN_NAME.fullmatch(name) is None:
            raise InvalidInput(f"invalid token name {name!r}: use 1 to 100 characters, no control characters")
        token_id, secret = new_token_secret()
        async with self._write() as session:
            await _require_user(session, user)
            digest = token_digest(secret)
            row = AccessTokenRow(id=token_id, user_name=user, name=name, secret_digest=digest, read_only=read_only)
            row.created_at = _now()
            session.add(row)
            _record(session, actor, "token.create", user, {"token_id": token_id, "name": name, "read_only": read_only})
        return _token(row), secret

    async def revoke_token(self, user: str, token_id: str, *, actor: str) -> None:
        """Delete ``user``'s token ``token_id``; it stops working at once. ``NotFound`` if they have no such token."""
        async with self._write() as session:
            revoked = await session.scalar(
                delete(AccessTokenRow)
                .where(AccessTokenRow.id == token_id, AccessTokenRow.user_name == user)
                .returning(AccessTokenRow.id)
            )
            if revoked is None:
                raise NotFound(f"user {user!r} has no token {token_id!r}")
            _record(session, actor, "token.revoke", user, {"token_id": token_id})

    async def tokens(self, user: str) -> list[AccessToken]:
        """``user``'s tokens, oldest first. ``NotFound`` for an unknown user."""
        async with self._reader() as session:
            await _require_user(session, user)
            query = (
                select(AccessTokenRow)
                .where(AccessTokenRow.user_name == user)
                .order_by(AccessTokenRow.created_at, AccessTokenRow.id)
            )
            return [_token(row) for row in await session.scalars(query)]

    # -- audit ------------------------------------------------------------------------------------------------

    async def audit(self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Record an event that is not one of the store's own changes (those are recorded already).

        ``detail`` must be JSON-serializable; values under keys containing "password" or "secret" are replaced by
        "[redacted]". ``InvalidInput`` for an empty or too long actor/target (255) or action (64), or bad detail.
        """
        async with self._write() as session:
            _record(session, actor, action, target, detail or {})

    async def audit_events(self, limit: int = 100, *, target: str | None = None) -> list[AuditEvent]:
        """The newest ``limit`` (1..10,000) events, newest first; only those about ``target`` if given."""
        if not 1 <= limit <= MAX_AUDIT_EVENTS:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_EVENTS}, not {limit}")
        query = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if target is not None:
            query = query.where(AuditEventRow.target == target)
        async with self._reader() as session:
            return [_event(row) for row in await session.scalars(query)]

    # -- htpasswd ---------------------------------------------------------------------------------------------

    async def import_htpasswd(self, path: Path, *, actor: str) -> int:
        """Import the users of an htpasswd file made with ``htpasswd -B`` and return how many there were.

        Their bcrypt hashes are kept, so their passwords keep working; an existing user gets their hash replaced.
        All or nothing: ``InvalidInput`` (naming the line for a non-bcrypt hash, or the user for a name dockyard
        does not accept) and ``AlreadyExists`` (a name taken by an organization) import nobody.
        """
        entries = await _read_htpasswd(path)
        for name, _hash in entries:
            if not _valid_name(name):
                raise InvalidInput(f"{path}: user {name!r} has a name dockyard does not accept ({_NAME_RULE})")
        async with self._write(f"{path}: a name is already taken") as session:
            for name, hashed in entries:
                await _import_user(session, name, hashed, actor)
        return len(entries)

    # -- helpers ----------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self, conflict: str | None = None) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed on success; a constraint violation (a concurrent change won the race)
        becomes ``AlreadyExists(conflict)``."""
        try:
            async with self._writer.begin() as session:
                yield session
        except IntegrityError as exc:
            raise AlreadyExists(conflict or "a concurrent change conflicted with this one; try again") from exc

    def _insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT with the dialect's ``ON CONFLICT`` support (both databases spell it the same way)."""
        return insert(self._engine, model)

    async def _hash(self, password: str) -> str:
        _check_password(password)
        return await asyncio.to_thread(hash_password, password, self._rounds)

    async def _dummy_hash(self) -> str:
        """A hash of a random password at the configured cost, to spend the same time on unknown users."""
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(hash_password, secrets.token_urlsafe(16), self._rounds)
        return self._dummy


# -- validation -------------------------------------------------------------------------------------------------

_NAME_RULE = "2 to 64 lowercase letters or digits, optionally joined by single '.', '_' or '-'"


def _valid_name(name: str) -> bool:
    return 2 <= len(name) <= 64 and _NAME.fullmatch(name) is not None


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise InvalidInput(f"invalid name {name!r}: use {_NAME_RULE}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInput(f"invalid {what} {value!r}: use one of {', '.join(choices)}")


def _valid_repository(name: str) -> bool:
    return len(name) <= 255 and _REPOSITORY.fullmatch(name) is not None


def _check_repository(name: str) -> str:
    """The namespace of repository ``name`` ("" for a top-level name); ``InvalidInput`` for a bad name."""
    if not _valid_repository(name):
        raise InvalidInput(f"invalid repository name {name!r}")
    namespace, slash, _rest = name.partition("/")
    if slash and len(namespace) > 64:
        raise InvalidInput(f"invalid repository name {name!r}: the namespace is longer than 64 characters")
    return namespace if slash else ""


def _check_audit_fields(actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    for what, value, longest in (("actor", actor, 255), ("action", action, 64), ("target", target, 255)):
        if not 1 <= len(value) <= longest:
            raise InvalidInput(f"the audit {what} must have 1 to {longest} characters")
    try:
        json.dumps(detail)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the audit detail is not JSON: {exc}") from exc


async def _claim(session: AsyncSession, name: str, kind: Literal["user", "org"]) -> None:
    """Take ``name`` for a new user or organization; ``AlreadyExists`` naming who has it."""
    taken = await session.get(NamespaceRow, name)
    if taken is not None:
        owner = "a user" if taken.kind == "user" else "an organization"
        raise AlreadyExists(f"the name {name!r} is already taken by {owner}")
    session.add(NamespaceRow(name=name, kind=kind))
    await session.flush()  # the rows that refer to it are inserted after it


async def _require_user(session: AsyncSession, name: str) -> UserRow:
    row = await session.get(UserRow, name) if _valid_name(name) else None
    if row is None:
        raise NotFound(f"user {name!r} does not exist")
    return row


async def _require_org(session: AsyncSession, name: str) -> OrganizationRow:
    row = await session.get(OrganizationRow, name) if _valid_name(name) else None
    if row is None:
        raise NotFound(f"organization {name!r} does not exist")
    return row


async def _require_repository(session: AsyncSession, name: str) -> RepositoryRow:
    row = await session.get(RepositoryRow, name) if _valid_repository(name) else None
    if row is None:
        raise NotFound(f"repository {name!r} does not exist")
    return row


async def _import_user(session: AsyncSession, name: str, hashed: str, actor: str) -> None:
    row = await session.get(UserRow, name)
    if row is not None:
        row.password_hash = hashed
        _record(session, actor, "user.passwd", name, {"source": "htpasswd"})
        return
    await _claim(session, name, "user")
    session.add(UserRow(name=name, password_hash=hashed, is_admin=False, created_at=_now()))
    _record(session, actor, "user.add", name, {"admin": False, "source": "htpasswd"})


async def _read_htpasswd(path: Path) -> list[tuple[str, str]]:
    try:
        text_ = await asyncio.to_thread(path.read_text, encoding="utf-8")
        return parse_htpasswd(text_)
    except HtpasswdError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def _record(session: AsyncSession, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    """Add one audit event to the transaction of the change it describes (``InvalidInput`` for a bad event)."""
    _check_audit_fields(actor, action, target, detail)
    session.add(AuditEventRow(at=_now(), actor=actor, action=action, target=target, detail=_redact(detail)))


def _redact(detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` with the values under password- or secret-like keys replaced, nested dicts included."""
    return {
        key: "[redacted]" if _SECRET_KEY.search(key) else _redact(value) if isinstance(value, dict) else value
        for key, value in detail.items()
    }


def _now() -> datetime:
    return datetime.now(UTC)


# -- rows to values ---------------------------------------------------------------------------------------------


def _user(row: UserRow) -> User:
    return User(name=row.name, is_admin=row.is_admin, created_at=row.created_at)


def _organization(row: OrganizationRow) -> Organization:
    return Organization(name=row.name, created_at=row.created_at)


def _membership(row: MembershipRow) -> Membership:
    return Membership(org=row.org_name, user=row.user_name, role=cast(Role, row.role))


def _repository(row: RepositoryRow) -> Repository:
    visibility = cast(Visibility, row.visibility)
    return Repository(row.name, row.namespace, visibility, row.description, row.created_at)


def _token(row: AccessTokenRow) -> AccessToken:
    return AccessToken(row.id, row.user_name, row.name, row.read_only, row.created_at, row.last_used_at)


def _event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(row.id, row.at, row.actor, row.action, row.target, dict(row.detail))

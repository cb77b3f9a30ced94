"""The account store, on SQLite and on PostgreSQL (every test runs once per database, see conftest.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import create_async_engine

import catalog.models  # noqa: F401 - the migrations also create the catalog's tables on auth's Base
from auth import migrations
from auth.accounts import (
    ROLES,
    AccountError,
    AccountStore,
    AlreadyExists,
    InvalidInput,
    Membership,
    NotFound,
    Role,
    User,
)
from auth.models import Base
from tests.support.server import free_port
from tests.support.tools import require_tool

PASSWORD = "correct horse battery"


async def make_user(accounts: AccountStore, name: str, *, admin: bool = False) -> None:
    await accounts.add_user(name, f"{name}-{PASSWORD}", admin=admin, actor="root")


async def actions(accounts: AccountStore, target: str | None = None) -> list[str]:
    """The actions of the audit log, oldest first."""
    return [event.action for event in reversed(await accounts.audit_events(1000, target=target))]


async def run_on_database(url: str, work: Callable[[Connection], Any]) -> Any:
    """Run ``work`` on a plain connection of our own to ``url`` (not the store's)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def dump_tables(connection: Connection) -> str:
    """Every row of every table, as text."""
    rows = [row for table in Base.metadata.sorted_tables for row in connection.execute(select(table))]
    return repr(rows)


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def htpasswd(path: Path, name: str, password: str, *extra: str) -> None:
    """Add ``name`` to ``path`` with the real ``htpasswd`` (bcrypt at cost 5 unless ``extra`` says otherwise)."""
    create = ["-c"] if not path.exists() else []
    flags = list(extra) or ["-B", "-C", "5"]
    subprocess.run([require_tool("htpasswd"), *create, *flags, "-b", str(path), name, password], check=True)


# -- users ------------------------------------------------------------------------------------------------------


async def test_add_user_and_look_it_up(accounts: AccountStore) -> None:
    before = datetime.now(UTC)
    alice = await accounts.add_user("alice", PASSWORD)
    await accounts.add_user("root", PASSWORD, admin=True)
    assert alice.name == "alice"
    assert not alice.is_admin
    assert alice.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= alice.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert await accounts.user("alice") == alice
    assert await accounts.user("nobody") is None
    assert await accounts.user("Not A Name") is None
    assert [(user.name, user.is_admin) for user in await accounts.users()] == [("alice", False), ("root", True)]


@pytest.mark.parametrize(
    "name", ["a", "A", "Alice", "al ice", "-alice", "alice-", "al..ice", "al/ice", "a" * 65, "", "ålice", "al:ice"]
)
async def test_invalid_names_are_refused(accounts: AccountStore, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid name"):
        await accounts.add_user(name, PASSWORD)
    with pytest.raises(InvalidInput, match="invalid name"):
        await accounts.add_org(name, actor="root")
    assert await accounts.users() == []
    assert await accounts.orgs() == []


@pytest.mark.parametrize("name", ["ab", "a1", "a.b", "a_b", "a-b", "0x1-2.3_4", "a" * 64])
async def test_valid_names_are_accepted(accounts: AccountStore, name: str) -> None:
    assert (await accounts.add_user(name, PASSWORD)).name == name


@pytest.mark.parametrize(("password", "message"), [("", "shorter"), ("1234567", "shorter"), ("x" * 73, "longer")])
async def test_passwords_outside_the_limits_are_refused(accounts: AccountStore, password: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await accounts.add_user("alice", password)
    await accounts.add_user("alice", PASSWORD)
    with pytest.raises(InvalidInput, match=message):
        await accounts.set_password("alice", password, actor="alice")
    assert await accounts.authenticate("alice", PASSWORD) is not None


async def test_names_are_unique_across_users_and_organizations(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.add_org("acme", actor="root")
    with pytest.raises(AlreadyExists, match="'alice' is already taken by a user"):
        await accounts.add_user("alice", PASSWORD)
    with pytest.raises(AlreadyExists, match="'alice' is already taken by a user"):
        await accounts.add_org("alice", actor="root")
    with pytest.raises(AlreadyExists, match="'acme' is already taken by an organization"):
        await accounts.add_user("acme", PASSWORD)
    with pytest.raises(AlreadyExists, match="'acme' is already taken by an organization"):
        await accounts.add_org("acme", actor="root")
    assert [user.name for user in await accounts.users()] == ["alice"]
    assert [org.name for org in await accounts.orgs()] == ["acme"]


async def test_concurrent_adds_of_one_name_create_one_account(accounts: AccountStore) -> None:
    adds = [accounts.add_user("alice", PASSWORD) for _ in range(3)] + [accounts.add_org("alice", actor="x")]
    results = await asyncio.gather(*adds, return_exceptions=True)
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert all(isinstance(result, AlreadyExists) for result in results if isinstance(result, BaseException))
    assert await accounts.namespace_exists("alice")


async def test_unknown_names_are_not_found(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.add_org("acme", actor="root")
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: accounts.set_password("nobody", PASSWORD, actor="root"),
        lambda: accounts.set_admin("nobody", True, actor="root"),
        lambda: accounts.remove_user("nobody", actor="root"),
        lambda: accounts.remove_user("acme", actor="root"),  # an organization is not a user
        lambda: accounts.remove_org("nobody", actor="root"),
        lambda: accounts.remove_org("alice", actor="root"),  # nor a user an organization
        lambda: accounts.members("nobody"),
        lambda: accounts.user_orgs("nobody"),
        lambda: accounts.set_member("nobody", "alice", "read", actor="root"),
        lambda: accounts.set_member("acme", "nobody", "read", actor="root"),
        lambda: accounts.set_member("acme", "acme", "read", actor="root"),
        lambda: accounts.remove_member("acme", "alice", actor="root"),
        lambda: accounts.remove_member("nobody", "alice", actor="root"),
        lambda: accounts.create_token("nobody", "ci", actor="root"),
        lambda: accounts.revoke_token("alice", "0123456789abcdef", actor="alice"),
        lambda: accounts.tokens("nobody"),
        lambda: accounts.set_visibility("alice/app", "private", actor="alice"),
        lambda: accounts.set_description("alice/app", "text", actor="alice"),
        lambda: accounts.remove_repository("alice/app", actor="alice"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as raised:
            await call()
        assert "\n" not in str(raised.value)
    assert await actions(accounts) == ["user.add", "org.add"]


async def test_set_password(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    await accounts.set_password("alice", "new password", actor="alice")
    assert await accounts.authenticate("alice", PASSWORD) is None
    assert await accounts.authenticate("alice", "new password") is not None
    assert await actions(accounts, "alice") == ["user.add", "user.passwd"]


async def test_set_admin(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.set_admin("alice", True, actor="root")
    assert await accounts.user("alice") == User("alice", True, (await accounts.users())[0].created_at)
    assert await accounts.namespace_role("bob", "alice") == "admin"
    await accounts.set_admin("alice", False, actor="root")
    alice = await accounts.user("alice")
    assert alice is not None
    assert not alice.is_admin
    events = await accounts.audit_events(2, target="alice")
    assert [(event.action, event.detail) for event in events] == [
        ("user.admin", {"admin": False}),
        ("user.admin", {"admin": True}),
    ]


async def test_remove_user_takes_tokens_and_memberships_and_frees_the_name(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    await accounts.add_org("acme", actor="root")
    await accounts.set_member("acme", "alice", "write", actor="root")
    _token, secret = await accounts.create_token("alice", "ci", actor="alice")
    await accounts.ensure_repository("alice/app", "public", actor="alice")

    await accounts.remove_user("alice", actor="root")

    assert await accounts.user("alice") is None
    assert await accounts.authenticate("alice", PASSWORD) is None
    assert await accounts.authenticate("alice", secret) is None
    assert await accounts.members("acme") == []
    assert await accounts.namespace_role("alice", "alice") is None
    assert await accounts.repository("alice/app") is not None  # the images are still in storage
    with pytest.raises(NotFound):
        await accounts.tokens("alice")
    await accounts.add_user("alice", "another password")  # a new account: nothing of the old one comes back
    assert await accounts.tokens("alice") == []
    assert await accounts.user_orgs("alice") == []
    assert await accounts.authenticate("alice", secret) is None


# -- authentication ---------------------------------------------------------------------------------------------


async def test_authenticate_with_a_password(accounts: AccountStore) -> None:
    alice = await accounts.add_user("alice", PASSWORD)
    found = await accounts.authenticate("alice", PASSWORD)
    assert found is not None
    assert (found.user, found.read_only, found.token_id) == (alice, False, None)
    assert await accounts.authenticate("alice", PASSWORD + "!") is None
    assert await accounts.authenticate("alice", "") is None
    assert await accounts.authenticate("nobody", PASSWORD) is None
    assert await accounts.authenticate("Bad Name", PASSWORD) is None
    assert await accounts.authenticate("alice", "x" * 100) is None


async def test_authenticate_with_a_token(accounts: AccountStore) -> None:
    alice = await accounts.add_user("alice", PASSWORD)
    token, secret = await accounts.create_token("alice", "laptop", actor="alice")
    assert token.last_used_at is None
    assert secret.startswith(f"dyp_{token.id}_")

    found = await accounts.authenticate("alice", secret)

    assert found is not None
    assert (found.user, found.read_only, found.token_id) == (alice, False, token.id)
    [used] = await accounts.tokens("alice")
    assert used.last_used_at is not None
    assert used.last_used_at >= token.created_at
    assert used.last_used_at.tzinfo is not None


async def test_a_read_only_token_says_so(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    token, secret = await accounts.create_token("alice", "ci pull", read_only=True, actor="alice")
    assert token.read_only
    found = await accounts.authenticate("alice", secret)
    assert found is not None
    assert found.read_only
    assert found.token_id == token.id


async def test_tokens_fail_when_revoked_foreign_or_tampered(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    await accounts.add_user("bob", PASSWORD)
    token, secret = await accounts.create_token("alice", "ci", actor="alice")
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert await accounts.authenticate("alice", tampered) is None
    assert await accounts.authenticate("bob", secret) is None
    with pytest.raises(NotFound):
        await accounts.revoke_token("bob", token.id, actor="bob")  # not bob's token
    await accounts.revoke_token("alice", token.id, actor="alice")
    assert await accounts.authenticate("alice", secret) is None
    assert await accounts.tokens("alice") == []
    with pytest.raises(NotFound):
        await accounts.revoke_token("alice", token.id, actor="alice")


async def test_a_password_shaped_like_a_token_still_works(accounts: AccountStore) -> None:
    password = "dyp_0123456789abcdef_" + "p" * 43
    await accounts.add_user("alice", password)
    found = await accounts.authenticate("alice", password)
    assert found is not None
    assert found.token_id is None


async def test_tokens_are_listed_oldest_first_without_secrets(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    first, _ = await accounts.create_token("alice", "ci", actor="alice")
    second, _ = await accounts.create_token("alice", "ci", read_only=True, actor="root")
    assert await accounts.tokens("alice") == [first, second]
    assert first.id != second.id
    assert (second.user, second.name, second.read_only) == ("alice", "ci", True)


@pytest.mark.parametrize("name", ["", "a" * 101, "line\nbreak", "tab\there"])
async def test_bad_token_names_are_refused(accounts: AccountStore, name: str) -> None:
    await accounts.add_user("alice", PASSWORD)
    with pytest.raises(InvalidInput, match="token name"):
        await accounts.create_token("alice", name, actor="alice")


# -- organizations ----------------------------------------------------------------------------------------------


async def test_organizations(accounts: AccountStore) -> None:
    acme = await accounts.add_org("acme", actor="root")
    await accounts.add_org("beta", actor="root")
    assert acme.created_at.tzinfo is not None
    assert await accounts.org("acme") == acme
    assert await accounts.org("nobody") is None
    assert await accounts.org("AC ME") is None
    assert [org.name for org in await accounts.orgs()] == ["acme", "beta"]
    await accounts.remove_org("beta", actor="root")
    assert [org.name for org in await accounts.orgs()] == ["acme"]
    assert not await accounts.namespace_exists("beta")
    assert await actions(accounts) == ["org.add", "org.add", "org.remove"]


async def test_memberships(accounts: AccountStore) -> None:
    for name in ("bob", "alice"):
        await make_user(accounts, name)
    for name in ("zeta", "acme"):
        await accounts.add_org(name, actor="root")
    await accounts.set_member("acme", "bob", "read", actor="root")
    await accounts.set_member("acme", "alice", "write", actor="root")
    await accounts.set_member("zeta", "alice", "admin", actor="root")
    await accounts.set_member("acme", "bob", "admin", actor="root")  # a change, not a second membership

    assert await accounts.members("acme") == [Membership("acme", "alice", "write"), Membership("acme", "bob", "admin")]
    assert await accounts.user_orgs("alice") == [
        Membership("acme", "alice", "write"),
        Membership("zeta", "alice", "admin"),
    ]

    await accounts.remove_member("acme", "alice", actor="root")
    assert await accounts.user_orgs("alice") == [Membership("zeta", "alice", "admin")]
    await accounts.remove_org("zeta", actor="root")
    assert await accounts.user_orgs("alice") == []
    events = await accounts.audit_events(10, target="acme")
    assert [(event.action, event.detail) for event in reversed(events)] == [
        ("org.add", {}),
        ("org.member.set", {"user": "bob", "role": "read"}),
        ("org.member.set", {"user": "alice", "role": "write"}),
        ("org.member.set", {"user": "bob", "role": "admin"}),
        ("org.member.remove", {"user": "alice"}),
    ]


async def test_concurrent_member_changes_keep_one_membership(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.add_org("acme", actor="root")
    roles: list[Role] = ["read", "write", "admin"] * 3
    await asyncio.gather(*(accounts.set_member("acme", "alice", role, actor="root") for role in roles))
    [membership] = await accounts.members("acme")
    assert membership.role in ROLES


async def test_invalid_roles_are_refused(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.add_org("acme", actor="root")
    with pytest.raises(InvalidInput, match="invalid role 'owner'"):
        await accounts.set_member("acme", "alice", "owner", actor="root")  # type: ignore[arg-type]
    assert await accounts.members("acme") == []


# -- namespaces -------------------------------------------------------------------------------------------------


def test_roles_are_ordered() -> None:
    assert ROLES == ("read", "write", "admin")


async def test_namespace_roles(accounts: AccountStore) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await make_user(accounts, name)
    await make_user(accounts, "root", admin=True)
    await accounts.add_org("acme", actor="root")
    await accounts.set_member("acme", "alice", "admin", actor="root")
    await accounts.set_member("acme", "bob", "write", actor="root")
    await accounts.set_member("acme", "carol", "read", actor="root")

    expected: dict[tuple[str, str | None], Role | None] = {
        ("alice", "alice"): "admin",  # own namespace
        ("alice", "bob"): None,  # someone else's
        ("acme", "alice"): "admin",
        ("acme", "bob"): "write",
        ("acme", "carol"): "read",
        ("acme", "dave"): None,  # a stranger
        ("acme", None): None,  # anonymous
        ("acme", "nobody"): None,  # not a user
        ("acme", "acme"): None,  # an organization is nobody
        ("", "alice"): None,  # top-level names
        ("", "root"): "admin",  # site admins: everywhere
        ("alice", "root"): "admin",
        ("acme", "root"): "admin",
        ("unclaimed", "root"): "admin",
        ("unclaimed", "alice"): None,
    }
    for (namespace, user), role in expected.items():
        assert await accounts.namespace_role(namespace, user) == role, (namespace, user)


async def test_namespace_exists(accounts: AccountStore) -> None:
    await make_user(accounts, "alice")
    await accounts.add_org("acme", actor="root")
    assert await accounts.namespace_exists("alice")
    assert await accounts.namespace_exists("acme")
    assert not await accounts.namespace_exists("nobody")
    assert not await accounts.namespace_exists("")
    assert not await accounts.namespace_exists("Alice")


# -- repositories -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "namespace"), [("alice/app", "alice"), ("acme/app/sub", "acme"), ("busybox", ""), ("a.b/c__d/e--f", "a.b")]
)
async def test_ensure_repository_creates_it_once(accounts: AccountStore, name: str, namespace: str) -> None:
    created = await accounts.ensure_repository(name, "private", actor="alice")
    assert (created.name, created.namespace, created.visibility, created.description) == (
        name,
        namespace,
        "private",
        "",
    )
    assert created.created_at.tzinfo is not None
    again = await accounts.ensure_repository(name, "public", actor="bob")
    assert again == created  # unchanged, whatever the second caller asked for
    assert await accounts.repository(name) == created
    assert await actions(accounts) == ["repo.create"]


async def test_concurrent_first_pushes_create_one_repository(accounts: AccountStore) -> None:
    results = await asyncio.gather(*(accounts.ensure_repository("alice/app", "public", actor="a") for _ in range(10)))
    assert len(set(results)) == 1
    assert [repo.name for repo in await accounts.repositories()] == ["alice/app"]
    assert await actions(accounts) == ["repo.create"]


async def test_two_stores_on_one_database_create_one_repository(database_url: str) -> None:
    stores = await asyncio.gather(*(AccountStore.open(database_url, bcrypt_rounds=4) for _ in range(2)))
    try:
        names = [f"ns/app{i}" for i in range(5)]
        calls = [store.ensure_repository(name, "public", actor="a") for name in names for store in stores]
        results = await asyncio.gather(*calls)
        assert len(set(results)) == len(names)
        assert [repo.name for repo in await stores[0].repositories()] == names
        assert await actions(stores[1]) == ["repo.create"] * len(names)
    finally:
        await asyncio.gather(*(store.close() for store in stores))


@pytest.mark.parametrize(
    "name", ["", "Alice/app", "a//b", "/app", "app/", "-app", "a/-b", "a b", "a" * 256, "a" * 65 + "/app", "a:b"]
)
async def test_invalid_repository_names_are_refused(accounts: AccountStore, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid repository name"):
        await accounts.ensure_repository(name, "public", actor="a")
    assert await accounts.repository(name) is None


async def test_invalid_visibility_is_refused(accounts: AccountStore) -> None:
    with pytest.raises(InvalidInput, match="invalid visibility 'internal'"):
        await accounts.ensure_repository("alice/app", "internal", actor="a")  # type: ignore[arg-type]
    await accounts.ensure_repository("alice/app", "public", actor="a")
    with pytest.raises(InvalidInput, match="invalid visibility"):
        await accounts.set_visibility("alice/app", "hidden", actor="a")  # type: ignore[arg-type]


async def test_visibility_and_description(accounts: AccountStore) -> None:
    await accounts.ensure_repository("alice/app", "public", actor="alice")
    private = await accounts.set_visibility("alice/app", "private", actor="alice")
    assert private.visibility == "private"
    text = "An app.\n\nWith *markdown*."
    described = await accounts.set_description("alice/app", text, actor="alice")
    assert (described.visibility, described.description) == ("private", text)
    assert await accounts.repository("alice/app") == described
    with pytest.raises(InvalidInput, match="longer than 25000"):
        await accounts.set_description("alice/app", "x" * 25_001, actor="alice")
    events = await accounts.audit_events(2, target="alice/app")
    assert [(event.action, event.detail) for event in events] == [
        ("repo.description", {"length": len(text)}),
        ("repo.visibility", {"from": "public", "to": "private"}),
    ]


async def test_repositories_are_listed_by_name_and_namespace(accounts: AccountStore) -> None:
    for name in ("bob/z", "alice/b", "busybox", "alice/a/sub", "alice/a", "alpine"):
        await accounts.ensure_repository(name, "public", actor="a")
    assert [repo.name for repo in await accounts.repositories()] == [
        "alice/a",
        "alice/a/sub",
        "alice/b",
        "alpine",
        "bob/z",
        "busybox",
    ]
    assert [repo.name for repo in await accounts.repositories(namespace="alice")] == [
        "alice/a",
        "alice/a/sub",
        "alice/b",
    ]
    assert [repo.name for repo in await accounts.repositories(namespace="")] == ["alpine", "busybox"]
    assert await accounts.repositories(namespace="nobody") == []


async def test_remove_repository(accounts: AccountStore) -> None:
    await accounts.ensure_repository("alice/app", "public", actor="alice")
    await accounts.ensure_repository("alice/app/sub", "public", actor="alice")
    await accounts.remove_repository("alice/app", actor="alice")
    assert await accounts.repository("alice/app") is None
    assert [repo.name for repo in await accounts.repositories()] == ["alice/app/sub"]
    recreated = await accounts.ensure_repository("alice/app", "private", actor="alice")
    assert recreated.visibility == "private"
    assert await actions(accounts, "alice/app") == ["repo.create", "repo.remove", "repo.create"]


# -- audit ------------------------------------------------------------------------------------------------------


async def test_every_change_is_audited_with_its_actor(accounts: AccountStore) -> None:
    await accounts.add_user("alice", PASSWORD)
    await accounts.add_user("root", PASSWORD, admin=True, actor="installer")
    await accounts.set_password("alice", "new password", actor="alice")
    await accounts.set_admin("alice", True, actor="root")
    await accounts.add_org("acme", actor="alice")
    await accounts.set_member("acme", "alice", "admin", actor="alice")
    await accounts.remove_member("acme", "alice", actor="alice")
    token, _secret = await accounts.create_token("alice", "ci", actor="alice")
    await accounts.revoke_token("alice", token.id, actor="alice")
    await accounts.ensure_repository("acme/app", "public", actor="alice")
    await accounts.set_visibility("acme/app", "private", actor="alice")
    await accounts.set_description("acme/app", "hello", actor="alice")
    await accounts.remove_repository("acme/app", actor="root")
    await accounts.remove_org("acme", actor="root")
    await accounts.remove_user("alice", actor="root")

    events = list(reversed(await accounts.audit_events()))
    assert [(event.actor, event.action, event.target) for event in events] == [
        ("system", "user.add", "alice"),
        ("installer", "user.add", "root"),
        ("alice", "user.passwd", "alice"),
        ("root", "user.admin", "alice"),
        ("alice", "org.add", "acme"),
        ("alice", "org.member.set", "acme"),
        ("alice", "org.member.remove", "acme"),
        ("alice", "token.create", "alice"),
        ("alice", "token.revoke", "alice"),
        ("alice", "repo.create", "acme/app"),
        ("alice", "repo.visibility", "acme/app"),
        ("alice", "repo.description", "acme/app"),
        ("root", "repo.remove", "acme/app"),
        ("root", "org.remove", "acme"),
        ("root", "user.remove", "alice"),
    ]
    assert events[7].detail == {"token_id": token.id, "name": "ci", "read_only": False}
    assert [event.id for event in events] == sorted(event.id for event in events)
    assert all(event.at.tzinfo is not None for event in events)
    assert [event.at for event in events] == sorted(event.at for event in events)


async def test_no_password_or_token_secret_is_stored_anywhere(
    accounts: AccountStore, database_url: str, tmp_path: Path
) -> None:
    first_password, second_password = "first secret password", "second secret password"
    await accounts.add_user("alice", first_password)
    await accounts.set_password("alice", second_password, actor="alice")
    _token, secret = await accounts.create_token("alice", "ci", actor="alice")
    assert await accounts.authenticate("alice", secret) is not None
    assert await accounts.authenticate("alice", second_password) is not None
    assert await accounts.authenticate("alice", first_password) is None
    await accounts.audit("alice", "login.failed", "alice", {"password": first_password, "nested": {"secret": secret}})

    dump = await run_on_database(database_url, dump_tables)

    assert "alice" in dump
    assert "login.failed" in dump
    random_part = secret.split("_", 2)[2]  # dyp_<public id>_<random>; the random part may itself hold "_"
    for leaked in (first_password, second_password, secret, random_part):
        assert leaked not in dump
    if database_url.startswith("sqlite"):
        raw = b"".join(path.read_bytes() for path in tmp_path.glob("accounts.db*"))
        for leaked in (first_password, second_password, secret):
            assert leaked.encode() not in raw


async def test_audit_records_other_events(accounts: AccountStore) -> None:
    await accounts.audit("alice", "login.failed", "alice", {"client": "127.0.0.1", "password": "oops", "n": 3})
    await accounts.audit("root", "gc.run", "registry")
    [gc, login] = await accounts.audit_events()
    assert (gc.actor, gc.action, gc.target, gc.detail) == ("root", "gc.run", "registry", {})
    assert login.detail == {"client": "127.0.0.1", "password": "[redacted]", "n": 3}
    assert await accounts.audit_events(target="alice") == [login]
    assert await accounts.audit_events(1) == [gc]


@pytest.mark.parametrize(
    ("actor", "action", "target", "detail"),
    [
        ("", "a", "t", {}),
        ("a", "", "t", {}),
        ("a", "a", "", {}),
        ("a" * 256, "a", "t", {}),
        ("a", "a" * 65, "t", {}),
        ("a", "a", "t", {"when": datetime.now(UTC)}),
    ],
)
async def test_audit_refuses_bad_events(
    accounts: AccountStore, actor: str, action: str, target: str, detail: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        await accounts.audit(actor, action, target, detail)
    assert await accounts.audit_events() == []


async def test_a_change_without_a_valid_actor_is_not_made(accounts: AccountStore) -> None:
    with pytest.raises(InvalidInput, match="actor"):
        await accounts.add_user("alice", PASSWORD, actor="")
    with pytest.raises(InvalidInput, match="actor"):
        await accounts.add_org("acme", actor="x" * 256)
    assert await accounts.users() == []
    assert await accounts.orgs() == []
    assert await accounts.audit_events() == []


@pytest.mark.parametrize("limit", [0, -1, 10_001])
async def test_audit_events_limit_is_checked(accounts: AccountStore, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await accounts.audit_events(limit)


# -- htpasswd ---------------------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_import_htpasswd_made_by_the_real_tool(accounts: AccountStore, tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd(path, "alice", "alice password")
    htpasswd(path, "bob", "bob password")
    await accounts.add_user("carol", "old carol password")
    htpasswd(path, "carol", "new carol password")

    assert await accounts.import_htpasswd(path, actor="root") == 3

    for name in ("alice", "bob"):
        found = await accounts.authenticate(name, f"{name} password")
        assert found is not None
        assert not found.user.is_admin
    assert await accounts.authenticate("alice", "bob password") is None
    assert await accounts.authenticate("carol", "new carol password") is not None
    assert await accounts.authenticate("carol", "old carol password") is None
    events = list(reversed(await accounts.audit_events(3)))
    assert [(event.action, event.target, event.detail["source"]) for event in events] == [
        ("user.add", "alice", "htpasswd"),
        ("user.add", "bob", "htpasswd"),
        ("user.passwd", "carol", "htpasswd"),
    ]
    assert all(event.actor == "root" for event in events)


@pytest.mark.interop
async def test_import_htpasswd_refuses_other_hashes_and_imports_nobody(accounts: AccountStore, tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd(path, "alice", "alice password")
    htpasswd(path, "bob", "bob password", "-m")  # MD5 ($apr1$)
    with pytest.raises(InvalidInput, match=r"line 2: the hash of user 'bob' is not bcrypt"):
        await accounts.import_htpasswd(path, actor="root")
    assert await accounts.users() == []


@pytest.mark.interop
async def test_import_htpasswd_checks_names(accounts: AccountStore, tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd(path, "alice", "alice password")
    htpasswd(path, "Bob", "bob password")
    with pytest.raises(InvalidInput, match="user 'Bob' has a name dockyard does not accept"):
        await accounts.import_htpasswd(path, actor="root")
    await accounts.add_org("bob", actor="root")
    path.write_text(path.read_text().replace("Bob:", "bob:"))
    with pytest.raises(AlreadyExists, match="'bob' is already taken by an organization"):
        await accounts.import_htpasswd(path, actor="root")
    assert await accounts.users() == []


async def test_import_htpasswd_of_a_missing_file(accounts: AccountStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        await accounts.import_htpasswd(tmp_path / "missing", actor="root")


# -- the database itself ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("accounts")
async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert await run_on_database(database_url, schema_differences) == []
    revision = await run_on_database(database_url, migrations.current_revision)
    assert revision == migrations.head_revision() is not None


async def test_the_schema_check_sees_a_database_that_is_not_migrated(database_url: str) -> None:
    differences = await run_on_database(database_url, schema_differences)
    added = {difference[1].name for difference in differences if difference[0] == "add_table"}
    assert added == {table.name for table in Base.metadata.sorted_tables}


async def test_reopening_keeps_data_and_migrates_nothing(database_url: str) -> None:
    store = await AccountStore.open(database_url, bcrypt_rounds=4)
    await store.add_user("alice", PASSWORD)
    await store.close()
    reopened = await AccountStore.open(database_url, bcrypt_rounds=4)
    try:
        assert [user.name for user in await reopened.users()] == ["alice"]
        assert await reopened.authenticate("alice", PASSWORD) is not None
        assert await run_on_database(database_url, schema_differences) == []
    finally:
        await reopened.close()


async def test_concurrent_opens_migrate_once(database_url: str) -> None:
    stores = await asyncio.gather(*(AccountStore.open(database_url, bcrypt_rounds=4) for _ in range(3)))
    try:
        await stores[0].add_user("alice", PASSWORD)
        assert await stores[2].user("alice") is not None
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "data" / "auth" / "accounts.db"
    store = await AccountStore.open(f"sqlite+aiosqlite:///{path}", bcrypt_rounds=4)
    await store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/accounts.db",
        "postgresql://user@127.0.0.1/db",
        "mysql+aiomysql://user:pw@host/db",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "not a url",
    ],
)
async def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        await AccountStore.open(url)
    assert ":pw@" not in str(raised.value)


@pytest.mark.parametrize("rounds", [3, 32])
async def test_bcrypt_rounds_are_checked(tmp_path: Path, rounds: int) -> None:
    with pytest.raises(InvalidInput, match="bcrypt_rounds"):
        await AccountStore.open(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", bcrypt_rounds=rounds)


async def test_an_unreachable_database_is_one_readable_error() -> None:
    url = f"postgresql+asyncpg://dockyard:hunter22@127.0.0.1:{free_port()}/accounts"
    with pytest.raises(AccountError) as raised:
        await AccountStore.open(url)
    message = str(raised.value)
    assert message.startswith("cannot open the account database postgresql+asyncpg://dockyard:***@127.0.0.1")
    assert "hunter22" not in message
    assert "\n" not in message

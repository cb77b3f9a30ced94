"""Account administration from the command line: users, organizations, visibility, tokens, signing keys.

These commands open the account database (and the signing key) the configuration names, the same ones
``dockyard serve`` uses in token mode; every change is recorded in the audit log as ``cli:<os user>``.
Mistakes (unknown user, taken name, short password) print one line and exit 1.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from dockyard.cli import cli, config_option, data_option, repo, settings_from_flags

if TYPE_CHECKING:
    from auth.accounts import AccountStore

T = TypeVar("T")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def with_accounts(config_file: Path | None, data_dir: Path | None, work: Callable[[AccountStore], Awaitable[T]]) -> T:
    """Open the configured account database, run ``work``, close it; account errors become one line."""
    from auth.accounts import AccountError
    from auth.guard import open_accounts

    settings = settings_from_flags(config_file, data_dir)

    async def run() -> T:
        accounts = await open_accounts(settings)
        try:
            return await work(accounts)
        finally:
            await accounts.close()

    try:
        return asyncio.run(run())
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


def _read_password(stdin: bool, prompt: str = "Password") -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


password_stdin = click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")


@cli.group()
def user() -> None:
    """Manage user accounts (token mode)."""


@user.command("add")
@config_option
@data_option
@click.argument("name")
@click.option("--admin", is_flag=True, help="A site admin: every permission everywhere.")
@password_stdin
def user_add(config_file: Path | None, data_dir: Path | None, name: str, admin: bool, password_stdin: bool) -> None:
    """Create user NAME (who then owns the namespace NAME/)."""
    password = _read_password(password_stdin)
    with_accounts(config_file, data_dir, lambda a: a.add_user(name, password, admin=admin, actor=_actor()))
    click.echo(f"created user {name}{' (site admin)' if admin else ''}")


@user.command("passwd")
@config_option
@data_option
@click.argument("name")
@password_stdin
def user_passwd(config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool) -> None:
    """Set the password of user NAME."""
    password = _read_password(password_stdin, "New password")
    with_accounts(config_file, data_dir, lambda a: a.set_password(name, password, actor=_actor()))
    click.echo(f"password of {name} changed")


@user.command("rm")
@config_option
@data_option
@click.argument("name")
def user_rm(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete user NAME, their tokens and memberships (their repositories stay)."""
    with_accounts(config_file, data_dir, lambda a: a.remove_user(name, actor=_actor()))
    click.echo(f"deleted user {name}")


@user.command("ls")
@config_option
@data_option
def user_ls(config_file: Path | None, data_dir: Path | None) -> None:
    """List users."""
    for found in with_accounts(config_file, data_dir, lambda a: a.users()):
        click.echo(f"{found.name}{'  (admin)' if found.is_admin else ''}")


@user.command("import-htpasswd")
@config_option
@data_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def user_import(config_file: Path | None, data_dir: Path | None, path: Path) -> None:
    """Import users from an htpasswd file of bcrypt hashes (``htpasswd -B``): same names, same passwords."""
    count = with_accounts(config_file, data_dir, lambda a: a.import_htpasswd(path, actor=_actor()))
    click.echo(f"imported {count} users from {path}")


@cli.group()
def org() -> None:
    """Manage organizations (token mode)."""


@org.command("add")
@config_option
@data_option
@click.argument("name")
def org_add(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Create organization NAME (which owns the namespace NAME/)."""
    with_accounts(config_file, data_dir, lambda a: a.add_org(name, actor=_actor()))
    click.echo(f"created organization {name}")


@org.group("member")
def org_member() -> None:
    """Manage organization members."""


@org_member.command("add")
@config_option
@data_option
@click.argument("org_name")
@click.argument("user_name")
@click.option("--role", type=click.Choice(["read", "write", "admin"]), default="read", show_default=True)
def org_member_add(config_file: Path | None, data_dir: Path | None, org_name: str, user_name: str, role: str) -> None:
    """Add USER_NAME to ORG_NAME with a role (or change their role)."""
    with_accounts(config_file, data_dir, lambda a: a.set_member(org_name, user_name, role, actor=_actor()))  # type: ignore[arg-type]
    click.echo(f"{user_name} is now {role} in {org_name}")


@org_member.command("rm")
@config_option
@data_option
@click.argument("org_name")
@click.argument("user_name")
def org_member_rm(config_file: Path | None, data_dir: Path | None, org_name: str, user_name: str) -> None:
    """Remove USER_NAME from ORG_NAME."""
    with_accounts(config_file, data_dir, lambda a: a.remove_member(org_name, user_name, actor=_actor()))
    click.echo(f"{user_name} removed from {org_name}")


@repo.command("visibility")
@config_option
@data_option
@click.argument("name")
@click.argument("visibility", type=click.Choice(["public", "private"]))
def repo_visibility(config_file: Path | None, data_dir: Path | None, name: str, visibility: str) -> None:
    """Make repository NAME public or private (registering it if it was never pushed in token mode)."""
    from registry.errors import RegistryError
    from registry.reference import check_name

    try:
        check_name(name)
    except RegistryError as exc:
        raise click.ClickException(exc.message) from None

    async def change(accounts: AccountStore) -> None:
        await accounts.ensure_repository(name, visibility, actor=_actor())  # type: ignore[arg-type]
        await accounts.set_visibility(name, visibility, actor=_actor())  # type: ignore[arg-type]

    with_accounts(config_file, data_dir, change)
    click.echo(f"{name} is now {visibility}")


@cli.group()
def token() -> None:
    """Manage personal access tokens (they work as passwords for docker login)."""


@token.command("create")
@config_option
@data_option
@click.option("--user", "user_name", required=True, help="The token's owner.")
@click.option("--name", "token_name", default="cli", show_default=True, help="A label for the token.")
@click.option("--read-only", is_flag=True, help="The token can pull but never push or delete.")
def token_create(
    config_file: Path | None, data_dir: Path | None, user_name: str, token_name: str, read_only: bool
) -> None:
    """Create a token for --user and print its secret (shown only this once)."""
    made, secret = with_accounts(
        config_file,
        data_dir,
        lambda a: a.create_token(user_name, token_name, read_only=read_only, actor=_actor()),
    )
    click.echo(secret)
    click.echo(f"token {made.id} for {user_name}{' (read-only)' if read_only else ''}", err=True)


@token.command("rm")
@config_option
@data_option
@click.option("--user", "user_name", required=True, help="The token's owner.")
@click.argument("token_id")
def token_rm(config_file: Path | None, data_dir: Path | None, user_name: str, token_id: str) -> None:
    """Revoke token TOKEN_ID of --user."""
    with_accounts(config_file, data_dir, lambda a: a.revoke_token(user_name, token_id, actor=_actor()))
    click.echo(f"revoked token {token_id}")


@cli.group()
def key() -> None:
    """Manage the token signing key."""


@key.command("rotate")
@config_option
@data_option
def key_rotate(config_file: Path | None, data_dir: Path | None) -> None:
    """Retire the signing key and make a new one; tokens of the old key stay valid for ``auth.key_overlap``.
    Restart (or roll) the servers so they load the new key."""
    from auth.guard import signing_key_path
    from auth.keys import KeyFileError, KeyRing

    settings = settings_from_flags(config_file, data_dir)
    try:
        ring = KeyRing.load(signing_key_path(settings), settings.auth.key_overlap).rotate()
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new signing key {ring.current.kid}")

"""Who may do what, decided in one place (token mode).

* ``pull``: anyone on a public repository; members of its namespace (any role) on a private one. A
  repository the account database does not know yet (never pushed in token mode) is private until its
  first push registers it, so nobody outside its namespace learns whether it exists.
* ``push``: the ``write`` or ``admin`` role in the namespace. A user owns the namespace of their name, an
  organization's members have the role they were given, a site admin has ``admin`` everywhere. Names
  without a namespace (``busybox``) belong to site admins (``auth.admin_only_top_level``).
* ``delete``: the ``admin`` role.
* A read-only personal access token never grants ``push`` or ``delete``.
* ``registry:catalog:*`` is granted to everybody; the catalog then lists only what the caller may pull.

Asking for more than allowed is never an error: the answer grants the intersection.
"""

from __future__ import annotations

from dataclasses import dataclass

from auth.accounts import AccountStore, Repository, Role, User
from auth.scopes import ResourceAccess
from registry.config import AuthSettings

RANK: dict[Role | None, int] = {None: 0, "read": 1, "write": 2, "admin": 3}
REPOSITORY_ACTIONS = ("pull", "push", "delete")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (perhaps through a read-only token) or, with ``user`` None, anyone."""

    user: User | None
    read_only: bool = False

    @property
    def subject(self) -> str:
        """The token ``sub``: the user name, or "" for anonymous."""
        return self.user.name if self.user else ""


ANONYMOUS = Principal(None)


def namespace_of(name: str) -> str:
    """The namespace of a repository: its first path component, or "" for a top-level name."""
    return name.split("/", 1)[0] if "/" in name else ""


class Policy:
    """Access decisions over the account database."""

    def __init__(self, accounts: AccountStore, settings: AuthSettings) -> None:
        self.accounts = accounts
        self.settings = settings

    async def granted(self, who: Principal, access: ResourceAccess) -> tuple[str, ...]:
        """The actions of ``access`` that ``who`` may perform (``*`` expands to all of them)."""
        if access.type == "registry" and access.name == "catalog":
            return ("*",) if "*" in access.actions else ()
        if access.type != "repository":
            return ()
        allowed = await self.repository_actions(who, access.name)
        wanted = REPOSITORY_ACTIONS if "*" in access.actions else access.actions
        return tuple(action for action in wanted if action in allowed)

    async def repository_actions(self, who: Principal, name: str) -> set[str]:
        """Everything ``who`` may do on repository ``name``."""
        role = await self.role(who, namespace_of(name))
        repo = await self.accounts.repository(name)
        actions: set[str] = set()
        if RANK[role] >= RANK["read"] or (repo is not None and repo.visibility == "public"):
            actions.add("pull")
        if not who.read_only and RANK[role] >= RANK["write"]:
            actions.add("push")
        if not who.read_only and RANK[role] >= RANK["admin"]:
            actions.add("delete")
        return actions

    async def role(self, who: Principal, namespace: str) -> Role | None:
        """``who``'s role in a namespace ("" is the top level)."""
        if who.user is None:
            return None
        if namespace == "":
            if who.user.is_admin:
                return "admin"
            return None if self.settings.admin_only_top_level else "write"
        return await self.accounts.namespace_role(namespace, who.user.name)

    async def visible(self, who: Principal, names: list[str]) -> list[str]:
        """The repositories of ``names`` that ``who`` may pull (for ``_catalog``)."""
        known: dict[str, Repository] = {repo.name: repo for repo in await self.accounts.repositories()}
        roles: dict[str, Role | None] = {}
        shown = []
        for name in names:
            namespace = namespace_of(name)
            if namespace not in roles:
                roles[namespace] = await self.role(who, namespace)
            repo = known.get(name)
            if RANK[roles[namespace]] >= RANK["read"] or (repo is not None and repo.visibility == "public"):
                shown.append(name)
        return shown

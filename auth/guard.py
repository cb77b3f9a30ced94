"""Token mode on the registry API: every ``/v2`` request must carry a bearer token granting what it needs.

Without a token (or with an invalid one) the answer is 401 with the challenge Docker clients follow::

    WWW-Authenticate: Bearer realm="<public_url>/auth/token",service="<service>",scope="repository:<name>:<actions>"

A valid token that lacks the action: pulls answer 401 ``UNAUTHORIZED`` (as Docker Hub does, so nobody
learns whether a private repository exists); pushes and deletes by a signed-in user answer 403 ``DENIED``.
A token whose user has since been deleted is refused. The first push to a repository registers it in the
account database with ``auth.default_visibility``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from auth.accounts import AccountStore
from auth.keys import KeyRing
from auth.policy import ANONYMOUS, Policy, Principal
from auth.ratelimit import LoginLimiter
from auth.scopes import ResourceAccess, scope_string
from auth.tokens import Claims, TokenError, TokenIssuer
from registry.config import Settings
from registry.errors import ErrorCode, RegistryError
from registry.proxies import base_url
from registry.reference import check_name
from registry.routes import ACCESS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REPOSITORY_SCOPE = {"pull": ("pull",), "push": ("pull", "push"), "delete": ("delete",)}


CLAIMS = web.RequestKey("claims", Claims)


def signing_key_path(settings: Settings) -> Path:
    """``auth.key_path``, else ``<state_dir>/auth/signing-key.pem``."""
    return settings.auth.key_path or settings.state_dir / "auth" / "signing-key.pem"


async def open_accounts(settings: Settings) -> AccountStore:
    """The account database of ``auth.database_url``, else SQLite at ``<state_dir>/accounts.db``."""
    config = settings.auth
    if config.database_url:
        return await AccountStore.open(config.database_url, bcrypt_rounds=config.bcrypt_rounds)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{(settings.state_dir / 'accounts.db').resolve()}"
    return await AccountStore.open(url, bcrypt_rounds=config.bcrypt_rounds)


@dataclass
class Guard:
    """Everything token mode needs at run time, built once per app."""

    settings: Settings
    accounts: AccountStore
    issuer: TokenIssuer
    policy: Policy
    limiter: LoginLimiter
    registered: set[str] = field(default_factory=set)

    @classmethod
    async def open(cls, settings: Settings) -> Guard:
        """Open the account database and the signing keys named by the settings."""
        config = settings.auth
        accounts = await open_accounts(settings)
        keys = KeyRing.load(signing_key_path(settings), config.key_overlap)
        issuer = TokenIssuer(
            keys,
            issuer=config.issuer,
            lifetime=int(config.token_lifetime),
            refresh_lifetime=int(config.refresh_lifetime),
        )
        limiter = LoginLimiter(accounts.engine, config.login_failures, config.login_window)  # shared by replicas
        return cls(settings, accounts, issuer, Policy(accounts, config), limiter)

    async def close(self) -> None:
        await self.accounts.close()

    # -- the challenge ------------------------------------------------------------------------------

    def challenge(self, request: web.Request, scope: str | None, error: str | None = None) -> dict[str, str]:
        """The ``WWW-Authenticate`` header sending a client to the token service, at the URL the client reached
        this registry by (``auth.public_url``, or the request's own scheme and host, see ``registry.proxies``)."""
        parts = [f'realm="{base_url(request)}/auth/token"', f'service="{self.settings.auth.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return {"WWW-Authenticate": "Bearer " + ",".join(parts)}

    # -- per request --------------------------------------------------------------------------------

    async def principal_of(self, claims: Claims) -> Principal:
        """The principal behind verified claims; a deleted user's tokens are refused."""
        if not claims.subject:
            return ANONYMOUS
        user = await self.accounts.user(claims.subject)
        if user is None:
            raise TokenError("the token's user no longer exists")
        return Principal(user)

    async def verify(self, request: web.Request, scope: str | None) -> Claims:
        """The verified claims of the request's bearer token, or a 401 challenge."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RegistryError(ErrorCode.UNAUTHORIZED, headers=self.challenge(request, scope))
        try:
            claims = self.issuer.verify(token.strip(), self.settings.auth.service)
            await self.principal_of(claims)
        except TokenError as exc:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED, f"invalid token: {exc}", headers=self.challenge(request, scope, "invalid_token")
            ) from None
        return claims

    @staticmethod
    def granted(claims: Claims, type_: str, name: str) -> set[str]:
        """The actions the token grants on one resource."""
        return {a for entry in claims.access if entry.type == type_ and entry.name == name for a in entry.actions}

    def may_pull(self, request: web.Request, name: str) -> bool:
        """True if the request's (already verified) token grants ``pull`` on ``name`` (cross-repo mounts)."""
        claims = request.get(CLAIMS)
        return claims is not None and "pull" in self.granted(claims, "repository", name)

    async def visible(self, request: web.Request, names: list[str]) -> list[str]:
        """The repositories of ``names`` the caller may pull (``_catalog``)."""
        claims: Claims = request[CLAIMS]
        return await self.policy.visible(await self.principal_of(claims), names)

    async def check(self, request: web.Request, access: str) -> None:
        """Raise the right 401/403 unless the request's token grants ``access``."""
        if access == "login":
            request[CLAIMS] = await self.verify(request, None)
            return
        if access == "catalog":
            request[CLAIMS] = await self.verify(request, "registry:catalog:*")
            return
        name = check_name(request.match_info["name"])
        actions = REPOSITORY_SCOPE[access]
        scope = scope_string(ResourceAccess("repository", name, actions))
        claims = await self.verify(request, scope)
        if not set(actions) <= self.granted(claims, "repository", name):
            if access == "pull" or not claims.subject:
                raise RegistryError(
                    ErrorCode.UNAUTHORIZED,
                    detail=[{"Type": "repository", "Name": name, "Action": a} for a in actions],
                    headers=self.challenge(request, scope, "insufficient_scope"),
                )
            raise RegistryError(  # the challenge too: clients holding a token for another scope fetch a new one
                ErrorCode.DENIED,
                detail={"repository": name, "needs": list(actions)},
                headers=self.challenge(request, scope, "insufficient_scope"),
            )
        request[CLAIMS] = claims
        if access == "push":
            await self._register(name, claims.subject)

    async def _register(self, name: str, actor: str) -> None:
        if name not in self.registered:
            await self.accounts.ensure_repository(name, self.settings.auth.default_visibility, actor=actor)
            self.registered.add(name)


GUARD = web.AppKey("guard", Guard)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the app's guard on every route of the table that needs access."""
    access = ACCESS.get(request.match_info.route.handler)
    if access is not None and access != "open":
        await request.app[GUARD].check(request, access)
    return await handler(request)

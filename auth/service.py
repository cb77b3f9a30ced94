"""The token service: ``GET /auth/token`` (Docker token protocol) and ``POST /auth/token`` (OAuth2).

``GET /auth/token?service=S&scope=...&offline_token=true`` with HTTP Basic credentials (a password or a
personal access token), or none for an anonymous token, answers::

    {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": "...", "refresh_token": "..."}

(``refresh_token`` only for a signed-in ``offline_token=true`` request: what ``docker login`` keeps).
``POST /auth/token`` takes a form with ``grant_type=password`` (``username``, ``password``) or
``grant_type=refresh_token`` (``refresh_token``), plus ``service``, ``scope``, ``client_id`` and
``access_type=offline`` for a refresh token. The token grants the intersection of what was asked and what
the caller may do; asking for more is never an error.

Wrong credentials answer 401 after a delay that grows with recent failures; too many failures from one
client or against one account answer 429 ``TOOMANYREQUESTS`` (``Retry-After``) without checking anything; the
failures are counted in the account database (``auth.ratelimit``), so while it can't be reached a login answers 503
``UNAVAILABLE`` instead of being checked unlimited.
Credentials never reach a log line (the access log records the path only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from aiohttp import web

from auth.basic import MalformedBasic, parse_basic
from auth.guard import GUARD, Guard
from auth.policy import ANONYMOUS, Principal
from auth.ratelimit import TooManyLogins, throttled
from auth.scopes import ResourceAccess, ScopeError, parse_scopes, scope_string
from auth.tokens import TokenError
from registry.errors import ErrorCode, RegistryError

_PAT_MARK = "@pat:"


@dataclass(frozen=True)
class Login:
    """Who signed in, and how (a refresh token remembers a personal access token's id and read-only flag)."""

    principal: Principal
    token_id: str | None = None

    @property
    def refresh_subject(self) -> str:
        name = self.principal.subject
        return f"{name}{_PAT_MARK}{self.token_id}" if self.token_id else name


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """The (name, secret) of an HTTP Basic ``Authorization`` header, or None when there is none; a malformed one
    is 401 ``UNAUTHORIZED``."""
    try:
        return parse_basic(request.headers.get("Authorization", ""))
    except MalformedBasic as exc:
        raise RegistryError(ErrorCode.UNAUTHORIZED, str(exc)) from None


class TokenService:
    """The handlers of ``/auth/token``, for one guard."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    # -- credentials --------------------------------------------------------------------------------

    async def login(self, request: web.Request, name: str, secret: str) -> Login:
        """Check a password or personal access token, with the failed-login limits."""
        accounts, client = self.guard.accounts, request.remote or "unknown"
        try:
            found = await throttled(self.guard.limiter, client, name, lambda: accounts.authenticate(name, secret))
        except TooManyLogins as exc:
            raise RegistryError(
                ErrorCode.TOOMANYREQUESTS, str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from None
        if found is None:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "incorrect username or password",
                headers={"WWW-Authenticate": 'Basic realm="dockyard"'},
            )
        return Login(Principal(found.user, found.read_only), found.token_id)

    async def from_refresh(self, token: str) -> Login:
        """The login a refresh token stands for, re-checked now: a deleted user or revoked token fails."""
        try:
            subject = self.guard.issuer.verify_refresh(token, self.guard.settings.auth.service)
        except TokenError as exc:
            raise RegistryError(ErrorCode.UNAUTHORIZED, f"invalid refresh token: {exc}") from None
        name, _, token_id = subject.partition(_PAT_MARK)
        user = await self.guard.accounts.user(name)
        if user is None:
            raise RegistryError(ErrorCode.UNAUTHORIZED, "invalid refresh token: the user no longer exists")
        if not token_id:
            return Login(Principal(user))
        tokens = {t.id: t for t in await self.guard.accounts.tokens(name)}
        if token_id not in tokens:
            raise RegistryError(ErrorCode.UNAUTHORIZED, "invalid refresh token: its access token was revoked")
        return Login(Principal(user, tokens[token_id].read_only), token_id)

    # -- issuing ------------------------------------------------------------------------------------

    def _service(self, value: str | None) -> str:
        service = self.guard.settings.auth.service
        if value is not None and value != service:
            raise RegistryError(ErrorCode.DENIED, f"this token service issues tokens for {service!r}, not {value!r}")
        return service

    async def _grant(self, who: Principal, scopes: list[str]) -> list[ResourceAccess]:
        try:
            requested = parse_scopes(scopes)
        except ScopeError as exc:
            raise RegistryError(ErrorCode.INVALID_REQUEST, f"invalid scope: {exc}") from None
        granted = []
        for access in requested:
            actions = await self.guard.policy.granted(who, access)
            if actions:
                granted.append(ResourceAccess(access.type, access.name, actions))
        return granted

    async def _issue(self, login: Login, service: str, scopes: list[str], refresh: bool) -> dict[str, Any]:
        access = await self._grant(login.principal, scopes)
        issued = self.guard.issuer.issue(login.principal.subject, service, access)
        answer: dict[str, Any] = {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scope": " ".join(scope_string(a) for a in access),
        }
        if refresh and login.principal.user is not None:
            answer["refresh_token"] = self.guard.issuer.issue_refresh(login.refresh_subject, service)
        return answer

    # -- handlers -----------------------------------------------------------------------------------

    async def get_token(self, request: web.Request) -> web.Response:
        """``GET /auth/token``: Basic credentials or anonymous."""
        service = self._service(request.query.get("service"))
        credentials = basic_credentials(request)
        login = Login(ANONYMOUS) if credentials is None else await self.login(request, *credentials)
        offline = request.query.get("offline_token", "").lower() == "true"
        return web.json_response(await self._issue(login, service, request.query.getall("scope", []), offline))

    async def post_token(self, request: web.Request) -> web.Response:
        """``POST /auth/token``: the OAuth2 ``password`` and ``refresh_token`` grants."""
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        service = self._service(fields.get("service"))
        grant = fields.get("grant_type")
        if grant == "password":
            login = await self.login(request, fields.get("username", ""), fields.get("password", ""))
        elif grant == "refresh_token":
            login = await self.from_refresh(fields.get("refresh_token", ""))
        else:
            refused = {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}
            return web.json_response(refused, status=400)
        scopes = [v for k, v in form.items() if k == "scope" and isinstance(v, str)]
        answer = await self._issue(login, service, scopes, fields.get("access_type") == "offline")
        if grant == "refresh_token":
            answer.setdefault("refresh_token", fields["refresh_token"])
        return web.json_response(answer)


async def get_token(request: web.Request) -> web.Response:
    """``GET /auth/token`` of the app's guard."""
    return await TokenService(request.app[GUARD]).get_token(request)


async def post_token(request: web.Request) -> web.Response:
    """``POST /auth/token`` of the app's guard."""
    return await TokenService(request.app[GUARD]).post_token(request)


def add_token_routes(app: web.Application) -> None:
    """Register ``/auth/token`` (GET and POST) on ``app``; the guard is looked up per request."""
    app.router.add_get("/auth/token", get_token)
    app.router.add_post("/auth/token", post_token)

"""The account API under ``/api/v1/``: what the admin commands do, over HTTP (the catalog UI uses it).

Every call needs a signed-in caller: ``Authorization: Bearer <token from /auth/token>`` or HTTP Basic with
a password or personal access token (with the same failed-login limits as the token service). A
read-only personal access token may only read. Errors use the registry's JSON error body.

=======  ==========================================  ==============================================
method   path                                        who may
=======  ==========================================  ==============================================
GET      /api/v1/me                                  anyone signed in
GET      /api/v1/users                               site admins
POST     /api/v1/users  {name, password, admin}      site admins
PUT      /api/v1/users/{name}/password {password}    the user, site admins
DELETE   /api/v1/users/{name}                        site admins
POST     /api/v1/orgs  {name}                        anyone signed in (becomes the org's admin)
GET      /api/v1/orgs/{org}/members                  members, site admins
PUT      /api/v1/orgs/{org}/members/{user} {role}    org admins, site admins
DELETE   /api/v1/orgs/{org}/members/{user}           org admins, site admins
GET      /api/v1/repositories[?namespace=NS]         anyone signed in (lists what they may pull)
PATCH    /api/v1/repositories/{name} {visibility,    the namespace's admins
         description}
GET      /api/v1/tokens                              the caller's own tokens
POST     /api/v1/tokens {name, read_only}            the caller (the secret is shown once)
DELETE   /api/v1/tokens/{id}                         the caller
GET      /api/v1/audit[?limit=N]                     site admins
=======  ==========================================  ==============================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import web

from auth.accounts import AccountError, AlreadyExists, InvalidInput, NotFound
from auth.guard import GUARD, Guard
from auth.policy import RANK, Principal
from auth.service import TokenService, basic_credentials
from auth.tokens import TokenError
from registry.errors import ErrorCode, RegistryError

ApiHandler = Callable[[web.Request, Guard, Principal], Awaitable[Any]]
_STATUS = {NotFound: 404, AlreadyExists: 409, InvalidInput: 400}


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {k: _encode(v) for k, v in asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


async def caller(request: web.Request, guard: Guard) -> Principal:
    """The signed-in principal of an API request, or 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        try:
            principal = await guard.principal_of(guard.issuer.verify(token.strip(), guard.settings.auth.service))
        except TokenError as exc:
            raise RegistryError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from None
    elif (credentials := basic_credentials(request)) is not None:
        principal = (await TokenService(guard).login(request, *credentials)).principal
    else:
        principal = Principal(None)
    if principal.user is None:
        raise RegistryError(ErrorCode.UNAUTHORIZED, "sign in with a token or Basic credentials")
    if principal.read_only and request.method not in ("GET", "HEAD"):
        raise RegistryError(ErrorCode.DENIED, "a read-only access token cannot change anything")
    return principal


def endpoint(handler: ApiHandler, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap an API handler: authenticate, run, encode the result as JSON, map account errors."""

    async def run(request: web.Request) -> web.Response:
        guard = request.app[GUARD]
        who = await caller(request, guard)
        try:
            result = await handler(request, guard, who)
        except AccountError as exc:
            code = _STATUS.get(type(exc), 400)
            return web.json_response({"errors": [{"code": "ACCOUNT", "message": str(exc)}]}, status=code)
        return web.json_response(_encode(result), status=status)

    return run


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except json.JSONDecodeError:
        raise RegistryError(ErrorCode.INVALID_REQUEST, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise RegistryError(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    return data


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise RegistryError(ErrorCode.DENIED, f"only {what} may do this")


def _actor(who: Principal) -> str:
    return who.subject


# -- users ------------------------------------------------------------------------------------------


async def me(_request: web.Request, guard: Guard, who: Principal) -> Any:
    assert who.user is not None
    return {"user": who.user, "orgs": await guard.accounts.user_orgs(who.user.name)}


async def list_users(_request: web.Request, guard: Guard, who: Principal) -> Any:
    _require(who.user is not None and who.user.is_admin, "site admins")
    return await guard.accounts.users()


async def add_user(request: web.Request, guard: Guard, who: Principal) -> Any:
    _require(who.user is not None and who.user.is_admin, "site admins")
    data = await _body(request)
    return await guard.accounts.add_user(
        str(data.get("name", "")), str(data.get("password", "")), admin=bool(data.get("admin")), actor=_actor(who)
    )


async def set_password(request: web.Request, guard: Guard, who: Principal) -> Any:
    name = request.match_info["name"]
    _require(who.user is not None and (who.user.is_admin or who.user.name == name), "the user or site admins")
    await guard.accounts.set_password(name, str((await _body(request)).get("password", "")), actor=_actor(who))
    return {"name": name, "password": "changed"}


async def remove_user(request: web.Request, guard: Guard, who: Principal) -> Any:
    _require(who.user is not None and who.user.is_admin, "site admins")
    await guard.accounts.remove_user(request.match_info["name"], actor=_actor(who))
    return {"deleted": request.match_info["name"]}


# -- organizations ----------------------------------------------------------------------------------


async def add_org(request: web.Request, guard: Guard, who: Principal) -> Any:
    assert who.user is not None
    org = await guard.accounts.add_org(str((await _body(request)).get("name", "")), actor=_actor(who))
    await guard.accounts.set_member(org.name, who.user.name, "admin", actor=_actor(who))
    return org


async def members(request: web.Request, guard: Guard, who: Principal) -> Any:
    org = request.match_info["org"]
    _require(RANK[await guard.policy.role(who, org)] >= RANK["read"], "members")
    return await guard.accounts.members(org)


async def set_member(request: web.Request, guard: Guard, who: Principal) -> Any:
    org, user = request.match_info["org"], request.match_info["user"]
    _require(await guard.policy.role(who, org) == "admin", "the organization's admins")
    role = str((await _body(request)).get("role", ""))
    if role not in ("read", "write", "admin"):
        raise InvalidInput(f"role must be read, write or admin, not {role!r}")
    await guard.accounts.set_member(org, user, role, actor=_actor(who))  # type: ignore[arg-type]
    return {"org": org, "user": user, "role": role}


async def remove_member(request: web.Request, guard: Guard, who: Principal) -> Any:
    org, user = request.match_info["org"], request.match_info["user"]
    _require(await guard.policy.role(who, org) == "admin", "the organization's admins")
    await guard.accounts.remove_member(org, user, actor=_actor(who))
    return {"org": org, "user": user, "removed": True}


# -- repositories -----------------------------------------------------------------------------------


async def list_repositories(request: web.Request, guard: Guard, who: Principal) -> Any:
    repos = await guard.accounts.repositories(namespace=request.query.get("namespace"))
    shown = set(await guard.policy.visible(who, [r.name for r in repos]))
    return [r for r in repos if r.name in shown]


async def update_repository(request: web.Request, guard: Guard, who: Principal) -> Any:
    name = request.match_info["name"]
    _require("delete" in await guard.policy.repository_actions(who, name), "the namespace's admins")
    data = await _body(request)
    repo = await guard.accounts.ensure_repository(name, guard.settings.auth.default_visibility, actor=_actor(who))
    if "visibility" in data:
        visibility = str(data["visibility"])
        if visibility not in ("public", "private"):
            raise InvalidInput(f"visibility must be public or private, not {visibility!r}")
        repo = await guard.accounts.set_visibility(name, visibility, actor=_actor(who))  # type: ignore[arg-type]
    if "description" in data:
        repo = await guard.accounts.set_description(name, str(data["description"]), actor=_actor(who))
    return repo


# -- tokens and audit -------------------------------------------------------------------------------


async def list_tokens(_request: web.Request, guard: Guard, who: Principal) -> Any:
    return await guard.accounts.tokens(who.subject)


async def create_token(request: web.Request, guard: Guard, who: Principal) -> Any:
    data = await _body(request)
    token, secret = await guard.accounts.create_token(
        who.subject, str(data.get("name", "token")), read_only=bool(data.get("read_only")), actor=_actor(who)
    )
    return {"token": token, "secret": secret}


async def revoke_token(request: web.Request, guard: Guard, who: Principal) -> Any:
    await guard.accounts.revoke_token(who.subject, request.match_info["id"], actor=_actor(who))
    return {"revoked": request.match_info["id"]}


async def audit(request: web.Request, guard: Guard, who: Principal) -> Any:
    _require(who.user is not None and who.user.is_admin, "site admins")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        raise InvalidInput("limit must be a number") from None
    return await guard.accounts.audit_events(limit)


def add_api_routes(app: web.Application) -> None:
    """Register every ``/api/v1`` endpoint of the table above."""
    base = "/api/v1"
    app.router.add_get(f"{base}/me", endpoint(me))
    app.router.add_get(f"{base}/users", endpoint(list_users))
    app.router.add_post(f"{base}/users", endpoint(add_user, 201))
    app.router.add_put(f"{base}/users/{{name}}/password", endpoint(set_password))
    app.router.add_delete(f"{base}/users/{{name}}", endpoint(remove_user))
    app.router.add_post(f"{base}/orgs", endpoint(add_org, 201))
    app.router.add_get(f"{base}/orgs/{{org}}/members", endpoint(members))
    app.router.add_put(f"{base}/orgs/{{org}}/members/{{user}}", endpoint(set_member))
    app.router.add_delete(f"{base}/orgs/{{org}}/members/{{user}}", endpoint(remove_member))
    app.router.add_get(f"{base}/repositories", endpoint(list_repositories))
    app.router.add_patch(f"{base}/repositories/{{name:.+}}", endpoint(update_repository))
    app.router.add_get(f"{base}/tokens", endpoint(list_tokens))
    app.router.add_post(f"{base}/tokens", endpoint(create_token, 201))
    app.router.add_delete(f"{base}/tokens/{{id}}", endpoint(revoke_token))
    app.router.add_get(f"{base}/audit", endpoint(audit))

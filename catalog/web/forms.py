"""The pages that change something: sign-in, sign-out, and the repository admin forms (description, visibility,
deleting a tag). Every POST checks its CSRF token first (``catalog.web.csrf``); the admin forms act as the
session's user only (never as HTTP Basic credentials a browser may replay) and answer with a redirect
(post/redirect/get), so a reload never repeats a change.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from catalog import keys
from catalog.errors import Forbidden, InvalidInput
from catalog.signin import TooManyAttempts, check_credentials
from catalog.viewer import viewer_of
from catalog.views import READ_ONLY, Viewer, Visibility
from catalog.web import csrf
from catalog.web.render import STORE, render, sign_in_enabled
from catalog.web.sessions import Session

__all__ = [
    "confirm_delete_page",
    "delete_tag",
    "login_form",
    "login_submit",
    "logout",
    "see_other",
    "set_description",
    "set_visibility",
]

FAILED = "Incorrect username or password."  # the same for unknown users: no account enumeration
FIELD_MAX = 256
NEXT_MAX = 2048


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a local absolute path only (no ``//host`` or ``/\\host``), else ``/``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 32 or ord(char) == 127 for char in target):
        return "/"
    return target


async def login_form(request: web.Request) -> web.Response:
    """``GET /login``: the sign-in form (with its double-submit CSRF cookie)."""
    return await _login_page(request, {"next": safe_next(request.query.get("next"))})


async def _login_page(request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    token, new = csrf.anonymous_token(request)
    context = {"error": "", "username": "", **context, "login_token": token}
    response = await render(request, "login.html", context, status)
    if new:
        csrf.set_anonymous_cookie(response, request, token)
    return response


async def login_submit(request: web.Request) -> web.Response:
    """``POST /login``: check the CSRF token and the credentials (with the failed-login limits); on success a new
    session and a redirect to ``next``, on failure the form again with one message (401, or 429 over the limit)."""
    form = await request.post()
    target = safe_next(_field(form, "next", limit=NEXT_MAX))
    if not sign_in_enabled(request):
        return await _login_page(request, {"next": target}, 400)
    csrf.check_anonymous(request, _field(form, csrf.FIELD))
    username, password = _field(form, "username").strip(), _field(form, "password")
    again = {"next": target, "username": username}
    try:
        signed = await check_credentials(request, username, password) if username and password else None
    except TooManyAttempts as exc:
        response = await _login_page(request, {**again, "error": str(exc)}, exc.status)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if signed is None:
        return await _login_page(request, {**again, "error": FAILED}, 401)
    store = request.app[STORE]
    value, _ = store.issue(signed.user.name, signed.read_only)
    response = see_other(target)
    store.set_cookie(response, request, value)
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /logout``: end the session (CSRF-checked when there is one) and go home."""
    store = request.app[STORE]
    session = store.read(request)
    if session is not None:
        csrf.check_session(store, session, _field(await request.post(), csrf.FIELD))
        store.revoke(session)
    response = see_other("/")
    store.clear_cookie(response, request)
    return response


async def _admin(request: web.Request) -> tuple[Viewer, str, MultiDictProxy[Any]]:
    """A checked admin form: the session's viewer, the repository name and the form fields."""
    store = request.app[STORE]
    form = await request.post()
    session: Session | None = store.read(request)
    csrf.check_session(store, session, _field(form, csrf.FIELD))
    assert session is not None  # check_session refused the request otherwise
    viewer = await request.app[keys.CATALOG].viewer(session.user, read_only=session.read_only)
    if viewer.read_only:  # refused before the fields are read (the catalog refuses the change itself too)
        raise Forbidden(READ_ONLY)
    return viewer, request.match_info["name"], form


def see_other(location: str) -> web.Response:
    """A 303 redirect as a plain response (aiohttp deprecates returning ``HTTPException`` objects)."""
    return web.Response(status=303, headers={"Location": location})


def _back(name: str, **query: str) -> web.Response:
    return see_other(str(URL(f"/r/{name}").with_query(query)))


async def set_description(request: web.Request) -> web.Response:
    """``POST /r/{name}/-/description``: save the Markdown description (admins of the repository only)."""
    viewer, name, form = await _admin(request)
    await request.app[keys.CATALOG].set_description(viewer, name, _field(form, "description", limit=None))
    return _back(name, saved="description")


async def set_visibility(request: web.Request) -> web.Response:
    """``POST /r/{name}/-/visibility``: make the repository public or private."""
    viewer, name, form = await _admin(request)
    visibility = _field(form, "visibility")
    if visibility not in ("public", "private"):
        raise InvalidInput("visibility must be public or private")
    chosen: Visibility = "public" if visibility == "public" else "private"
    await request.app[keys.CATALOG].set_visibility(viewer, name, chosen)
    return _back(name, saved="visibility")


async def confirm_delete_page(request: web.Request) -> web.Response:
    """``GET /r/{name}/-/tags/{tag}/delete``: ask before deleting (the tag must exist and be visible)."""
    catalog, viewer = request.app[keys.CATALOG], await viewer_of(request)
    name, tag = request.match_info["name"], request.match_info["tag"]
    if not (await catalog.repository(viewer, name)).can_admin:
        raise Forbidden("Only the repository's admins can delete its tags.")
    if request.app[STORE].read(request) is None:  # the form acts as the session's user only, never Basic's
        raise Forbidden("Sign in to delete tags.")
    if viewer.read_only:
        raise Forbidden(READ_ONLY)
    detail = await catalog.tag(viewer, name, tag)
    return await render(request, "confirm_delete.html", {"name": name, "tag": detail.tag})


async def delete_tag(request: web.Request) -> web.Response:
    """``POST /r/{name}/-/tags/{tag}/delete``: delete the tag (its manifest stays if other tags name it)."""
    viewer, name, _ = await _admin(request)
    tag = request.match_info["tag"]
    await request.app[keys.CATALOG].delete_tag(viewer, name, tag)
    return _back(name, deleted=tag)


def _field(form: MultiDictProxy[Any], key: str, limit: int | None = FIELD_MAX) -> str:
    """A text field of the form ('' when absent); file uploads and over-long values are a 400."""
    value = form.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a text field")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{key} is too long (at most {limit} characters)")
    return value

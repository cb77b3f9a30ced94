"""The catalog's server-rendered web pages: ``add_web(app)`` registers them on the registry app.

Modules: ``pages`` (read-only pages), ``forms`` (sign-in, sign-out, admin forms), ``sessions`` (signed session
cookies), ``csrf`` (form tokens), ``origin`` (changes made with the session cookie come from this site only),
``render`` (templates, shared context, error pages). Templates live in
``templates/`` (Jinja2, autoescaped), the stylesheet and the copy-button script in ``static/``.

URLs: ``/``, ``/search``, ``/u/{namespace}``, ``/r/{name}`` and its sub-pages after ``/-/`` (a name component
can't be ``-``, so ``/-/`` never belongs to a name): ``tags/{tag}``, ``tags/{tag}/files/{path}``, ``diff``,
``description``, ``visibility``, ``tags/{tag}/delete``; ``/login``, ``/logout``, ``/sitemap.xml``, ``/robots.txt``,
``/static/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from catalog import keys
from catalog.web import forms, pages
from catalog.web.origin import same_origin
from catalog.web.render import PAGE_RESOURCES, STORE, page_errors, setup_templates
from catalog.web.sessions import SessionStore, load_secret
from registry import keys as registry_keys

__all__ = ["add_web"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC = Path(__file__).parent / "static"
NAME = r"{name:[a-z0-9][^/]*(?:/[a-z0-9][^/]*)*}"  # components start alphanumeric: "-" is the separator
TAG = r"{tag:[A-Za-z0-9_][A-Za-z0-9_.-]*}"
REPO = f"/r/{NAME}"

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/", pages.home_page),
    ("GET", "/search", pages.search_page),
    ("GET", "/u/{namespace}", pages.namespace_page),
    ("GET", "/sitemap.xml", pages.sitemap_xml),
    ("GET", "/robots.txt", pages.robots_txt),
    ("GET", "/login", forms.login_form),
    ("POST", "/login", forms.login_submit),
    ("POST", "/logout", forms.logout),
    ("GET", REPO, pages.repository_page),
    ("GET", f"{REPO}/-/tags/{TAG}", pages.tag_page),
    ("GET", f"{REPO}/-/tags/{TAG}/files", pages.files_root),
    ("GET", f"{REPO}/-/tags/{TAG}/files/{{path:.*}}", pages.files_page),
    ("GET", f"{REPO}/-/diff", pages.diff_page),
    ("POST", f"{REPO}/-/description", forms.set_description),
    ("POST", f"{REPO}/-/visibility", forms.set_visibility),
    ("GET", f"{REPO}/-/tags/{TAG}/delete", forms.confirm_delete_page),
    ("POST", f"{REPO}/-/tags/{TAG}/delete", forms.delete_tag),
)


def session_store(app: web.Application) -> SessionStore:
    """Sessions signed with the registry's key in its state directory; without accounts (``auth.mode: none``)
    nobody signs in, so an in-memory key does and nothing is written."""
    auth = app[registry_keys.SETTINGS]
    state_dir = auth.state_dir if auth.auth.mode == "token" else None
    return SessionStore(load_secret(state_dir))


def add_web(app: web.Application) -> None:
    """Register the pages, the static files, the session store (also under ``keys.SESSIONS``, for
    ``viewer_of``), the middleware that renders page errors and, inside it, the same-origin check of changes
    made with the session cookie (pages and the catalog API). Call before the app starts."""
    setup_templates(app)
    app[STORE] = store = session_store(app)
    app[keys.SESSIONS] = store
    resources: set[web.AbstractResource] = set()
    for method, path, handler in ROUTES:
        if method == "GET":
            route = app.router.add_get(path, handler, allow_head=True)
        else:
            route = app.router.add_route(method, path, handler)
        assert route.resource is not None  # routes added by path always have one
        resources.add(route.resource)
    resources.add(app.router.add_static("/static/", STATIC))
    app[PAGE_RESOURCES] = resources
    app.middlewares.append(page_errors)
    app.middlewares.append(same_origin)

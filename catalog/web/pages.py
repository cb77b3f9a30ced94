"""The read-only pages: home, search, namespace, repository, tag, file browser, diff, sitemap and robots.txt.

Handlers are thin: parse the URL, ask ``Catalog`` or ``ImageFiles`` once or twice (always as the request's viewer,
so a private repository is a 404 page for outsiders, the same as a missing one), render a template. Errors are raised
and turned into pages by ``render.page_errors``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from aiohttp import web

from catalog import keys
from catalog.errors import InvalidInput
from catalog.viewer import viewer_of
from catalog.views import ANONYMOUS, TagSummary
from catalog.web.render import render
from registry.proxies import base_url

__all__ = [
    "PER_PAGE",
    "diff_page",
    "files_page",
    "home_page",
    "namespace_page",
    "repository_page",
    "robots_txt",
    "search_page",
    "sitemap_xml",
    "tag_page",
]

TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
PER_PAGE = 25
DIFF_CHOICES = 100  # tags offered in the diff form's selects (the newest ones)
MAX_PAGE = 1_000_000


def page_number(request: web.Request) -> int:
    """The ``page`` query parameter (default 1); anything but a positive integer is a 400."""
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidInput(f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def platform_param(request: web.Request) -> str | None:
    """The ``platform`` query parameter (``os/arch[/variant]``), or None for the image's only or first platform."""
    return request.query.get("platform") or None


async def home_page(request: web.Request) -> web.Response:
    """``/``: search box, recently pushed and most pulled repositories, counts."""
    home = await request.app[keys.CATALOG].home(await viewer_of(request))
    return await render(request, "home.html", {"home": home})


async def search_page(request: web.Request) -> web.Response:
    """``/search?q=&page=``: ranked results; an empty query shows the form alone."""
    query = request.query.get("q", "").strip()
    results = None
    if query:
        results = await request.app[keys.CATALOG].search(await viewer_of(request), query, page_number(request))
    return await render(request, "search.html", {"query": query, "results": results})


async def namespace_page(request: web.Request) -> web.Response:
    """``/u/{namespace}``: a user's or organization's repositories the viewer may see."""
    catalog = request.app[keys.CATALOG]
    view = await catalog.namespace(await viewer_of(request), request.match_info["namespace"], page_number(request))
    return await render(request, "namespace.html", {"namespace": view})


async def repository_page(request: web.Request) -> web.Response:
    """``/r/{name}``: description, pull commands, tags by push time (paginated), diff form, admin forms."""
    catalog, viewer, name = request.app[keys.CATALOG], await viewer_of(request), request.match_info["name"]
    detail = await catalog.repository(viewer, name)
    tags = await catalog.tags(viewer, name, page_number(request), PER_PAGE)
    context = {
        "repo": detail,
        "tags": tags,
        "pull_tag": _pull_tag(tags.items),
        **_notices(request),
    }
    return await render(request, "repository.html", context)


def _notices(request: web.Request) -> dict[str, str]:
    """The confirmation a form's redirect asks for (``?saved=``, ``?deleted=``), limited to what the forms send so
    a crafted link can't put arbitrary words on the page."""
    saved = request.query.get("saved", "")
    deleted = request.query.get("deleted", "")
    return {
        "saved": saved if saved in ("description", "visibility") else "",
        "deleted": deleted if TAG_PATTERN.fullmatch(deleted) else "",
    }


def _pull_tag(tags: list[TagSummary]) -> str | None:
    """The tag the pull commands name: ``latest`` when it is on the page, else the newest pushed one."""
    names = [tag.name for tag in tags]
    return "latest" if "latest" in names else (names[0] if names else None)


async def tag_page(request: web.Request) -> web.Response:
    """``/r/{name}/-/tags/{tag}``: platforms with layers and config, manifest JSON, referrers."""
    name, tag = request.match_info["name"], request.match_info["tag"]
    detail = await request.app[keys.CATALOG].tag(await viewer_of(request), name, tag)
    return await render(request, "tag.html", {"detail": detail})


async def files_page(request: web.Request) -> web.StreamResponse:
    """``/r/{name}/-/tags/{tag}/files/{path}``: a directory listing (paths ending in ``/``) or a file's content
    (symlinks followed inside the image). A directory asked for without the trailing slash redirects to it."""
    name, tag, path = request.match_info["name"], request.match_info["tag"], "/" + request.match_info["path"]
    await request.app[keys.CATALOG].require_visible(await viewer_of(request), name)
    files, platform = request.app[keys.FILES], platform_param(request)
    if path.endswith("/"):
        listing = await files.directory(name, tag, path, platform)
        context = {"listing": listing, "platform": platform, "crumbs": _crumbs(listing.path + "/")}
        return await render(request, "files.html", context)
    try:
        content = await files.file(name, tag, path, platform)
    except InvalidInput:  # not a regular file: a directory (or a link to one) gets its listing, else the error
        await files.directory(name, tag, path, platform)
        raise web.HTTPFound(request.rel_url.with_path(request.path + "/")) from None
    return await render(request, "file.html", {"file": content, "platform": platform, "crumbs": _crumbs(path)})


def _crumbs(path: str) -> list[tuple[str, str]]:
    """Breadcrumbs of an image path: ``[(label, directory path ending in /)]`` from ``/`` down."""
    parts = [part for part in path.split("/") if part]
    is_dir = path.endswith("/")
    crumbs = [("/", "/")]
    for depth in range(1, len(parts) + (1 if is_dir else 0)):
        crumbs.append((parts[depth - 1], "/" + "/".join(parts[:depth]) + "/"))
    return crumbs


async def files_root(request: web.Request) -> web.StreamResponse:
    """``/r/{name}/-/tags/{tag}/files``: redirect to the root directory, keeping the query (``platform``)."""
    raise web.HTTPFound(request.rel_url.with_path(request.path + "/"))


async def diff_page(request: web.Request) -> web.Response:
    """``/r/{name}/-/diff?from=&to=&platform=``: layers and files that differ between two tags; without both
    tags, the form alone."""
    catalog, viewer, name = request.app[keys.CATALOG], await viewer_of(request), request.match_info["name"]
    await catalog.require_visible(viewer, name)
    choices = await catalog.tags(viewer, name, 1, DIFF_CHOICES)
    old, new = request.query.get("from", ""), request.query.get("to", "")
    diff = await request.app[keys.FILES].diff(name, old, new, platform_param(request)) if old and new else None
    context = {"name": name, "choices": choices.items, "old": old, "new": new, "diff": diff}
    return await render(request, "diff.html", context)


async def sitemap_xml(request: web.Request) -> web.Response:
    """``/sitemap.xml``: the home page and every public repository (as an anonymous visitor sees them)."""
    base = base_url(request)
    names = await request.app[keys.CATALOG].sitemap(ANONYMOUS)
    urls = [f"{base}/", *(f"{base}/r/{name}" for name in names)]
    body = "".join(f"<url><loc>{escape(url)}</loc></url>" for url in urls)
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>\n'
    return web.Response(text=xml, content_type="application/xml", charset="utf-8")


async def robots_txt(request: web.Request) -> web.Response:
    """``/robots.txt``: crawl the catalog pages, not the file browser, diffs, forms or APIs."""
    lines = [
        "User-agent: *",
        "Disallow: /v2/",
        "Disallow: /api/",
        "Disallow: /auth/",
        "Disallow: /login",
        "Disallow: /r/*/-/diff",
        "Disallow: /r/*/-/tags/*/files/",
        f"Sitemap: {base_url(request)}/sitemap.xml",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

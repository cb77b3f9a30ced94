"""The catalog's web pages through the aiohttp test client: sessions and CSRF on their own, then every page's status,
escaping, visibility (a private repository is a 404 page for outsiders, like a missing one), sign-in, cookie flags and
the admin forms."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from catalog import keys
from catalog.web import csrf
from catalog.web.forms import FAILED, safe_next
from catalog.web.origin import cross_origin, origin_of
from catalog.web.render import ago, human_size, short_digest, url_path, with_query
from catalog.web.sessions import COOKIE, KEY_FILE, LIFETIME, SessionStore, load_secret
from registry import keys as registry_keys
from registry.config import Settings
from tests.catalog.conftest import (
    PASSWORDS,
    Client,
    app_of,
    auth_headers,
    basic,
    catalog_settings,
    engine_of,
    push_artifact,
    push_image,
    push_index,
)
from tests.support.server import free_port

SECRET = b"k" * 32


class Clock:
    """A settable clock for session expiry."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def request_with_cookies(cookies: dict[str, str]) -> web.Request:
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return make_mocked_request("GET", "/", headers={"Cookie": header} if header else {})


# -- sessions ---------------------------------------------------------------------------------------------------


def test_session_round_trip_and_fresh_nonce_per_sign_in() -> None:
    store = SessionStore(SECRET)
    value, session = store.issue("alice")
    assert store.decode(value) == session
    assert session.user == "alice"
    _, again = store.issue("alice")
    assert again.nonce != session.nonce


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # MAC changed
        lambda v: "eyJ1Ijoicm9vdCIsImUiOjk5OTk5OTk5OTksIm4iOiJ4In0" + v[v.index(".") :],  # body swapped
        lambda v: v.replace(".", ""),
        lambda v: v + ".x",
        lambda v: "!!!." + v.partition(".")[2],
        lambda _: "",
        lambda v: v + "A" * 5000,
    ],
)
def test_forged_or_malformed_session_cookies_are_refused(mangle: Any) -> None:
    store = SessionStore(SECRET)
    value, _ = store.issue("alice")
    assert store.decode(mangle(value)) is None


def test_session_from_another_registry_secret_is_refused() -> None:
    value, _ = SessionStore(b"a" * 32).issue("alice")
    assert SessionStore(b"b" * 32).decode(value) is None


def test_session_expires_after_its_lifetime() -> None:
    clock = Clock()
    store = SessionStore(SECRET, clock=clock)
    value, session = store.issue("alice")
    assert session.expires == int(clock.now) + LIFETIME == int(clock.now) + 12 * 3600
    clock.now += LIFETIME - 1
    assert store.decode(value) is not None
    clock.now += 1
    assert store.decode(value) is None


def test_revoked_session_is_refused_and_revocations_are_pruned() -> None:
    clock = Clock()
    store = SessionStore(SECRET, clock=clock)
    value, session = store.issue("alice")
    store.revoke(session)
    assert store.decode(value) is None
    clock.now += LIFETIME + 1
    _, later = store.issue("bob")
    store.revoke(later)
    assert session.nonce not in store._revoked


async def test_session_user_reads_the_request_cookie() -> None:
    store = SessionStore(SECRET)
    value, _ = store.issue("alice")
    session = store.read(request_with_cookies({COOKIE: value}))
    assert session is not None
    assert session.user == "alice"
    assert store.read(request_with_cookies({})) is None


def test_secret_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    first = load_secret(tmp_path / "state")
    path = tmp_path / "state" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert load_secret(tmp_path / "state") == first


def test_secret_in_memory_when_state_dir_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    assert len(load_secret(blocker)) == 32
    assert load_secret(None) != load_secret(None)


def test_damaged_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="expected 32"):
        load_secret(tmp_path)


# -- CSRF -------------------------------------------------------------------------------------------------------


def test_session_csrf_token_is_bound_to_the_session() -> None:
    store = SessionStore(SECRET)
    _, session = store.issue("alice")
    _, other = store.issue("alice")
    token = csrf.session_token(store, session)
    csrf.check_session(store, session, token)
    assert token != csrf.session_token(store, other)
    for wrong in (None, "", csrf.session_token(store, other), token + "x", "x" * 1000):
        with pytest.raises(csrf.CsrfError):
            csrf.check_session(store, session, wrong)
    with pytest.raises(csrf.CsrfError, match="not signed in"):
        csrf.check_session(store, None, token)


def test_session_csrf_token_is_not_a_session_mac() -> None:
    store = SessionStore(SECRET)
    value, session = store.issue("alice")
    assert csrf.session_token(store, session) not in value


def test_anonymous_double_submit() -> None:
    token, new = csrf.anonymous_token(request_with_cookies({}))
    assert new
    request = request_with_cookies({csrf.ANON_COOKIE: token})
    assert csrf.anonymous_token(request) == (token, False)
    csrf.check_anonymous(request, token)
    with pytest.raises(csrf.CsrfError):
        csrf.check_anonymous(request, token[:-1])
    with pytest.raises(csrf.CsrfError, match="cookie"):
        csrf.check_anonymous(request_with_cookies({}), token)
    assert csrf.anonymous_token(request_with_cookies({csrf.ANON_COOKIE: "short"}))[1]


# -- helpers ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"), [(None, "—"), (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_234_567, "1.2 MB")]
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


def test_small_formatters() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert short_digest("sha256:" + "ab" * 32) == "abababababab"
    assert ago(None) == "never"
    assert ago(now - timedelta(seconds=20), now) == "just now"
    assert ago(now - timedelta(minutes=1), now) == "1 minute ago"
    assert ago(now - timedelta(hours=5), now) == "5 hours ago"
    assert ago(now - timedelta(days=40), now) == "1 month ago"
    assert url_path("/a b/<c>?#") == "/a%20b/%3Cc%3E%3F%23"
    assert with_query("/s", {"q": "a&b"}, page=2, platform=None) == "/s?q=a%26b&page=2"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        (None, "/"),
        ("/r/alice/app", "/r/alice/app"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("relative", "/"),
        ("/a\nb", "/"),
        ("/a\rb", "/"),
    ],
)
def test_safe_next(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


# -- pages (open registry) --------------------------------------------------------------------------------------

LAYER_FILES = {"etc/motd": b"welcome to the app\n", "bin/tool": b"\x7fELF\x00\x01binary"}


async def html(client: Client, path: str, status: int = 200, **kwargs: Any) -> str:
    resp = await client.get(path, **kwargs)
    text = await resp.text()
    assert resp.status == status, text[:2000]
    assert resp.content_type == "text/html"
    assert "Traceback" not in text
    return text


async def test_page_headers_forbid_inline_scripts_and_framing(catalog_client: Client) -> None:
    resp = await catalog_client.get("/")
    assert resp.status == 200
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    static = await catalog_client.get("/static/dockyard.css")
    assert static.status == 200
    assert "text/css" in static.headers["Content-Type"]


async def test_home_search_repository_tag_files_and_diff(catalog_client: Client) -> None:
    c = catalog_client
    await push_image(c, "team/web", "v1", LAYER_FILES, labels={"org.example.owner": "team"})
    await push_image(c, "team/web", "v2", {**LAYER_FILES, "etc/added.conf": b"new=1\n"})
    home = await html(c, "/")
    assert 'href="/r/team/web"' in home
    assert '<label for="home-search"' in home
    found = await html(c, "/search?q=web")
    assert "1 result for" in found
    assert 'href="/r/team/web"' in found
    assert "No repository matches" in await html(c, "/search?q=nothing-like-this")

    repo = await html(c, "/r/team/web")
    host = c.server.host + ":" + str(c.server.port)
    assert f"docker pull {host}/team/web:v2" in repo
    assert f"dockyard pull {host}/team/web:v2" in repo
    assert repo.index('href="/r/team/web/-/tags/v2"') < repo.index('href="/r/team/web/-/tags/v1"')
    assert "linux/amd64" in repo
    assert "Manage" not in repo  # no accounts: nobody administers from the pages

    tag = await html(c, "/r/team/web/-/tags/v1")
    assert "COPY bin/tool etc/motd /" in tag
    assert "org.example.owner=team" in tag
    assert "&#34;schemaVersion&#34;: 2" in tag or "&#34;schemaVersion&#34;:2" in tag

    root = await html(c, "/r/team/web/-/tags/v1/files/")
    assert 'href="/r/team/web/-/tags/v1/files/etc/"' in root
    listing = await html(c, "/r/team/web/-/tags/v1/files/etc/")
    assert 'href="/r/team/web/-/tags/v1/files/etc/motd"' in listing
    assert "welcome to the app" in await html(c, "/r/team/web/-/tags/v1/files/etc/motd")
    assert "Binary file" in await html(c, "/r/team/web/-/tags/v1/files/bin/tool")
    moved = await c.get("/r/team/web/-/tags/v1/files/etc", allow_redirects=False)
    assert moved.status == 302
    assert moved.headers["Location"].endswith("/files/etc/")

    diff = await html(c, "/r/team/web/-/diff?from=v1&to=v2")
    assert "/etc/added.conf" in diff
    assert "change-added" in diff


async def test_multi_platform_tag_with_referrers(catalog_client: Client) -> None:
    c = catalog_client
    amd = await push_image(c, "team/multi", None, {"arch": b"amd64\n"})
    arm = await push_image(c, "team/multi", None, {"arch": b"arm64\n"}, architecture="arm64")
    index = await push_index(c, "team/multi", "both", [amd, arm])
    await push_artifact(c, "team/multi", index, "application/vnd.example.sbom", b"{}", annotations={"k": "<v>"})
    page = await html(c, "/r/team/multi/-/tags/both")
    assert "<h2" in page
    assert "linux/amd64</h2>" in page
    assert "linux/arm64/v8</h2>" in page
    assert "files/?platform=linux%2Farm64%2Fv8" in page
    assert "application/vnd.example.sbom" in page
    assert "k=&lt;v&gt;" in page
    arm_root = await html(c, "/r/team/multi/-/tags/both/files/?platform=linux%2Farm64%2Fv8")
    assert 'href="/r/team/multi/-/tags/both/files/arch?platform=linux%2Farm64%2Fv8"' in arm_root
    assert "arm64" in await html(c, "/r/team/multi/-/tags/both/files/arch?platform=linux%2Farm64%2Fv8")
    await html(c, "/r/team/multi/-/tags/both/files/?platform=plan9", 400)


async def test_head_and_wrong_methods_on_pages(catalog_client: Client) -> None:
    head = await catalog_client.head("/")
    assert head.status == 200
    wrong = await catalog_client.post("/search", data={})
    assert wrong.status == 405
    assert "Method not allowed" in await wrong.text()


async def test_errors_are_pages_with_their_status(catalog_client: Client) -> None:
    c = catalog_client
    await push_image(c, "team/web", "v1", LAYER_FILES)
    assert "Not found" in await html(c, "/r/team/missing", 404)
    await html(c, "/r/team/web/-/tags/nope", 404)
    await html(c, "/r/team/web/-/tags/v1/files/no/such/", 404)
    await html(c, "/u/nobody-at-all", 404)
    await html(c, "/search?q=x&page=0", 400)
    await html(c, "/r/team/web?page=abc", 400)
    await html(c, "/no/such/page", 404)
    await html(c, "/r/team/web/-/diff?from=v1&to=nope", 404)
    api = await c.get("/v2/team/missing/tags/list")
    assert api.content_type == "application/json"  # the registry API keeps its JSON errors


async def test_search_query_is_escaped(catalog_client: Client) -> None:
    page = await html(catalog_client, "/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_confirmation_notices_take_only_what_the_forms_send(catalog_client: Client) -> None:
    await push_image(catalog_client, "team/web", "v1", LAYER_FILES)
    page = await html(catalog_client, "/r/team/web?saved=your+account+password&deleted=a%20b%3Cscript%3E")
    assert "Saved the" not in page
    assert "Deleted the tag" not in page
    assert "Saved the visibility." in await html(catalog_client, "/r/team/web?saved=visibility")


async def test_sign_in_is_not_enabled_without_accounts(catalog_client: Client) -> None:
    page = await html(catalog_client, "/login")
    assert "Sign-in is not enabled" in page
    resp = await catalog_client.post("/login", data={"username": "a", "password": "b"})
    assert resp.status == 400


async def test_robots_and_sitemap(catalog_client: Client) -> None:
    await push_image(catalog_client, "team/web", "v1", LAYER_FILES)
    robots = await catalog_client.get("/robots.txt")
    assert "Sitemap: http://" in await robots.text()
    sitemap = await (await catalog_client.get("/sitemap.xml")).text()
    assert "/r/team/web</loc>" in sitemap


# -- pages with accounts ----------------------------------------------------------------------------------------


async def push_as(client: Client, user: str, name: str, tag: str, files: dict[str, bytes] | None = None) -> None:
    headers = await auth_headers(client, user, f"repository:{name}:pull,push")
    await push_image(client, name, tag, files or LAYER_FILES, headers=headers)


async def make_private(client: Client, name: str) -> None:
    app = client.app
    assert app is not None
    catalog = app[keys.CATALOG]
    await catalog.set_visibility(await catalog.viewer("root"), name, "private")


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: Client, user: str, password: str | None = None, status: int = 303) -> Any:
    token = form_token(await html(client, "/login"))
    data = {"username": user, "password": password or PASSWORDS[user], "csrf_token": token, "next": "/r/x"}
    resp = await client.post("/login", data=data, allow_redirects=False)
    assert resp.status == status, await resp.text()
    return resp


async def test_login_sets_a_hardened_session_cookie(token_catalog_client: Client) -> None:
    resp = await sign_in(token_catalog_client, "alice")
    assert resp.headers["Location"] == "/r/x"
    cookie = next(v for v in resp.headers.getall("Set-Cookie") if v.startswith(f"{COOKIE}="))
    flags = cookie.lower()
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/" in flags
    assert "secure" not in flags  # plain HTTP here
    assert f"max-age={LIFETIME}" in flags
    assert "Signed in as" in await html(token_catalog_client, "/")


async def test_login_failure_is_one_message_for_wrong_password_and_unknown_user(
    token_catalog_client: Client,
) -> None:
    wrong = await sign_in(token_catalog_client, "alice", "not-her-password", status=401)
    unknown = await sign_in(token_catalog_client, "nobody", "whatever-password", status=401)
    for resp in (wrong, unknown):
        text = await resp.text()
        assert FAILED in text
        assert not any(v.startswith(f"{COOKIE}=") for v in resp.headers.getall("Set-Cookie", []))
    assert "nobody" in await unknown.text()  # the username stays in the form, escaped


async def test_login_without_or_with_wrong_csrf_token_is_refused(token_catalog_client: Client) -> None:
    c = token_catalog_client
    missing = await c.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert missing.status == 403
    assert "security" in await missing.text()
    await html(c, "/login")  # sets the double-submit cookie
    wrong = await c.post("/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": "x" * 32})
    assert wrong.status == 403
    assert "Signed in as" not in await html(c, "/")


async def test_private_repository_is_a_404_for_outsiders_and_shows_to_members(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/secret", "v1")
    await push_as(c, "alice", "alice/open", "v1")
    await make_private(c, "alice/secret")
    for path in ("/r/alice/secret", "/r/alice/secret/-/tags/v1", "/r/alice/secret/-/tags/v1/files/"):
        await html(c, path, 404)
    missing = await html(c, "/r/alice/absent", 404)
    hidden = await html(c, "/r/alice/secret", 404)
    assert hidden.replace("secret", "absent") == missing  # the same page as for a missing repository
    assert "alice/secret" not in await html(c, "/search?q=alice")
    assert "alice/secret" not in await html(c, "/u/alice")
    assert "alice/secret" not in await (await c.get("/sitemap.xml")).text()

    await sign_in(c, "bob")
    await html(c, "/r/alice/secret", 404)
    c.session.cookie_jar.clear()
    await sign_in(c, "alice")
    page = await html(c, "/r/alice/secret")
    assert "badge-private" in page
    assert "alice/secret" in await html(c, "/search?q=alice")
    assert "alice/secret" not in await (await c.get("/sitemap.xml")).text()


async def test_admin_edits_description_which_is_rendered_safely(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    await sign_in(c, "alice")
    page = await html(c, "/r/alice/app")
    assert 'action="/r/alice/app/-/description"' in page
    evil = "# Hello\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n[link](javascript:alert(2))"
    resp = await c.post(
        "/r/alice/app/-/description",
        data={"description": evil, "csrf_token": form_token(page)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/r/alice/app?saved=description"
    shown = await html(c, "/r/alice/app")
    assert "<h1>Hello</h1>" in shown
    assert "<script>alert" not in shown
    assert "&lt;script&gt;alert" in shown
    assert "<img src=x" not in shown
    assert 'href="javascript:' not in shown
    assert "onerror=alert(1)&gt;" in shown  # the admin's textarea shows the source, escaped
    assert "Saved the description" in await html(c, "/r/alice/app?saved=description")


async def test_admin_forms_refuse_missing_wrong_or_foreign_tokens(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    anonymous = await c.post("/r/alice/app/-/description", data={"description": "x"})
    assert anonymous.status == 403
    await sign_in(c, "alice")
    no_token = await c.post("/r/alice/app/-/description", data={"description": "hacked"})
    assert no_token.status == 403
    assert "security token" in await no_token.text()
    wrong = await c.post("/r/alice/app/-/visibility", data={"visibility": "private", "csrf_token": "A" * 43})
    assert wrong.status == 403
    page = await html(c, "/r/alice/app")
    assert "hacked" not in page
    assert "badge-public" in page


async def test_non_admin_cannot_edit(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    await sign_in(c, "bob")
    page = await html(c, "/r/alice/app")
    assert "Manage" not in page
    token = form_token(page)  # bob's sign-out form token: valid CSRF, but bob is no admin of alice/
    resp = await c.post("/r/alice/app/-/description", data={"description": "bob was here", "csrf_token": token})
    assert resp.status == 403
    await html(c, "/r/alice/app/-/tags/v1/delete", 403)


async def test_visibility_change_and_tag_delete_with_confirmation(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    await push_as(c, "alice", "alice/app", "v2", {"other": b"2"})
    await sign_in(c, "alice")
    token = form_token(await html(c, "/r/alice/app"))
    resp = await c.post("/r/alice/app/-/visibility", data={"visibility": "private", "csrf_token": token})
    assert resp.status == 200
    assert "badge-private" in await resp.text()
    bad = await c.post("/r/alice/app/-/visibility", data={"visibility": "secret", "csrf_token": token})
    assert bad.status == 400

    confirm = await html(c, "/r/alice/app/-/tags/v1/delete")
    assert 'action="/r/alice/app/-/tags/v1/delete"' in confirm
    deleted = await c.post("/r/alice/app/-/tags/v1/delete", data={"csrf_token": form_token(confirm)})
    assert deleted.status == 200
    assert "Deleted the tag v1" in await deleted.text()
    await html(c, "/r/alice/app/-/tags/v1", 404)
    await html(c, "/r/alice/app/-/tags/v2")


async def test_logout_needs_the_token_and_ends_the_session(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await sign_in(c, "alice")
    page = await html(c, "/")
    refused = await c.post("/logout", data={})
    assert refused.status == 403
    stolen = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
    resp = await c.post("/logout", data={"csrf_token": form_token(page)}, allow_redirects=False)
    assert resp.status == 303
    assert any(v.startswith(f'{COOKIE}=""') for v in resp.headers.getall("Set-Cookie"))
    assert "Signed in as" not in await html(c, "/")
    replay = await html(c, "/", cookies={COOKIE: stolen})
    assert "Signed in as" not in replay  # revoked, not only cleared in the browser


async def test_read_only_token_signs_in_but_changes_nothing(token_catalog_client: Client) -> None:
    from auth.guard import GUARD

    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    app = c.app
    assert app is not None
    _, secret = await app[GUARD].accounts.create_token("alice", "read only", read_only=True, actor="test")
    await sign_in(c, "alice", secret)
    page = await html(c, "/r/alice/app")
    assert "Signed in as" in page
    assert "Manage" not in page
    resp = await c.post("/r/alice/app/-/description", data={"description": "x", "csrf_token": form_token(page)})
    assert resp.status == 403
    assert "read-only access token" in await resp.text()
    await html(c, "/r/alice/app/-/tags/v1/delete", 403)
    # The session cookie is also the JSON API's viewer: read-only there too.
    api = "/api/v1/catalog/repositories/alice/app"
    assert (await c.patch(api, json={"description": "x"})).status == 403
    assert (await c.delete(f"{api}/-/tags/v1")).status == 403
    assert (await c.get(f"{api}/-/tags/v1")).status == 200


async def test_failed_sign_ins_are_throttled_like_docker_login(token_catalog_client: Client) -> None:
    from auth.guard import GUARD

    c = token_catalog_client
    app = c.app
    assert app is not None
    app[GUARD].limiter.max_failures = 2
    for _ in range(2):
        await sign_in(c, "alice", "wrong-password", status=401)
    refused = await sign_in(c, "alice", status=429)  # even the right password, until the window passes
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in await refused.text()


# -- a database that can't be reached ---------------------------------------------------------------------------


def unreachable_engine() -> AsyncEngine:
    """An engine on a PostgreSQL port nothing listens on: every query fails as during an outage."""
    return create_async_engine(f"postgresql+asyncpg://dockyard@127.0.0.1:{free_port()}/accounts")


async def test_a_database_outage_is_a_503_page_and_sign_in_fails_closed(token_catalog_client: Client) -> None:
    from auth.guard import GUARD

    c = token_catalog_client
    app = app_of(c)
    await sign_in(c, "alice")
    dead = unreachable_engine()
    catalog, limiter = app[keys.CATALOG], app[GUARD].limiter
    catalog.engine, limiter.engine = dead, dead
    try:
        for signed_in in (True, False):
            for path in ("/", "/search?q=app", "/r/alice/app"):
                resp = await c.get(path)
                page = await resp.text()
                assert (resp.status, resp.content_type, resp.headers["Retry-After"]) == (503, "text/html", "5")
                assert "Temporarily unavailable" in page
                assert "can&#39;t be reached right now" in page
                assert ("Signed in as" in page) is signed_in  # the header still knows the session
            c.session.cookie_jar.clear()
        login_page = await html(c, "/login")  # the form itself needs no database
        form = {"username": "alice", "password": PASSWORDS["alice"], "csrf_token": form_token(login_page)}
        signed = await c.post("/login", data=form, allow_redirects=False)
        assert signed.status == 503  # no unlimited guessing while the limits can't be read
        token = await c.get("/auth/token", params={"service": "dockyard"}, headers=basic("alice"))
        assert (token.status, token.headers["Retry-After"]) == (503, "5")
        api = await c.get("/api/v1/catalog/home")
        assert (api.status, api.headers["Retry-After"]) == (503, "5")
        assert (await api.json())["error"]["code"] == "UNAVAILABLE"
    finally:
        catalog.engine, limiter.engine = engine_of(c), app[GUARD].accounts.engine
        await dead.dispose()
    assert "Signed in as" not in await html(c, "/")  # back to normal


# -- the same-origin check --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("https://registry.example", "https://REGISTRY.example:443/r/x?y=1", True),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/", True),
        ("http://registry.example", "https://registry.example", False),
        ("http://registry.example:8080", "http://registry.example", False),
        ("http://[::1]:5000", "http://[::1]:5000/path", True),
    ],
)
def test_origins_compare_by_scheme_host_and_port(left: str, right: str, same: bool) -> None:
    assert (origin_of(left) == origin_of(right)) is same
    assert origin_of(left) is not None


@pytest.mark.parametrize("value", ["null", "", "ftp://registry.example", "http://", "http://host:99999", "/relative"])
def test_values_without_an_origin_never_match(value: str) -> None:
    assert origin_of(value) is None


def origin_request(settings: Settings, headers: dict[str, str]) -> web.Request:
    app = web.Application()
    app[registry_keys.SETTINGS] = settings
    return make_mocked_request("POST", "/logout", headers={"Host": "10.0.0.5:5000", **headers}, app=app)


def test_the_origin_is_the_configured_public_url_when_there_is_one(tmp_path: Path) -> None:
    settings = catalog_settings(tmp_path, token=True)
    public = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"public_url": "https://reg.example"})}
    )
    assert not cross_origin(origin_request(settings, {"Origin": "http://10.0.0.5:5000"}))
    assert cross_origin(origin_request(public, {"Origin": "http://10.0.0.5:5000"}))
    assert not cross_origin(origin_request(public, {"Origin": "https://reg.example"}))
    assert not cross_origin(origin_request(public, {}))


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/r/alice/app"},
    {"Origin": "https://evil.example", "Referer": "{own}/r/alice/app"},  # the Origin decides when both are sent
    {"Origin": "{own}:81"},
]


def own_origin(client: Client) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_session_forms_from_another_origin_are_refused(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    await sign_in(c, "alice")
    own = own_origin(c)
    token = form_token(await html(c, "/r/alice/app"))
    for headers in CROSS_SITE:
        sent = {name: value.format(own=own) for name, value in headers.items()}
        resp = await c.post(
            "/r/alice/app/-/description", data={"description": "forged", "csrf_token": token}, headers=sent
        )
        assert resp.status == 403, sent
        assert "sent from another site" in await resp.text()
        assert (await c.post("/logout", data={"csrf_token": token}, headers=sent)).status == 403
    for same in ({"Origin": own}, {"Referer": f"{own}/r/alice/app"}, {}):  # neither header: a non-browser client
        resp = await c.post(
            "/r/alice/app/-/description", data={"description": "mine", "csrf_token": token}, headers=same
        )
        assert resp.status == 200, same  # followed the redirect back to the page
    page = await html(c, "/r/alice/app")
    assert "forged" not in page
    assert "Signed in as" in page


async def test_session_api_changes_from_another_origin_are_refused(token_catalog_client: Client) -> None:
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    await sign_in(c, "alice")
    own, api = own_origin(c), "/api/v1/catalog/repositories/alice/app"
    for headers in CROSS_SITE:
        sent = {name: value.format(own=own) for name, value in headers.items()}
        patched = await c.patch(api, json={"description": "forged"}, headers=sent)
        deleted = await c.delete(f"{api}/-/tags/v1", headers=sent)
        for resp in (patched, deleted):
            assert resp.status == 403, sent
            assert (await resp.json())["error"]["code"] == "FORBIDDEN"
    assert (await c.get(api, headers={"Origin": "https://evil.example"})).status == 200  # reading changes nothing
    assert (await c.patch(api, json={"description": "mine"}, headers={"Origin": own})).status == 200
    c.session.cookie_jar.clear()  # Basic credentials are not the cookie: a browser never sends them on its own
    resp = await c.patch(api, json={"description": "basic"}, headers={"Origin": "https://x.example", **basic("alice")})
    assert resp.status == 200
    assert (await (await c.get(api)).json())["summary"]["description"] == "basic"

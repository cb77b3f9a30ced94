"""The catalog in a real browser: headless Chromium (Playwright's sync API) against a live ``dockyard serve`` in
token mode, with images pushed by skopeo and through the registry API.

One browser and one registry for the module; every test opens fresh incognito tabs (own cookies) and saves a
full-page screenshot of each page it checks under its own ``tmp_path/screenshots`` (the paths are printed; run with
``-s`` to see them). All tests share the xdist group ``browser``, so one worker runs them (``--dist loadgroup``).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import Tab, chromium, tab
from tests.support.clients import Skopeo, ToolHome
from tests.support.images import (
    OCI_CONFIG,
    OCI_MANIFEST,
    ImageFactory,
    Layer,
    TarEntry,
    canonical_json,
    image_config,
    layer_from_entries,
    sha256_digest,
)
from tests.support.registries import TOKEN_ENV, add_user, push_image
from tests.support.server import LiveRegistry, live_registry

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("browser")]

USERS = {"alice": "alice-browser-pw-1", "bob": "bob-browser-pw-22"}
TIMEOUT = 30


@dataclass(frozen=True)
class Site:
    """The live registry the browser visits, with what was pushed into it."""

    registry: LiveRegistry

    @property
    def url(self) -> str:
        return self.registry.url

    def basic(self, user: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def bearer(self, user: str, name: str) -> dict[str, str]:
        """A push token for ``name`` from the registry's token service."""
        params = {"service": "dockyard", "scope": f"repository:{name}:pull,push"}
        resp = requests.get(f"{self.url}/auth/token", params=params, headers=self.basic(user), timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}

    def push_api_image(self, user: str, name: str, tag: str, layers: tuple[Layer, ...]) -> None:
        """Push ``layers`` as an OCI image through ``/v2`` (monolithic blob uploads, then the manifest)."""
        headers = self.bearer(user, name)
        config = image_config(layers, "amd64")
        for blob in (config, *(layer.blob for layer in layers)):
            url = f"{self.url}/v2/{name}/blobs/uploads/?digest={sha256_digest(blob)}"
            resp = requests.post(url, data=blob, headers=headers, timeout=TIMEOUT)
            assert resp.status_code == 201, resp.text
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
                "layers": [layer.descriptor() for layer in layers],
            }
        )
        resp = requests.put(
            f"{self.url}/v2/{name}/manifests/{tag}",
            data=manifest,
            headers={**headers, "Content-Type": OCI_MANIFEST},
            timeout=TIMEOUT,
        )
        assert resp.status_code == 201, resp.text

    def update_repository(self, user: str, name: str, **changes: str) -> None:
        """``PATCH /api/v1/repositories/{name}`` (description, visibility) as ``user``."""
        resp = requests.patch(
            f"{self.url}/api/v1/repositories/{name}", json=changes, headers=self.basic(user), timeout=TIMEOUT
        )
        assert resp.status_code == 200, resp.text


def etc_layer(files: dict[str, bytes], comment: str) -> Layer:
    """A layer of files under ``/etc``."""
    entries = [TarEntry("etc/", "dir"), *(TarEntry(f"etc/{n}", "file", data, mode=0o644) for n, data in files.items())]
    return layer_from_entries(entries, comment)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for these tests (a missing chromium skips locally and fails under CI).

    Module scope, not session: while Playwright's sync API is open its event loop counts as running in this
    thread, so pytest-asyncio could not run the async tests a worker takes after these. All browser tests live in
    this module (one xdist group, run back to back), so this is still one browser per session."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A token-mode registry with alice and bob, holding:

    - ``alice/busybox:1.0``: a busybox image pushed by skopeo (public);
    - ``alice/webapp:v1`` and ``:v2`` pushed through the API (v2 adds ``/etc/added.conf``);
    - ``alice/secret:v1`` pushed through the API, then made private through the catalog API.
    """
    workdir = tmp_path_factory.mktemp("browser-site")
    for user, password in USERS.items():
        add_user(workdir / "registry-data", user, password)
    factory = ImageFactory(workdir / "oci")
    home = ToolHome(workdir / "tools")
    try:
        with live_registry(workdir, env=TOKEN_ENV) as registry:
            live = Site(registry)
            skopeo = Skopeo(home, registry)
            creds = f"alice:{USERS['alice']}"
            push_image(skopeo, factory.image("busybox-1.0"), registry.host, "alice/busybox:1.0", "--dest-creds", creds)
            base = factory.base_layer
            v1 = (base, etc_layer({"app.conf": b"mode=one\n"}, "COPY app.conf /etc/"))
            v2 = (*v1, etc_layer({"added.conf": b"feature=on\n"}, "COPY added.conf /etc/"))
            live.push_api_image("alice", "alice/webapp", "v1", v1)
            live.push_api_image("alice", "alice/webapp", "v2", v2)
            live.push_api_image("alice", "alice/secret", "v1", v1)
            live.update_repository("alice", "alice/secret", visibility="private")
            yield live
    finally:
        home.cleanup()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go."""
    return tmp_path / "screenshots"


@contextlib.contextmanager
def checked_tab(browser: Browser, shots: Path, *, phone: bool = False, javascript: bool = True) -> Iterator[Tab]:
    """A tab that must end without any JavaScript dialog or uncaught page error."""
    with tab(browser, shots, phone=phone, javascript=javascript) as opened:
        yield opened
        assert opened.dialogs == [], f"unexpected dialogs: {opened.dialogs}"
        assert opened.errors == [], f"page errors: {opened.errors}"


def sign_in(t: Tab, site: Site, user: str) -> None:
    """Sign in through the form (labels, not selectors: the form must be usable as people see it)."""
    page = t.open(f"{site.url}/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password or access token").fill(USERS[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()


def no_horizontal_scroll(page: Page) -> bool:
    width: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    return width


def test_search_finds_a_pushed_repository(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        page = t.open(site.url + "/")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Container images")
        expect(page.get_by_role("heading", name="Recently pushed")).to_be_visible()
        t.shoot("home")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.get_by_label("Search repositories by name or description").fill("busybox")
        page.keyboard.press("Enter")
        page.wait_for_url("**/search?q=busybox")
        results = page.get_by_role("link", name="alice/busybox")
        expect(results).to_be_visible()
        expect(page.get_by_role("link", name="alice/secret")).to_have_count(0)
        t.shoot("search-busybox")
        results.click()
        page.wait_for_url("**/r/alice/busybox")
        expect(page.get_by_role("heading", level=1)).to_contain_text("alice/busybox")
        expect(page.locator("#pull-docker")).to_have_text(f"docker pull {site.registry.host}/alice/busybox:1.0")
        expect(page.get_by_role("button", name="Copy").first).to_be_visible()  # the script's enhancement
        t.shoot("repository-busybox")


def test_tag_page_shows_the_layers_of_an_image_pushed_by_skopeo(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        page = t.open(f"{site.url}/r/alice/busybox")
        page.get_by_role("link", name="1.0", exact=True).click()
        page.wait_for_url("**/r/alice/busybox/-/tags/1.0")
        layers = page.locator("table.layers tbody tr")
        expect(layers).to_have_count(2)
        expect(layers.nth(0)).to_contain_text("busybox-static rootfs")
        expect(layers.nth(1)).to_contain_text("ADD hello.txt")
        expect(page.get_by_role("heading", name="linux/amd64")).to_be_visible()
        expect(page.locator("dl.config")).to_contain_text('["/bin/sh"]')
        expect(page.locator("pre.json").last).to_contain_text('"schemaVersion": 2')
        t.shoot("tag-busybox-1.0")


def test_file_browser_lists_bin_busybox(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        page = t.open(f"{site.url}/r/alice/busybox/-/tags/1.0")
        page.get_by_role("link", name="Browse files").click()
        page.get_by_role("link", name="bin/", exact=True).click()
        page.wait_for_url("**/files/bin/?platform=linux%2Famd64")
        row = page.locator("table.files tbody tr", has=page.get_by_role("link", name="busybox", exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text("rwx")
        t.shoot("files-bin")
        page.get_by_role("link", name="busybox", exact=True).click()
        expect(page.get_by_text("Binary file, not shown.")).to_be_visible()
        t.shoot("file-bin-busybox")
        t.open(f"{site.url}/r/alice/busybox/-/tags/1.0/files/hello.txt")
        expect(page.locator("pre.file-content")).to_contain_text("hello from busybox-1.0")
        t.shoot("file-hello-txt")


def test_sign_in_reveals_a_private_repository(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        page = t.open(f"{site.url}/search?q=alice")
        expect(page.get_by_role("link", name="alice/webapp")).to_be_visible()
        expect(page.get_by_role("link", name="alice/secret")).to_have_count(0)
        response = page.goto(f"{site.url}/r/alice/secret")
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        t.shoot("private-repo-anonymous-404")
        t.open(f"{site.url}/login")
        t.shoot("login")
        sign_in(t, site, "alice")
        t.open(f"{site.url}/search?q=alice")
        page.get_by_role("link", name="alice/secret").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("alice/secret")
        expect(page.locator("h1 .badge-private")).to_have_text("private")
        t.shoot("private-repo-signed-in")
    with checked_tab(browser, shots) as bob:
        sign_in(bob, site, "bob")
        response = bob.page.goto(f"{site.url}/r/alice/secret")
        assert response is not None
        assert response.status == 404


def test_description_edit_survives_a_reload(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        sign_in(t, site, "alice")
        page = t.open(f"{site.url}/r/alice/webapp")
        page.get_by_label("Description (Markdown)").fill("# Web app\n\nServes **pages** on port 8080.")
        page.get_by_role("button", name="Save description").click()
        page.wait_for_url("**/r/alice/webapp?saved=description")
        page.reload()
        description = page.locator("#description")
        expect(description.get_by_role("heading", name="Web app")).to_be_visible()
        expect(description.locator("strong")).to_have_text("pages")
        t.shoot("description-saved")
    with checked_tab(browser, shots) as anonymous:
        page = anonymous.open(f"{site.url}/r/alice/webapp")
        expect(page.locator("#description strong")).to_have_text("pages")
        expect(page.get_by_role("heading", name="Manage")).to_have_count(0)


XSS = (
    "<script>window.__xss = 1; alert('script')</script>\n\n"
    "<img src=x onerror=\"window.__xss = 2; alert('img')\">\n\n"
    "[click](javascript:alert('link'))\n\n"
    "<svg onload=alert('svg')></svg>"
)


def test_xss_in_a_description_is_shown_as_text(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        sign_in(t, site, "alice")
        page = t.open(f"{site.url}/r/alice/busybox")
        page.get_by_label("Description (Markdown)").fill(XSS)
        page.get_by_role("button", name="Save description").click()
        page.wait_for_url("**/r/alice/busybox?saved=description")
        t.shoot("xss-as-admin")
    with checked_tab(browser, shots) as visitor:
        page = visitor.open(f"{site.url}/r/alice/busybox")
        page.wait_for_timeout(300)  # give a payload's timers and image errors a chance to fire
        description = page.locator("#description")
        expect(description).to_contain_text("<script>window.__xss = 1; alert('script')</script>")
        expect(description).to_contain_text("<img src=x onerror=")
        for injected in ("script", "img", "svg", "[onerror]", "[onload]", "a[href^='javascript']"):
            expect(description.locator(injected)).to_have_count(0)
        assert page.evaluate("window.__xss") is None
        assert visitor.dialogs == []
        visitor.shoot("xss-as-visitor")


def test_diff_between_two_tags_shows_an_added_file(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots) as t:
        page = t.open(f"{site.url}/r/alice/webapp")
        form = page.locator("form.diff-form")
        form.get_by_label("From").select_option("v1")
        form.get_by_label("To").select_option("v2")
        form.get_by_role("button", name="Compare").click()
        page.wait_for_url("**/r/alice/webapp/-/diff?from=v1&to=v2")
        row = page.locator("table.files tbody tr", has_text="/etc/added.conf")
        expect(row).to_contain_text("added")
        expect(page.locator("ul.changes")).to_contain_text("COPY added.conf /etc/")
        t.shoot("diff-v1-v2")


def test_pages_fit_a_phone_screen(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots, phone=True) as t:
        for path, name in (
            ("/", "phone-home"),
            ("/r/alice/busybox", "phone-repository"),
            ("/r/alice/busybox/-/tags/1.0", "phone-tag"),
            ("/r/alice/busybox/-/tags/1.0/files/bin/", "phone-files"),
        ):
            page = t.open(site.url + path)
            assert no_horizontal_scroll(page), f"{path} scrolls sideways at phone width"
            t.shoot(name)


def test_reading_works_without_javascript(browser: Browser, site: Site, shots: Path) -> None:
    with checked_tab(browser, shots, javascript=False) as t:
        page = t.open(site.url + "/")
        page.get_by_label("Search repositories by name or description").fill("webapp")
        page.get_by_role("button", name="Search").last.click()
        page.get_by_role("link", name="alice/webapp").click()
        expect(page.locator("#pull-docker")).to_contain_text("alice/webapp:v2")
        expect(page.get_by_role("button", name="Copy")).to_have_count(0)  # hidden: nothing would copy
        page.get_by_role("link", name="v2", exact=True).click()
        expect(page.locator("table.layers tbody tr")).to_have_count(3)
        t.shoot("no-javascript-tag")

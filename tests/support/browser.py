"""Real headless Chromium (Debian's ``chromium``) driven by Playwright's sync API, for the catalog's browser tests.

``playwright install`` can't download browsers here and isn't needed: :func:`chromium` launches
``/usr/bin/chromium`` with the flags below (missing: a skip locally, a failure under ``CI=true``).
:class:`Tab` wraps one page with what the tests check on every page: JavaScript dialogs (an XSS probe would
open one), uncaught page errors, and full-page screenshots saved under the test's own output directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Dialog, Page, ViewportSize, sync_playwright

from tests.support.tools import require_tool

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=900)


def chromium_path() -> str:
    """The Chromium binary: ``/usr/bin/chromium`` (require_tool skips locally or fails under CI when missing)."""
    found = require_tool("chromium")
    return CHROMIUM if Path(CHROMIUM).is_file() else found


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for as long as the context lasts; closed (and its processes gone) on exit."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "page"


@dataclass
class Tab:
    """One browser page with its own cookies (a fresh context), watching for dialogs and page errors.

    Every dialog is recorded and dismissed (an injected ``alert()`` must never appear); ``shoot(name)`` saves a
    full-page PNG to ``shots/NN-name.png`` and prints its path."""

    context: BrowserContext
    page: Page
    shots: Path
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    taken: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, url: str) -> Page:
        """Go to ``url`` and wait for the page to load; asserts an HTML answer below 500."""
        response = self.page.goto(url, wait_until="load")
        assert response is not None, f"no response for {url}"
        assert response.status < 500, f"{url} answered {response.status}"
        return self.page

    def shoot(self, name: str) -> Path:
        """A full-page screenshot of the current page under ``shots``; returns (and prints) its path."""
        self.shots.mkdir(parents=True, exist_ok=True)
        number = len(list(self.shots.glob("*.png"))) + 1  # tabs of one test share the directory
        path = self.shots / f"{number:02d}-{_slug(name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@contextmanager
def tab(browser: Browser, shots: Path, *, phone: bool = False, javascript: bool = True) -> Iterator[Tab]:
    """A fresh incognito context and page (desktop size, or a phone's width with ``phone``; scripts off with
    ``javascript=False``)."""
    context = browser.new_context(viewport=PHONE if phone else DESKTOP, java_script_enabled=javascript)
    context.set_default_timeout(TIMEOUT_MS)
    opened = Tab(context, context.new_page(), shots)
    try:
        yield opened
    finally:
        opened.close()

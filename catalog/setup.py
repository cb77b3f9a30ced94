"""Mounting the catalog on the registry app: the queries, the JSON API (with the file browser's endpoints) and
the web pages. The metadata index itself is opened by ``registry.app`` (it must exist in every process that
pushes); this module adds what reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from catalog import keys
from catalog.api import add_catalog_api
from catalog.api_files import add_files_api
from catalog.queries import Catalog
from catalog.web import add_web
from registry import keys as registry_keys
from registry.config import Settings

if TYPE_CHECKING:
    from auth.guard import Guard

__all__ = ["add_catalog"]


def _guard(app: web.Application, settings: Settings) -> Guard | None:
    """The guard of token mode (its accounts and failed-login limiter), else None: an open registry has no
    accounts."""
    if settings.auth.mode != "token":
        return None
    from auth.guard import GUARD

    return app[GUARD]


def add_catalog(app: web.Application, settings: Settings) -> None:
    """Register the catalog API, the file browser API and the pages; at startup (after storage, the accounts and
    the index are open) put the :class:`Catalog` at ``keys.CATALOG``."""

    async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
        guard = _guard(app, settings)
        app[keys.CATALOG] = Catalog(
            app[keys.ENGINE],
            app[registry_keys.STORE],
            guard.accounts if guard else None,
            limiter=guard.limiter if guard else None,
            index=app[keys.INDEX],
            deletes_enabled=settings.delete_enabled,
        )
        yield

    app.cleanup_ctx.append(catalog_ctx)
    add_catalog_api(app)
    add_files_api(app)
    add_web(app)

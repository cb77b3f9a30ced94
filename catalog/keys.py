"""The catalog's typed keys on the aiohttp application, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from catalog.files import ImageFiles
    from catalog.index import Index
    from catalog.queries import Catalog
    from catalog.viewer import SessionLookup

ENGINE: web.AppKey[AsyncEngine] = web.AppKey("catalog_engine")
INDEX: web.AppKey[Index] = web.AppKey("catalog_index")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
FILES: web.AppKey[ImageFiles] = web.AppKey("catalog_files")
SESSIONS: web.AppKey[SessionLookup] = web.AppKey("catalog_sessions")

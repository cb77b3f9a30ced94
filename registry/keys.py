"""Every typed key stored on the aiohttp application, in one place."""

from __future__ import annotations

from aiohttp import web

from registry.access import AccessControl
from registry.config import Settings
from registry.index import MetadataIndex
from registry.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
ACCESS_CONTROL = web.AppKey("access_control", AccessControl)
METADATA_INDEX = web.AppKey("metadata_index", MetadataIndex)

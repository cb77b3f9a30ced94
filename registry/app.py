"""The application factory: ``create_app(settings)`` builds the whole registry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from registry import keys
from registry.accesslog import stamp_response
from registry.config import FilesystemStorage, MemoryStorage, S3Storage, Settings
from registry.errors import error_middleware
from registry.routes import add_routes
from registry.store import Store
from registry.store.gc import GcOptions, run_periodically
from storage.checked import Checked
from storage.driver import StorageDriver
from storage.filesystem import FilesystemDriver
from storage.memory import MemoryDriver


def open_driver(config: FilesystemStorage | MemoryStorage | S3Storage) -> StorageDriver:
    """Build the configured driver, wrapped in the key checker. An explicit name → class mapping."""
    inner: StorageDriver
    match config:
        case FilesystemStorage():
            inner = FilesystemDriver(config.root, fsync_puts=config.fsync_metadata)
        case MemoryStorage():
            inner = MemoryDriver()
        case S3Storage():
            from storage.s3 import S3Driver  # boto3 loads only when S3 is configured

            inner = S3Driver(config)
    return Checked(inner)


def _start_gc(store: Store, settings: Settings) -> asyncio.Task[None] | None:
    """The scheduled garbage collection of ``gc.interval``, or None when it is off."""
    config = settings.gc
    if config.interval <= 0:
        return None
    options = GcOptions(
        grace=config.grace, delete_untagged=config.delete_untagged, upload_max_age=config.upload_max_age
    )
    return asyncio.create_task(run_periodically(store, config.interval, options), name="dockyard-gc")


def _auth_middlewares(token_mode: bool) -> list[Middleware]:
    if not token_mode:
        return []
    from auth.guard import guard_middleware

    return [guard_middleware]


def _add_token_mode(app: web.Application, settings: Settings) -> None:
    """Accounts, the token service, the account API and the guard on every ``/v2`` route."""
    from auth.api import add_api_routes
    from auth.guard import GUARD, Guard
    from auth.service import add_token_routes

    async def guard_ctx(app: web.Application) -> AsyncIterator[None]:
        guard = await Guard.open(settings)
        app[GUARD] = guard
        app[keys.ACCESS_CONTROL] = guard
        yield
        await guard.close()

    app.cleanup_ctx.append(guard_ctx)
    add_token_routes(app)
    add_api_routes(app)


def create_app(settings: Settings, driver: StorageDriver | None = None) -> web.Application:
    """The registry app. ``driver`` overrides the configured storage (tests share one between apps)."""
    token_mode = settings.auth.mode == "token"
    middlewares = [error_middleware, *_auth_middlewares(token_mode)]
    app = web.Application(middlewares=middlewares, handler_args={"max_field_size": 16384})
    app[keys.SETTINGS] = settings
    if token_mode:
        _add_token_mode(app, settings)

    async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
        opened = driver or open_driver(settings.storage)
        app[keys.STORE] = store = Store.build(opened)
        collector = _start_gc(store, settings)
        yield
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await opened.close()

    app.cleanup_ctx.append(storage_ctx)
    app.on_response_prepare.append(stamp_response)
    add_routes(app)
    return app

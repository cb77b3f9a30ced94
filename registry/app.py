"""The application factory: ``create_app(settings)`` builds the whole registry."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from catalog import keys as catalog_keys
from registry import keys
from registry.accesslog import stamp_response
from registry.config import FilesystemStorage, MemoryStorage, S3Storage, Settings
from registry.errors import error_middleware
from registry.index import forget_collected
from registry.limits import handler_args, limits_middleware
from registry.routes import add_routes
from registry.store import Store
from registry.store.gc import GcOptions, collect
from storage.checked import Checked
from storage.driver import StorageDriver
from storage.filesystem import FilesystemDriver
from storage.memory import MemoryDriver

if TYPE_CHECKING:
    from auth.leases import Leases

log = logging.getLogger("dockyard.gc")
IO_THREADS = 16
GC_LEASE = "gc"


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


def _start_gc(app: web.Application, store: Store, settings: Settings) -> asyncio.Task[None] | None:
    """The scheduled garbage collection of ``gc.interval``, or None when it is off."""
    config = settings.gc
    if config.interval <= 0:
        return None
    options = GcOptions(
        grace=config.grace, delete_untagged=config.delete_untagged, upload_max_age=config.upload_max_age
    )
    return asyncio.create_task(_collect_periodically(app, store, config.interval, options), name="dockyard-gc")


async def _collect_periodically(app: web.Application, store: Store, interval: float, options: GcOptions) -> None:
    """``gc.interval`` inside ``dockyard serve``: collect every ``interval`` seconds until cancelled, and tell
    the metadata index which manifests went. Replicas sharing a database take turns through the ``gc`` lease: a
    round in which another process holds it is skipped. A failed run is logged and retried; it never stops the
    server."""
    from auth.leases import Leases, new_holder

    holder = new_holder()
    while True:
        await asyncio.sleep(interval)
        try:
            await _collect_once(app, store, options, Leases(app[catalog_keys.ENGINE]), holder)
        except Exception:  # a GC failure must not take the registry down
            log.exception("garbage collection failed; retrying in %.0f s", interval)


async def _collect_once(app: web.Application, store: Store, options: GcOptions, leases: Leases, holder: str) -> None:
    """One collection, under the ``gc`` lease."""
    from auth.leases import holding

    async with holding(leases, GC_LEASE, holder) as held:
        if held.holder != holder:
            log.info("garbage collection skipped: %s is collecting (lease until %s)", held.holder, held.expires_at)
            return
        report = await collect(store, options)
    log.info(report.summary())
    if (index := app.get(keys.METADATA_INDEX)) is not None:
        await forget_collected(index, report.manifests_deleted)


def _proxy_middlewares(settings: Settings) -> list[Middleware]:
    """X-Forwarded-* from ``trusted_proxies`` (first, so every later middleware and handler sees the client's
    view of scheme, host and address)."""
    if not settings.trusted_proxies:
        return []
    from registry.proxies import forwarded_middleware

    return [forwarded_middleware(settings.trusted_proxies)]


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


def _add_index(app: web.Application, settings: Settings) -> None:
    """The metadata index (in both auth modes), opened after storage, closed before it; an empty index is
    rebuilt from storage before the app serves."""

    async def index_ctx(app: web.Application) -> AsyncIterator[None]:
        from catalog import keys as catalog_keys
        from catalog.startup import opened_index, rebuild_if_needed

        async with opened_index(settings, app[keys.STORE]) as index:
            await rebuild_if_needed(index, settings)
            app[catalog_keys.ENGINE] = index.engine
            app[catalog_keys.INDEX] = index
            app[keys.METADATA_INDEX] = index
            yield

    app.cleanup_ctx.append(index_ctx)


def _use_io_threads() -> None:
    """Give the running loop a default executor of :data:`IO_THREADS` threads. Storage calls run there, and the
    slow ones (a blob's ``fsync`` before its rename, an S3 request) would otherwise occupy asyncio's few default
    threads (CPU count + 4) while the quick ones of other requests wait behind them. Not many more: every thread
    competes for the GIL, and with 64 a push of small images was measurably slower than with 6 or 16."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(IO_THREADS, thread_name_prefix="dockyard-io"))


def create_app(settings: Settings, driver: StorageDriver | None = None) -> web.Application:
    """The registry app. ``driver`` overrides the configured storage (tests share one between apps)."""
    token_mode = settings.auth.mode == "token"
    middlewares = [
        *_proxy_middlewares(settings),
        limits_middleware(settings.limits),
        error_middleware,
        *_auth_middlewares(token_mode),
    ]
    app = web.Application(middlewares=middlewares, handler_args=handler_args(settings.limits))
    app[keys.SETTINGS] = settings
    if token_mode:
        _add_token_mode(app, settings)

    async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
        _use_io_threads()
        opened = driver or open_driver(settings.storage)
        app[keys.STORE] = store = Store.build(opened)
        collector = _start_gc(app, store, settings)
        yield
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await opened.close()

    app.cleanup_ctx.append(storage_ctx)
    _add_index(app, settings)
    from catalog.setup import add_catalog  # the pages and their templates load only when an app is built

    add_catalog(app, settings)
    app.on_response_prepare.append(stamp_response)
    app.on_startup.append(_release_startup_memory)  # last: after storage, index and accounts are open
    add_routes(app)
    return app


async def _release_startup_memory(_app: web.Application) -> None:
    """Give back to the system what start-up allocated and freed (migrations check, index rebuild, imports): a
    collection, then glibc's ``malloc_trim``, so an idle worker's resident memory is what it really holds."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)

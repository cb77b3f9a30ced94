"""The application factory: ``create_app(settings)`` builds the whole registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from registry import keys
from registry.accesslog import stamp_response
from registry.config import FilesystemStorage, MemoryStorage, S3Storage, Settings
from registry.errors import error_middleware
from registry.routes import add_routes
from registry.store import Store
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


def create_app(settings: Settings, driver: StorageDriver | None = None) -> web.Application:
    """The registry app. ``driver`` overrides the configured storage (tests share one between apps)."""
    app = web.Application(middlewares=[error_middleware], handler_args={"max_field_size": 16384})
    app[keys.SETTINGS] = settings

    async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
        opened = driver or open_driver(settings.storage)
        app[keys.STORE] = Store.build(opened)
        yield
        await opened.close()

    app.cleanup_ctx.append(storage_ctx)
    app.on_response_prepare.append(stamp_response)
    add_routes(app)
    return app

"""Running the registry as a process: logging, the listening socket, the open-registry warning."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
import sys
from collections.abc import Callable

from aiohttp import web

from registry.accesslog import JsonAccessLogger, access_logger
from registry.app import create_app, open_driver
from registry.config import MemoryStorage, Settings, TlsSettings
from registry.store import Store
from registry.workers import Supervisor, check_port_free, resolve_count, run_in_child

log = logging.getLogger("dockyard")


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    if level != "debug":  # the database migrations' step-by-step lines
        logging.getLogger("alembic").setLevel(logging.WARNING)


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context (TLS 1.2 and newer) with the configured certificate chain and key; a missing or bad file
    exits with one line naming it."""
    for path in (tls.cert, tls.key):
        if not path.is_file():
            raise SystemExit(f"dockyard: tls: no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise SystemExit(f"dockyard: tls: cannot load {tls.cert} / {tls.key}: {exc}") from None
    return context


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, in ``settings.workers`` processes (see :mod:`registry.workers`). A database that
    can't be opened (accounts, metadata index) exits with one line; a port in use raises ``OSError``."""
    configure_logging(settings.log_level)
    if settings.auth.mode == "none" and not is_loopback(settings.host):
        log.warning(
            "WARNING: dockyard listens on %s with no authentication: anyone who can reach it can push, "
            "overwrite and delete images. Enable auth or listen on 127.0.0.1.",
            settings.listen,
        )
    storage = settings.storage
    where = f"{storage.type}:{getattr(storage, 'root', '')}"
    context = tls_context(settings.tls) if settings.tls else None
    scheme = "https" if context else "http"
    count = worker_count(settings)
    log.info("dockyard registry listening on %s://%s (storage %s, %d workers)", scheme, settings.listen, where, count)
    if count == 1:
        _serve_one(settings, context, reuse_port=False)
        return
    check_port_free(settings.host, settings.port)
    from catalog.startup import shared_scratch_index

    with shared_scratch_index(settings) as shared:
        status = run_in_child(lambda: _one_line_errors(lambda: asyncio.run(prepare(shared))))
        if not status:
            status = Supervisor(count, lambda: _serve_one(shared, context, reuse_port=True)).run()
    if status:
        raise SystemExit(status)


def _one_line_errors(work: Callable[[], None]) -> None:
    """Run ``work``; a database that can't be opened (accounts, metadata index) exits with one line."""
    from auth.accounts import AccountError
    from auth.database import DatabaseError

    try:
        work()
    except (DatabaseError, AccountError) as exc:
        raise SystemExit(f"dockyard: {exc}") from None


def worker_count(settings: Settings) -> int:
    """The processes to serve with: ``workers`` (0 = one per CPU core); always one on memory storage, which
    would otherwise be a different registry in every process."""
    if isinstance(settings.storage, MemoryStorage):
        if settings.workers != 1:
            log.info("dockyard: memory storage lives in one process: serving with 1 worker")
        return 1
    return resolve_count(settings.workers)


async def prepare(settings: Settings) -> None:
    """What must happen once before several workers start: database migrations, the signing key (token mode)
    and the rebuild of an empty metadata index. Each worker repeats the checks and finds nothing to do. Run in a
    child process (:func:`registry.workers.run_in_child`), so that what it loads and allocates (Alembic, a
    rebuild's buffers) never counts in the workers' memory."""
    from catalog.startup import opened_index, rebuild_if_needed

    driver = open_driver(settings.storage)
    try:
        async with opened_index(settings, Store.build(driver)) as index:
            await rebuild_if_needed(index, settings)
        if settings.auth.mode == "token":
            from auth.guard import Guard

            guard = await Guard.open(settings)
            await guard.close()
    finally:
        await driver.close()


def _serve_one(settings: Settings, context: ssl.SSLContext | None, *, reuse_port: bool) -> None:
    """One process serving the app until SIGINT/SIGTERM."""
    run = functools.partial(
        web.run_app,
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=context,
        access_log=access_logger() if settings.access_log else None,
        access_log_class=JsonAccessLogger,
        print=None,
        handle_signals=True,
        reuse_port=reuse_port,
    )
    _one_line_errors(run)

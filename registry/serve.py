"""Running the registry as a process: logging, the listening socket, the open-registry warning."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import sys

from aiohttp import web

from registry.accesslog import JsonAccessLogger, access_logger
from registry.app import create_app
from registry.config import Settings, TlsSettings

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
    """Run until SIGINT/SIGTERM. A database that can't be opened (accounts, metadata index) exits with one line."""
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
    log.info("dockyard registry listening on %s://%s (storage %s)", scheme, settings.listen, where)
    from auth.accounts import AccountError
    from auth.database import DatabaseError

    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            ssl_context=context,
            access_log=access_logger() if settings.access_log else None,
            access_log_class=JsonAccessLogger,
            print=None,
            handle_signals=True,
        )
    except (DatabaseError, AccountError) as exc:  # the database named by the config can't be opened
        raise SystemExit(f"dockyard: {exc}") from None

"""Running the registry as a process: logging, the listening socket, the open-registry warning."""

from __future__ import annotations

import ipaddress
import logging
import sys

from aiohttp import web

from registry.accesslog import JsonAccessLogger, access_logger
from registry.app import create_app
from registry.config import Settings

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


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM."""
    configure_logging(settings.log_level)
    if settings.auth.mode == "none" and not is_loopback(settings.host):
        log.warning(
            "WARNING: dockyard listens on %s with no authentication: anyone who can reach it can push, "
            "overwrite and delete images. Enable auth or listen on 127.0.0.1.",
            settings.listen,
        )
    storage = settings.storage
    where = f"{storage.type}:{getattr(storage, 'root', '')}"
    log.info("dockyard registry listening on http://%s (storage %s)", settings.listen, where)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_logger() if settings.access_log else None,
        access_log_class=JsonAccessLogger,
        print=None,
        handle_signals=True,
    )

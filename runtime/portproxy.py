"""The port proxy of one container: ``python -m runtime.portproxy --container-dir D --pid PID --map FD=PORT...``.

Started by :func:`runtime.network.start_proxy` with the listening sockets already bound on the host (inherited as
file descriptors ``FD``). The launcher forks: the parent records the child's pid as ``proxy_pid`` in the container's
``state.json`` and exits; the child joins the network namespace of the container's init process ``PID``, and for
every connection accepted on ``FD`` opens a socket there to ``127.0.0.1:PORT`` and copies bytes both ways (a
half-close is passed on). It exits when the container's init process exits (a pidfd becomes readable), or on
SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from runtime.network import setns
from runtime.supervisor import update_state

CONNECT_TIMEOUT = 10.0
CHUNK = 65536


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy ``source`` to ``target`` until EOF or an error, then half-close ``target``."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, port: int) -> None:
    """Connect to ``127.0.0.1:port`` in this process's (the container's) namespace and join both ends."""
    with client:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            print(f"portproxy: cannot connect to 127.0.0.1:{port} in the container: {exc}", file=sys.stderr)
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


def serve(listeners: dict[socket.socket, int], container_pid: int) -> None:
    """Accept on ``listeners`` (socket → container port) until the process ``container_pid`` exits."""
    selector = selectors.DefaultSelector()
    try:
        pidfd = os.pidfd_open(container_pid)
    except ProcessLookupError:
        return  # the container is gone already
    selector.register(pidfd, selectors.EVENT_READ)
    for sock in listeners:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _events in selector.select():
            if key.fileobj == pidfd:
                return
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            with contextlib.suppress(BlockingIOError, InterruptedError, ConnectionAbortedError):
                client, _address = listener.accept()
                client.setblocking(True)
                threading.Thread(target=_serve, args=(client, listeners[listener]), daemon=True).start()


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="portproxy")
    parser.add_argument("--container-dir", type=Path, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--map", action="append", default=[], help="FD=CONTAINER_PORT")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    child = os.fork()
    if child:  # the launcher: record the proxy's pid, then let start_proxy() reap us at once
        update_state(args.container_dir, proxy_pid=child)
        os._exit(0)
    os.chdir("/")
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    listeners: dict[socket.socket, int] = {}
    for item in args.map:
        fd, _, port = item.partition("=")
        listeners[socket.socket(fileno=int(fd))] = int(port)
    setns(Path(f"/proc/{args.pid}/ns/net"))  # sockets made from now on live in the container's namespace
    serve(listeners, args.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())

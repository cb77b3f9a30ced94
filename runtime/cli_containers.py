"""The container commands of the runtime CLI (run, ps, logs, stop, kill, rm, start, exec, commit, volume).

Exit codes follow docker: a mistake of the user is one line on stderr and exit 1; a failure of dockyard itself
(runtime, supervisor, layers, registry) is one line and exit 125; an attached ``run`` and ``exec`` exit with the
container's code (126/127 when the command cannot be run or is not found). Never a traceback.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn, ParamSpec, TypeVar

import click

from dockyard.cli import cli, runtime_root
from runtime.containers import Container, ContainerError, ContainerStore, VolumeSpec, parse_signal, parse_volume
from runtime.imagestore import ImageNotFoundError, ImageRecord, ImageStoreError
from runtime.manifests import DistributionError, NotFoundError
from runtime.network import PortMapping, PublishError, parse_publish
from runtime.ocirt import OciRuntimeError, StartError
from runtime.references import InvalidReferenceError, parse
from runtime.spec import NetworkMode, RunOptions, SpecError, parse_memory
from runtime.supervisor import SupervisorError, read_logs, send_signal, wait
from runtime.users import UserError
from runtime.volumes import VolumeError

P = ParamSpec("P")
R = TypeVar("R")
USER_ERRORS = (
    ContainerError,
    VolumeError,
    SpecError,
    UserError,
    InvalidReferenceError,
    ImageNotFoundError,
    PublishError,
)
OWN_FAILURES = (
    OciRuntimeError,
    SupervisorError,
    ImageStoreError,
    DistributionError,
    OSError,
)
# Failures of modules that `run` does not import unless it needs them (a module never imported raised nothing).
LAZY_OWN_FAILURES = (("runtime.applier", "LayerError"), ("runtime.layerdiff", "LayerDiffError"))


def own_failures() -> tuple[type[BaseException], ...]:
    """:data:`OWN_FAILURES` and those of :data:`LAZY_OWN_FAILURES` whose module is loaded."""
    loaded = tuple(getattr(sys.modules[module], name) for module, name in LAZY_OWN_FAILURES if module in sys.modules)
    return OWN_FAILURES + loaded


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    click.echo(f"dockyard: {message}".splitlines()[0], err=True)
    raise SystemExit(code)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the runtime's exceptions into one line and docker's exit code (1 user, 125 dockyard)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc), 1)
        except StartError as exc:
            fail(str(exc), exc.exit_code)
        except own_failures() as exc:
            fail(str(exc), 125)

    return wrapper


def store_of(ctx: click.Context) -> ContainerStore:
    """The container store under ``--root``."""
    return ContainerStore(runtime_root(ctx))


# -- run -----------------------------------------------------------------------------------------


def local_image(store: ContainerStore, text: str) -> ImageRecord:
    """The local image ``text``, pulled first when missing (as ``docker run`` does)."""
    try:
        return store.images.get(text)
    except ImageNotFoundError:
        pass
    reference = parse(text)
    click.echo(f"Unable to find image '{text}' locally", err=True)

    import asyncio  # only when pulling: asyncio, rich and the HTTP client cost a run ~100 ms to import

    from rich.console import Console

    from runtime.distribution import RegistryClient
    from runtime.progress import RichProgress

    async def pull() -> ImageRecord:
        async with RegistryClient() as client:
            with RichProgress(Console(stderr=True), transient=True) as progress:
                return await store.images.pull(reference, client, progress=progress)

    try:
        return asyncio.run(pull())
    except NotFoundError as exc:
        raise ContainerError(f"unable to find image {text!r}: {exc}") from None


def env_entries(values: tuple[str, ...]) -> tuple[str, ...]:
    """``-e`` entries; a bare ``KEY`` takes the host's value (and unsets KEY when the host has none)."""
    return tuple(v if "=" in v or v not in os.environ else f"{v}={os.environ[v]}" for v in values)


def env_file_entries(files: tuple[Path, ...]) -> tuple[str, ...]:
    """The entries of ``--env-file`` files: ``KEY=VALUE`` lines; blank lines and ``#`` comments skipped."""
    entries: list[str] = []
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ContainerError(f"cannot read env file {path}: {exc.strerror}") from None
        entries += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return env_entries(tuple(entries))


def network_mode(network: str, publish: tuple[str, ...]) -> tuple[NetworkMode, list[PortMapping]]:
    """The network mode and the ``-p`` mappings. Ports are published from ``none`` and ``bridge`` containers (the
    proxy connects inside their namespace), not with ``host``, where the container's ports are the host's already."""
    mappings = [parse_publish(text) for text in publish]
    if network == "host" and mappings:
        raise ContainerError("-p cannot be used with --network host: the container's ports are the host's")
    mode: NetworkMode = "host" if network == "host" else "bridge" if network == "bridge" else "none"
    return mode, mappings


@contextlib.contextmanager
def signals_forwarded(container: Container) -> Iterator[None]:
    """While attached, SIGINT/SIGTERM/SIGHUP go to the container (docker's sig-proxy)."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(SupervisorError, OciRuntimeError):
            send_signal(container.dir, signum)

    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def copy_stdin(target: IO[bytes]) -> None:
    """Copy our stdin into the container's, then close it (EOF for the container)."""

    def pump() -> None:
        with contextlib.suppress(OSError), target:
            while data := os.read(sys.stdin.fileno(), 65536):
                target.write(data)

    threading.Thread(target=pump, daemon=True).start()


def stream_logs(container: Container) -> str:
    """Write the container's output to our stdout/stderr as it comes, until the container exits; the last
    line written to stderr."""
    last_error = ""
    for entry in read_logs(container.dir, follow=True, poll_interval=0.01):
        out = sys.stdout.buffer if entry.stream == "stdout" else sys.stderr.buffer
        out.write(entry.log.encode())
        out.flush()
        if entry.stream == "stderr":
            last_error = entry.log
    return last_error


def attach(store: ContainerStore, container: Container, interactive: bool) -> int:
    """Start ``container``, stream its output, and return its exit code (its rootfs unmounted by then)."""
    started = store.start(container, interactive=interactive)
    if started.stdin is not None:
        copy_stdin(started.stdin)
    with signals_forwarded(container):
        last_error = stream_logs(container)
        status = wait(container.dir)
    store.release(container)
    if status.error and status.error.strip() not in last_error:  # runc may have said it already
        click.echo(f"dockyard: {status.error}".splitlines()[0], err=True)
    return 125 if status.exit_code is None else status.exit_code


@cli.command(context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container id.")
@click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", help="Name of the container.")
@click.option("-e", "--env", multiple=True, help="Set an environment variable (KEY=VALUE, or KEY from the host).")
@click.option("--env-file", multiple=True, type=click.Path(path_type=Path), help="Read environment variables.")
@click.option("-v", "--volume", multiple=True, help="SRC:DST[:ro]: a named volume or an absolute host path.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="USER[:GROUP] (names or ids, resolved in the container).")
@click.option("--entrypoint", help="Replace the image's entrypoint (and drop its Cmd).")
@click.option("--hostname", help="Container host name.")
@click.option("--memory", "-m", help="Memory limit (e.g. 256m).")
@click.option("--pids-limit", type=int, help="Maximum number of processes.")
@click.option(
    "--network",
    type=click.Choice(["none", "host", "bridge"]),
    default="bridge",
    show_default=True,
    help="bridge: an address on dockyard's bridge (10.88.0.0/16); none: loopback only; host: the host's.",
)
@click.option("-p", "--publish", multiple=True, help="[ADDR:]HOSTPORT:CTRPORT[/tcp] (ADDR default 127.0.0.1).")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@one_line_errors
def run(ctx: click.Context, /, image: str, command: tuple[str, ...], **flags: Any) -> None:
    """Run COMMAND in a new container of IMAGE (pulled when missing)."""
    network, ports = network_mode(flags["network"], flags["publish"])
    volumes: list[VolumeSpec] = [parse_volume(text) for text in flags["volume"]]
    opts = RunOptions(
        command=command,
        entrypoint=flags["entrypoint"],
        env=env_entries(flags["env"]),
        env_file=env_file_entries(flags["env_file"]),
        workdir=flags["workdir"],
        user=flags["user"],
        hostname=flags["hostname"],
        memory=parse_memory(flags["memory"]) if flags["memory"] else None,
        pids_limit=flags["pids_limit"],
        network=network,
        tty=flags["tty"],
        interactive=flags["interactive"],
    )
    store = store_of(ctx)
    record = local_image(store, image)
    container = store.create(
        record, opts, name=flags["name"], volumes=volumes, auto_remove=flags["auto_remove"], ports=ports
    )
    if flags["detach"]:
        try:
            store.start(container)
        except BaseException:
            store.remove(container, force=True, volumes=True)
            raise
        click.echo(container.id)
        return
    try:
        code = attach(store, container, flags["interactive"])
    except OSError:  # e.g. a published port already in use: nothing ran
        if not flags["auto_remove"] and not container.is_running():  # with --rm, the finally removes it
            store.remove(store.find(container.id), force=True, volumes=True)
        raise
    finally:
        if flags["auto_remove"]:
            store.remove(store.find(container.id), force=True, volumes=True)
    sys.exit(code)


# -- ps, logs ------------------------------------------------------------------------------------


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))


def human_duration(seconds: float) -> str:
    """docker's short durations: ``Less than a second``, ``5 seconds``, ``3 minutes``, ``2 hours``, ``4 days``."""
    if seconds < 1:
        return "Less than a second"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "0 seconds"


def status_text(container: Container) -> str:
    """``Up 5 seconds``, ``Exited (0) 3 minutes ago``, ``Created`` or ``Dead``."""
    status = container.status()
    now = time.time()
    if container.is_running():
        return "Up " + human_duration(now - (_epoch(status.started_at) or now))
    if status.exited:
        return f"Exited ({status.exit_code}) {human_duration(now - (_epoch(status.finished_at) or now))} ago"
    return "Created" if status.supervisor_pid == 0 else "Dead"


def command_text(container: Container) -> str:
    """The container's command line, cut like docker's ``ps``."""
    try:
        args = json.loads((container.dir / "config.json").read_text())["process"]["args"]
    except (OSError, ValueError, KeyError):
        return ""
    text = " ".join(args)
    return json.dumps(text if len(text) <= 20 else text[:19] + "…", ensure_ascii=False)


def reap(store: ContainerStore) -> None:
    """Remove the exited containers that were started with ``--rm -d``."""
    for container in store.all():
        if container.auto_remove and container.status().exited and not container.is_running():
            with contextlib.suppress(*own_failures()):
                store.remove(container, volumes=True)


@cli.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only print container ids.")
@click.pass_context
@one_line_errors
def ps(ctx: click.Context, show_all: bool, quiet: bool) -> None:
    """List containers (running ones only, without -a)."""
    store = store_of(ctx)
    reap(store)
    rows = [c for c in store.all() if show_all or c.is_running()]
    if quiet:
        for container in rows:
            click.echo(container.short_id)
        return
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    now = time.time()
    for c in rows:
        created = human_duration(now - (_epoch(c.created) or now)) + " ago"
        table.append((c.short_id, c.image, command_text(c), created, status_text(c), c.name))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        click.echo("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _tail(value: str) -> int | None:
    if value == "all":
        return None
    if not value.isdigit():
        raise ContainerError(f"invalid --tail value {value!r}: a number or 'all'")
    return int(value)


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep following the output until the container exits.")
@click.option("-n", "--tail", default="all", help="Number of lines from the end (default all).")
@click.argument("name")
@click.pass_context
@one_line_errors
def logs(ctx: click.Context, follow: bool, tail: str, name: str) -> None:
    """Print a container's output (stdout to stdout, stderr to stderr)."""
    container = store_of(ctx).find(name)
    for entry in read_logs(container.dir, follow=follow, tail=_tail(tail)):
        out = sys.stdout.buffer if entry.stream == "stdout" else sys.stderr.buffer
        out.write(entry.log.encode())
        out.flush()


# -- stop, kill, rm, start -----------------------------------------------------------------------


@cli.command()
@click.option("-t", "--time", "timeout", type=float, default=10.0, show_default=True, help="Seconds before SIGKILL.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def stop(ctx: click.Context, timeout: float, names: tuple[str, ...]) -> None:
    """Stop containers: the image's StopSignal (default SIGTERM), then SIGKILL after the timeout."""
    store = store_of(ctx)
    for name in names:
        store.stop(store.find(name), timeout)
        click.echo(name)


@cli.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal to send.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def kill(ctx: click.Context, sig: str, names: tuple[str, ...]) -> None:
    """Send a signal to running containers."""
    store = store_of(ctx)
    number = parse_signal(sig)
    for name in names:
        store.kill(store.find(name), number)
        click.echo(name)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Also remove the container's anonymous volumes.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def rm(ctx: click.Context, force: bool, volumes: bool, names: tuple[str, ...]) -> None:
    """Remove containers (their rootfs, state and logs; volumes stay unless -v for anonymous ones)."""
    store = store_of(ctx)
    for name in names:
        store.remove(store.find(name), force=force, volumes=volumes)
        click.echo(name)


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def start(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Start stopped containers again (in the background)."""
    store = store_of(ctx)
    for name in names:
        status = store.start(store.find(name)).status
        if status.error:
            fail(status.error, 125 if status.exit_code is None else status.exit_code)
        click.echo(name)


# -- exec, commit --------------------------------------------------------------------------------


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal (needs one here).")
@click.option("-e", "--env", multiple=True, help="Set an environment variable.")
@click.option("-u", "--user", help="USER[:GROUP] to run as.")
@click.option("-w", "--workdir", help="Working directory.")
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
@one_line_errors
def exec_(ctx: click.Context, /, name: str, command: tuple[str, ...], **flags: Any) -> None:
    """Run COMMAND in a running container; exit with its code."""
    if flags["tty"] and not sys.stdin.isatty():
        raise ContainerError("the input device is not a TTY")
    store = store_of(ctx)
    code = store.exec(
        store.find(name),
        command,
        env=env_entries(flags["env"]),
        user=flags["user"],
        workdir=flags["workdir"],
        tty=flags["tty"],
        interactive=flags["interactive"],
    )
    sys.exit(code)


@cli.command()
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-c", "--change", multiple=True, help="Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR...).")
@click.argument("name")
@click.argument("reference")
@click.pass_context
@one_line_errors
def commit(ctx: click.Context, message: str, change: tuple[str, ...], name: str, reference: str) -> None:
    """Create image REFERENCE from a stopped container's changes."""
    store = store_of(ctx)
    parse(reference)
    record = store.commit(store.find(name), reference, message=message, changes=change)
    click.echo(record.config_digest)


# -- volumes -------------------------------------------------------------------------------------


@cli.group()
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.argument("name", required=False)
@click.pass_context
@one_line_errors
def volume_create(ctx: click.Context, name: str | None) -> None:
    """Create a volume (a random name without NAME)."""
    click.echo(store_of(ctx).volumes.create(name).name)


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only print names.")
@click.pass_context
@one_line_errors
def volume_ls(ctx: click.Context, quiet: bool) -> None:
    """List volumes."""
    volumes = store_of(ctx).volumes.all()
    if not quiet:
        click.echo("DRIVER    VOLUME NAME")
    for vol in volumes:
        click.echo(vol.name if quiet else f"local     {vol.name}")


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Ignore missing volumes.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def volume_rm(ctx: click.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes no container uses."""
    store = store_of(ctx)
    for name in names:
        users = store.volume_users(name)
        if users:
            raise ContainerError(f"volume {name} is in use by container {users[0].short_id} ({users[0].name})")
        if force and not store.volumes.exists(name):
            continue
        store.volumes.remove(name)
        click.echo(name)


@volume.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def volume_inspect(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Print volumes as JSON."""
    store = store_of(ctx)
    click.echo(json.dumps([store.volumes.get(name).to_json() for name in names], indent=4))

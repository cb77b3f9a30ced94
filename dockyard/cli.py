"""The ``dockyard`` command: the root group, and the sub-commands of the registry.

Errors a user can cause (bad flags, an invalid config) print one readable line and exit non-zero;
they never show a traceback.

Start-up time matters (``dockyard run`` is measured against runc and podman), so the root group is
a :class:`LazyGroup`: the modules that define sub-commands (:data:`COMMAND_MODULES`) are imported only
when one of their commands is invoked, and heavy dependencies (pydantic, aiohttp, rich) only inside
the commands that use them. A command this module does not know by name makes the group import every
command module and look again, so a new command never goes missing, it only starts slower.
"""

from __future__ import annotations

import gc as collector
import importlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from dockyard import __version__

if TYPE_CHECKING:
    from registry.config import Settings
    from registry.store import Store
    from registry.store.gc import GcOptions, GcReport

T = TypeVar("T")

# The modules that register sub-commands on :func:`cli` when imported, and which of their commands
# can be found without importing the others; ``repo`` is here because dockyard.admin adds to it
# (tests/runtime/test_startup.py checks this table against what the modules register).
COMMAND_MODULES = (
    "dockyard.admin",
    "runtime.cli_containers",
    "runtime.cli_images",
    "runtime.cli_system",
    "catalog.cli",
    "dockyard.certs",
)
LAZY_COMMANDS: Mapping[str, str] = {
    **dict.fromkeys(
        ("run", "ps", "logs", "stop", "kill", "rm", "start", "exec", "commit", "volume"), "runtime.cli_containers"
    ),
    **dict.fromkeys(
        ("login", "logout", "pull", "push", "images", "tag", "rmi", "save", "load", "inspect"), "runtime.cli_images"
    ),
    "system": "runtime.cli_system",
    "index": "catalog.cli",
    "certs": "dockyard.certs",
    **dict.fromkeys(("user", "org", "token", "key", "repo"), "dockyard.admin"),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are registered by importing their module on first use (see the
    module docstring): a name of :data:`LAZY_COMMANDS` imports its one module, an unknown name (or a
    listing) all of them."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            load_commands(LAZY_COMMANDS[cmd_name])
        elif cmd_name not in self.commands:
            load_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)


def load_commands(module: str | None = None) -> None:
    """Import ``module`` (one of :data:`COMMAND_MODULES`), or all of them when None. The garbage collector pauses
    meanwhile, and what exists then is frozen (never scanned again): imports create many long-lived objects and no
    garbage, and collecting them costs ``dockyard run`` about 10 ms of its start."""
    collecting = collector.isenabled()
    collector.disable()
    try:
        for name in COMMAND_MODULES if module is None else (module,):
            importlib.import_module(name)
    finally:
        collector.freeze()
        if collecting:
            collector.enable()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    envvar="DOCKYARD_ROOT",
    default=Path("/var/lib/dockyard"),
    show_default=True,
    help="State of the container runtime: images, containers, volumes (env DOCKYARD_ROOT).",
)
@click.pass_context
def cli(ctx: click.Context, root: Path) -> None:
    """dockyard: a self-hosted OCI container image registry, and a daemonless container runtime."""
    ctx.ensure_object(dict)
    ctx.obj["root"] = root


def runtime_root(ctx: click.Context) -> Path:
    """The ``--root`` of the runtime commands (``DOCKYARD_ROOT``, default /var/lib/dockyard)."""
    root: Path = ctx.find_root().obj["root"]
    return root


def settings_from_flags(config_file: Path | None, data_dir: Path | None, **overrides: object) -> Settings:
    """Load the settings with the command-line overrides, or exit with one readable line."""
    from registry.config import ConfigError, load_settings

    if data_dir is not None:
        overrides["storage"] = {"type": "filesystem", "root": data_dir}
    try:
        return load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML configuration file."
)
data_option = click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), help="Data directory (filesystem storage)."
)


@cli.command()
@config_option
@click.option("--listen", help="HOST:PORT to listen on (default 127.0.0.1:5000).")
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    help="Worker processes sharing the port (default: the `workers` setting, 0 = one per CPU core).",
)
@data_option
def serve(config_file: Path | None, listen: str | None, workers: int | None, data_dir: Path | None) -> None:
    """Run the registry (open by default; `auth.mode: token` for accounts and docker login)."""
    from registry.serve import serve as run

    settings = settings_from_flags(config_file, data_dir, listen=listen, workers=workers)
    try:
        run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.listen}: {exc.strerror or exc}") from None


def run_on_storage(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured storage, run ``work`` on its store, close it. Storage and registry errors
    a user can cause become one readable line."""
    import asyncio

    from registry.app import open_driver
    from registry.errors import RegistryError
    from registry.store import Store
    from storage.errors import StorageError

    async def run() -> T:
        driver = open_driver(settings.storage)
        try:
            return await work(Store.build(driver))
        finally:
            await driver.close()

    try:
        return asyncio.run(run())
    except RegistryError as exc:
        raise click.ClickException(exc.message) from None
    except StorageError as exc:
        raise click.ClickException(f"storage error: {exc}") from None


@cli.command()
@config_option
@data_option
@click.option("--repair", is_flag=True, help="Move corrupt blobs aside so they are no longer served.")
def scrub(config_file: Path | None, data_dir: Path | None, repair: bool) -> None:
    """Re-hash every blob and check every manifest's references. Exit 1 when anything is wrong."""
    from registry.store.scrub import scrub as run_scrub

    report = run_on_storage(settings_from_flags(config_file, data_dir), lambda store: run_scrub(store, repair=repair))
    for digest in report.corrupt:
        moved = " (moved to quarantine)" if digest in report.quarantined else ""
        click.echo(f"corrupt blob: {digest}{moved}")
    for repo, manifest, missing in report.missing:
        click.echo(f"missing: {repo}@{manifest} references {missing}, which is not stored")
    click.echo(
        f"checked {report.blobs_checked} blobs ({report.bytes_checked} bytes) and "
        f"{report.manifests_checked} manifests: {len(report.corrupt)} corrupt, {len(report.missing)} missing references"
    )
    if not report.clean:
        raise SystemExit(1)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    from registry.config import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@config_option
@data_option
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("--delete-untagged", is_flag=True, default=None, help="Also delete manifests nothing keeps.")
@click.option("--grace", callback=_duration, help="Keep anything written or used more recently (default 1h).")
@click.option("--upload-max-age", callback=_duration, help="Purge upload sessions older than this (default 7d).")
@click.option(
    "--lease-wait",
    callback=_duration,
    default="5m",
    show_default=True,
    help="Wait this long for another running collection (a replica's gc.interval) to finish.",
)
def gc(
    config_file: Path | None,
    data_dir: Path | None,
    dry_run: bool,
    delete_untagged: bool | None,
    grace: float | None,
    upload_max_age: float | None,
    lease_wait: float,
) -> None:
    """Delete blobs no manifest references (online: the registry may keep serving meanwhile)."""
    from registry.store.gc import GcOptions

    settings = settings_from_flags(config_file, data_dir)
    options = GcOptions(
        grace=settings.gc.grace if grace is None else grace,
        delete_untagged=settings.gc.delete_untagged if delete_untagged is None else delete_untagged,
        upload_max_age=settings.gc.upload_max_age if upload_max_age is None else upload_max_age,
        dry_run=dry_run,
    )
    report = run_on_storage(settings, lambda store: _collect_under_lease(settings, store, options, lease_wait))
    if not dry_run and report.manifests_deleted:
        from catalog.cli import update_index
        from registry.index import forget_collected

        update_index(settings, lambda index: forget_collected(index, report.manifests_deleted))
    verb = "would delete" if dry_run else "deleted"
    for manifest in report.manifests_deleted:
        click.echo(f"{verb} manifest {manifest}")
    click.echo(report.summary())


async def _collect_under_lease(settings: Settings, store: Store, options: GcOptions, lease_wait: float) -> GcReport:
    """``collect`` while holding the ``gc`` lease of the shared database (the one replicas' ``gc.interval`` takes
    too), so two collections never run at once: waits up to ``lease_wait`` seconds for a running one to finish,
    then gives up with one line. A dry run, or a configuration without a database, takes no lease."""
    from auth.database import DatabaseError, open_database
    from auth.leases import Leases, holding, new_holder
    from catalog.startup import index_database_url
    from registry.app import GC_LEASE
    from registry.store.gc import collect

    url = index_database_url(settings)
    if options.dry_run or url is None:
        return await collect(store, options)
    try:
        engine = await open_database(url)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    holder = new_holder()
    try:
        async with holding(Leases(engine), GC_LEASE, holder, wait=lease_wait) as held:
            if held.holder != holder:
                until = held.expires_at.strftime("%H:%M:%S UTC")
                raise click.ClickException(
                    f"another garbage collection is running ({held.holder}, lease until {until})"
                )
            return await collect(store, options)
    finally:
        await engine.dispose()


@cli.group()
def repo() -> None:
    """Manage repositories."""


@repo.command("ls")
@config_option
@data_option
def repo_ls(config_file: Path | None, data_dir: Path | None) -> None:
    """List the repositories that hold at least one manifest."""
    for name in run_on_storage(settings_from_flags(config_file, data_dir), lambda store: store.repos.catalog()):
        click.echo(name)


@repo.command("rm")
@config_option
@data_option
@click.argument("name")
def repo_rm(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete repository NAME: its tags, manifests, blob links and uploads (blobs go at the next gc)."""
    from registry.reference import check_name

    settings = settings_from_flags(config_file, data_dir)
    run_on_storage(settings, lambda store: store.repos.remove(check_name(name)))
    from catalog.cli import update_index

    update_index(settings, lambda index: index.repository_deleted(name))
    click.echo(f"deleted repository {name}; run 'dockyard gc' to free its blobs")


def main() -> None:
    """Console-script entry point (sub-commands are loaded lazily, see :class:`LazyGroup`)."""
    cli()

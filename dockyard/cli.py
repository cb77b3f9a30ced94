"""The ``dockyard`` command: the root group, and the sub-commands of the registry.

Errors a user can cause (bad flags, an invalid config) print one readable line and exit non-zero;
they never show a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from dockyard import __version__
from registry.config import ConfigError, Settings, load_settings, parse_duration

if TYPE_CHECKING:
    from registry.store import Store

T = TypeVar("T")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@data_option
def serve(config_file: Path | None, listen: str | None, data_dir: Path | None) -> None:
    """Run the registry (open by default; `auth.mode: token` for accounts and docker login)."""
    from registry.serve import serve as run

    settings = settings_from_flags(config_file, data_dir, listen=listen)
    try:
        run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.listen}: {exc.strerror or exc}") from None


def run_on_storage(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured storage, run ``work`` on its store, close it. Storage and registry errors
    a user can cause become one readable line."""
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
def gc(
    config_file: Path | None,
    data_dir: Path | None,
    dry_run: bool,
    delete_untagged: bool | None,
    grace: float | None,
    upload_max_age: float | None,
) -> None:
    """Delete blobs no manifest references (online: the registry may keep serving meanwhile)."""
    from registry.store.gc import GcOptions, collect

    settings = settings_from_flags(config_file, data_dir)
    options = GcOptions(
        grace=settings.gc.grace if grace is None else grace,
        delete_untagged=settings.gc.delete_untagged if delete_untagged is None else delete_untagged,
        upload_max_age=settings.gc.upload_max_age if upload_max_age is None else upload_max_age,
        dry_run=dry_run,
    )
    report = run_on_storage(settings, lambda store: collect(store, options))
    verb = "would delete" if dry_run else "deleted"
    for manifest in report.manifests_deleted:
        click.echo(f"{verb} manifest {manifest}")
    click.echo(report.summary())


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
    click.echo(f"deleted repository {name}; run 'dockyard gc' to free its blobs")


def main() -> None:
    """Console-script entry point."""
    import dockyard.admin  # noqa: F401 - each of these registers its commands on the group
    import runtime.cli_containers
    import runtime.cli_images
    import runtime.cli_system  # noqa: F401

    cli()

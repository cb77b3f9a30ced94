"""``dockyard index rebuild``, and :func:`update_index` for the commands that change storage behind the server's
back (``dockyard repo rm``, ``dockyard gc``): they tell the same index the server reads.

Errors a user can cause (a bad config, an unreachable database or storage) print one line and exit 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from dockyard.cli import cli, config_option, data_option, settings_from_flags

if TYPE_CHECKING:
    from catalog.index import Index, RebuildReport
    from registry.config import Settings

T = TypeVar("T")

NO_INDEX = (
    "this configuration keeps no metadata index (memory storage, or an open registry on {storage} storage "
    "without auth.state_dir or auth.database_url): the server rebuilds it at every start"
)


@cli.group("index")
def index_group() -> None:
    """The catalog's metadata index (repositories, tags, sizes, pulls) in the account database."""


@index_group.command("rebuild")
@config_option
@data_option
def index_rebuild(config_file: Path | None, data_dir: Path | None) -> None:
    """Recreate the index from storage (storage is the truth); pull counts of repositories that remain are kept.
    The registry may keep serving meanwhile."""
    settings = settings_from_flags(config_file, data_dir)
    report = with_index(settings, _rebuild_with_progress)
    click.echo(report.summary())


def update_index(settings: Settings, work: Callable[[Index], Awaitable[None]]) -> None:
    """Run ``work`` on the configured index, if this configuration keeps one; a failure is one warning line (the
    storage change it follows has been made; ``dockyard index rebuild`` repairs the index)."""
    from catalog.startup import index_database_url

    if index_database_url(settings) is None:
        return
    try:
        with_index(settings, work)
    except click.ClickException as exc:
        click.echo(f"warning: the metadata index was not updated: {exc.message}", err=True)


def with_index(settings: Settings, work: Callable[[Index], Awaitable[T]]) -> T:
    """Open the configured storage and index, run ``work``, close both; errors become one readable line."""
    from auth.database import DatabaseError
    from catalog.startup import index_database_url, opened_index
    from registry.app import open_driver
    from registry.errors import RegistryError
    from registry.store import Store
    from storage.errors import StorageError

    if index_database_url(settings) is None:
        raise click.ClickException(NO_INDEX.format(storage=settings.storage.type))

    async def run() -> T:
        driver = open_driver(settings.storage)
        try:
            async with opened_index(settings, Store.build(driver)) as index:
                return await work(index)
        finally:
            await driver.close()

    try:
        return asyncio.run(run())
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    except RegistryError as exc:
        raise click.ClickException(exc.message) from None
    except StorageError as exc:
        raise click.ClickException(f"storage error: {exc}") from None


async def _rebuild_with_progress(index: Index) -> RebuildReport:
    """``index.rebuild`` with a rich progress bar on stderr (plain lines when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from catalog.index import RebuildProgress

    columns = (
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("", total=None)

        def advance(step: RebuildProgress) -> None:
            progress.update(task, total=step.total, completed=step.done, description=step.name)

        return await index.rebuild(advance)

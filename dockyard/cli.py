"""The ``dockyard`` command: the root group, and the sub-commands of the registry.

Errors a user can cause (bad flags, an invalid config) print one readable line and exit non-zero;
they never show a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from dockyard import __version__
from registry.config import ConfigError, Settings, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def cli() -> None:
    """dockyard: a self-hosted OCI container image registry."""


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
    """Run the registry (open, no authentication, by default)."""
    from registry.serve import serve as run

    settings = settings_from_flags(config_file, data_dir, listen=listen)
    try:
        run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.listen}: {exc.strerror or exc}") from None


@cli.command()
@config_option
@data_option
@click.option("--repair", is_flag=True, help="Move corrupt blobs aside so they are no longer served.")
def scrub(config_file: Path | None, data_dir: Path | None, repair: bool) -> None:
    """Re-hash every blob and check every manifest's references. Exit 1 when anything is wrong."""
    from registry.app import open_driver
    from registry.store.scrub import ScrubReport
    from registry.store.scrub import scrub as run_scrub

    settings = settings_from_flags(config_file, data_dir)

    async def run() -> ScrubReport:
        driver = open_driver(settings.storage)
        try:
            return await run_scrub(driver, repair=repair)
        finally:
            await driver.close()

    report = asyncio.run(run())
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


def main() -> None:
    """Console-script entry point."""
    cli()

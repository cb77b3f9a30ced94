"""The ``dockyard`` command: the root group, and the sub-commands of the registry.

Errors a user can cause (bad flags, an invalid config) print one readable line and exit non-zero;
they never show a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from dockyard import __version__
from registry.config import ConfigError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def cli() -> None:
    """dockyard: a self-hosted OCI container image registry."""


@cli.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML configuration file.")
@click.option("--listen", help="HOST:PORT to listen on (default 127.0.0.1:5000).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data directory (filesystem storage).")
def serve(config_file: Path | None, listen: str | None, data_dir: Path | None) -> None:
    """Run the registry (open, no authentication, by default)."""
    from registry.serve import serve as run

    overrides: dict[str, object] = {"listen": listen}
    if data_dir is not None:
        overrides["storage"] = {"type": "filesystem", "root": data_dir}
    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.listen}: {exc.strerror or exc}") from None


def main() -> None:
    """Console-script entry point."""
    cli()

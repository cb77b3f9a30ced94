"""Start-up of the ``dockyard`` command: sub-commands load lazily, and ``run`` imports no heavy dependency.

Each check runs in a fresh interpreter, since what matters is what one command imports from nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import COMMAND_MODULES, LAZY_COMMANDS

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "aiohttp",
    "pydantic",
    "pydantic_settings",
    "rich",
    "yaml",
    "asyncio",
    "registry.config",
    "runtime.distribution",
)
PROBE = """
import json, sys
import click
from dockyard.cli import cli
ctx = click.Context(cli)
before = set(cli.commands)
found = cli.get_command(ctx, sys.argv[1])
print(json.dumps({"found": found is not None, "added": sorted(set(cli.commands) - before),
                  "modules": sorted(sys.modules)}))
"""


def probe(command: str) -> dict[str, object]:
    """Look ``command`` up on a fresh root group; whether it was found, what got registered, what got imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("command", ["run", "ps", "rm", "images"])
def test_runtime_commands_import_nothing_heavy(command: str) -> None:
    result = probe(command)
    assert result["found"]
    modules = set(result["modules"])  # type: ignore[call-overload]
    assert not modules & set(HEAVY)
    assert "dockyard.admin" not in modules


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_the_lazy_table_names_what_each_module_registers(module: str) -> None:
    expected = {name for name, owner in LAZY_COMMANDS.items() if owner == module}
    result = probe(next(iter(expected)))
    added = set(result["added"])  # type: ignore[call-overload]
    extended = {"repo"} if module == "dockyard.admin" else set()  # admin adds `repo visibility` to the root's repo
    assert expected <= added | extended
    assert added <= set(LAZY_COMMANDS)  # a module it imports registers its own commands, all of them in the table


def test_unknown_names_load_everything_and_help_lists_all() -> None:
    result = probe("no-such-command")
    assert not result["found"]
    assert set(COMMAND_MODULES) <= set(result["modules"])  # type: ignore[call-overload]
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "repo", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert "visibility" in done.stdout


def test_the_registry_client_imports_neither_aiohttp_nor_rich() -> None:
    """pull and push start at once: the client speaks HTTP through the standard library."""
    code = "import json, sys, runtime.distribution; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(json.loads(done.stdout))
    assert not modules & {"aiohttp", "yarl", "multidict", "rich"}

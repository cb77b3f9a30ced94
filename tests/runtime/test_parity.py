"""Parity with podman: ``dockyard run --rm`` prints what ``podman run --rm`` prints for the same image and flags.

Both pull the same images from one live ``dockyard serve`` on 127.0.0.1 (podman with ``--tls-verify=false``, private
storage and containers.conf, runtime runc). The images are busybox-static plus a config crafted here with
Entrypoint, Cmd, Env, WorkingDir and User; the probe prints argv, the sorted environment, the working directory and
the process ids (uid/gid read from ``/proc/self/status``), so entrypoint/cmd/env/workdir/user handling is compared.

Only what podman adds by design is left out of the comparison: ``HOSTNAME`` (a random container id) and
``container=podman`` and ``TERM=xterm`` (podman's marker variable and containers.conf default). One difference is
deliberate and checked as such: for a uid with no ``/etc/passwd`` entry podman sets ``HOME`` to the working directory,
while dockyard, like docker, sets ``HOME=/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import Podman, Skopeo, ToolHome
from tests.support.images import (
    PATH_ENV,
    ImageFactory,
    image_config,
)
from tests.support.server import LiveRegistry, live_registry
from tests.support.tools import require_root, require_tool

pytestmark = pytest.mark.interop

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    'echo "argv:" "$0" "$@"; env; echo "pwd: $(pwd)"; '
    'while read -r key a b c d; do case $key in Uid:|Gid:) echo "$key $a $b";; esac; done < /proc/self/status'
)
IGNORED_ENV = ("HOSTNAME=", "container=", "TERM=")

# name -> image config "config" fields (on top of the busybox rootfs)
IMAGES: dict[str, dict[str, Any]] = {
    "cmd-only": {"Env": [PATH_ENV], "Cmd": ["sh", "-c", PROBE, "cmd0", "c1", "c2"]},
    "entrypoint-cmd": {"Env": [PATH_ENV], "Entrypoint": ["sh", "-c", PROBE, "ep0"], "Cmd": ["x", "y z"]},
    "env-workdir-user": {
        "Env": [PATH_ENV, "FOO=from image", "EMPTY="],
        "Cmd": ["sh", "-c", PROBE, "c0"],
        "WorkingDir": "/tmp",
        "User": "1234:5678",
    },
}

# (image, flags before the image, command after the image)
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("cmd-only", (), ()),
    ("cmd-only", (), ("sh", "-c", PROBE, "arg0", "over", "ride")),
    ("entrypoint-cmd", (), ()),
    ("entrypoint-cmd", (), ("new", "args")),
    ("entrypoint-cmd", ("--entrypoint", "sh"), ("-c", PROBE, "e0", "e1")),
    ("env-workdir-user", (), ()),
    ("env-workdir-user", ("-e", "FOO=override", "-e", "BAR=new"), ()),
    ("env-workdir-user", ("-w", "/etc"), ()),
    ("env-workdir-user", ("-u", "0"), ()),
    ("env-workdir-user", ("-u", "42:43", "-w", "/bin"), ()),
    ("cmd-only", ("-u", "root", "-e", "PATH=/bin"), ()),
]


def write_image(factory: ImageFactory, tag: str, fields: Mapping[str, Any]) -> str:
    """Write an image (busybox layer + crafted config) into the factory's layout; returns its ``oci:`` reference."""
    layers = [factory.base_layer]
    return factory.add_image(tag, layers, image_config(layers, "amd64", process=fields)).oci_ref


@dataclass
class Side:
    """Both runners against one registry."""

    registry: LiveRegistry
    podman: Podman
    dockyard_root: Path
    home: Path

    def dockyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home), "DOCKER_CONFIG": str(self.home / ".docker")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "--root", str(self.dockyard_root), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=REPO_ROOT,
            check=False,
        )


@pytest.fixture(scope="module")
def side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    require_root()
    require_tool("runc")
    require_tool("podman")
    base = tmp_path_factory.mktemp("parity")
    factory = ImageFactory(base / "layout")
    home = ToolHome(base / "tools")
    (base / "home" / ".docker").mkdir(parents=True)
    try:
        with live_registry(base) as registry:
            skopeo = Skopeo(home, registry)
            for name, fields in IMAGES.items():
                skopeo.copy(write_image(factory, name, fields), f"docker://{registry.host}/parity/{name}:1")
            yield Side(registry, Podman(home, registry), base / "dockyard", base / "home")
    finally:
        home.cleanup()


def normalize(output: str) -> list[str]:
    """Lines of the probe, environment sorted, podman's own additions left out."""
    lines = output.splitlines()
    env = sorted(line for line in lines if "=" in line and not line.startswith(("argv:", "pwd:")))
    env = [line for line in env if not line.startswith(IGNORED_ENV)]
    rest = [line for line in lines if "=" not in line or line.startswith(("argv:", "pwd:"))]
    return rest[:1] + env + rest[1:]


def drop_home(output: str) -> str:
    return "".join(line for line in output.splitlines(keepends=True) if not line.startswith("HOME="))


@pytest.mark.parametrize(("image", "flags", "command"), CASES, ids=[f"{i}-{n}" for n, (i, _, _) in enumerate(CASES)])
def test_dockyard_run_prints_what_podman_run_prints(
    side: Side, image: str, flags: Sequence[str], command: Sequence[str]
) -> None:
    ref = f"{side.registry.host}/parity/{image}:1"
    theirs = side.podman.run("run", "--rm", "--tls-verify=false", "--network", "none", *flags, ref, *command)
    ours = side.dockyard("run", "--rm", *flags, ref, *command)
    assert ours.returncode == 0, ours.stderr
    if "Uid: 0 0" not in ours.stdout.splitlines():  # no passwd entry (the image only has root): docker's HOME
        assert "HOME=/" in ours.stdout.splitlines(), ours.stdout
        ours.stdout, theirs.stdout = (drop_home(ours.stdout), drop_home(theirs.stdout))
    assert normalize(ours.stdout) == normalize(theirs.stdout), f"dockyard:\n{ours.stdout}\npodman:\n{theirs.stdout}"
    assert normalize(theirs.stdout)[0].startswith("argv:")

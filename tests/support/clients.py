"""Real registry clients (skopeo, podman, buildah, docker) run with private state under a test's temp dir.

Every client gets a :class:`ToolHome`: ``HOME``, the ``XDG_*`` directories, ``TMPDIR``, ``DOCKER_CONFIG``,
``REGISTRY_AUTH_FILE`` and the ``CONTAINERS_*`` configuration files all point into the test's own
directory, so no tool reads or writes the real user's or the system's configuration and state.

One trick is needed for the blob-info cache of containers/image: as root it lives in
``/var/lib/containers/cache`` whatever the flags say. ``_CONTAINERS_ROOTLESS_UID`` (the variable podman
itself uses to remember the real user behind a user namespace) makes containers/image take
``$XDG_DATA_HOME/containers/cache`` instead; nothing else changes (``podman info`` still says rootless
false, storage still goes to ``--root``).

Commands run with :func:`subprocess.run` and a timeout (which kills the child), so no process outlives
its call. A failing command raises :class:`ToolError` carrying the command, its output and the tail of
the registry's access log, which is the evidence a failure report needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.accesslog import log_tail
from tests.support.server import LiveRegistry
from tests.support.tools import require_tool

TIMEOUT = 180.0
INSECURE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
DOCKER_CLIENT = Path("/usr/bin/docker")  # the docker.io package's client, matching its dockerd


def docker_client() -> str:
    """The docker CLI: the docker.io package's (matching its dockerd) when installed, else any on PATH."""
    return str(DOCKER_CLIENT) if DOCKER_CLIENT.is_file() else require_tool("docker")


class ToolError(AssertionError):
    """A client command failed (non-zero exit or timeout); the message holds all the evidence."""


def _trim(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else f"...{text[-limit:]}"


def run(
    cmd: Sequence[str],
    env: Mapping[str, str],
    *,
    registry: LiveRegistry | None = None,
    check: bool = True,
    timeout: float = TIMEOUT,
    input_text: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with exactly ``env``; with ``check``, raise :class:`ToolError` on failure."""
    try:
        result = subprocess.run(
            list(cmd),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(_report(cmd, None, str(exc.stdout or ""), str(exc.stderr or ""), registry)) from None
    if check and result.returncode != 0:
        raise ToolError(_report(cmd, result.returncode, result.stdout, result.stderr, registry))
    return result


def _report(cmd: Sequence[str], returncode: int | None, stdout: str, stderr: str, registry: LiveRegistry | None) -> str:
    status = "timed out" if returncode is None else f"exited with {returncode}"
    lines = [f"command {status}: {' '.join(cmd)}", f"--- stdout\n{_trim(stdout)}", f"--- stderr\n{_trim(stderr)}"]
    if registry is not None:
        lines.append(f"--- registry access log (last lines of {registry.log})\n{log_tail(registry)}")
    return "\n".join(lines)


@dataclass
class ToolHome:
    """Private configuration and state for the container tools, all under ``root``.

    podman refuses a run root longer than 50 characters (its sockets live there), so the run root and
    libpod's temp dir go to a short directory ``/tmp/dyt-XXXX`` instead; :meth:`cleanup` removes it.
    """

    root: Path
    env: dict[str, str] = field(init=False)
    short: Path = field(init=False)

    def __post_init__(self) -> None:
        r = self.root
        for folder in ("home", "config", "data", "cache", "runtime", "tmp", "docker-config", "networks"):
            (r / folder).mkdir(parents=True, exist_ok=True)
        self.short = Path(tempfile.mkdtemp(prefix="dyt-", dir="/tmp"))
        (r / "runtime").chmod(0o700)
        (r / "policy.json").write_text(json.dumps(INSECURE_POLICY))
        (r / "auth.json").write_text(json.dumps({"auths": {}}))
        (r / "docker-config" / "config.json").write_text(json.dumps({"auths": {}}))
        (r / "registries.conf").write_text("unqualified-search-registries = []\n")
        (r / "registries.d").mkdir(exist_ok=True)
        (r / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.storage_root}"\nrunroot = "{self.storage_runroot}"\n'
        )
        (r / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{r / "events.log"}"\n'
            f'image_copy_tmp_dir = "{r / "tmp"}"\n'
            f'tmp_dir = "{self.libpod_tmp}"\n'
            "[network]\n"
            # CNI keeps its state in network_config_dir; netavark (as root) would create /run/containers.
            'network_backend = "cni"\n'
            f'network_config_dir = "{r / "networks"}"\n'
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(r / "home"),
            "XDG_CONFIG_HOME": str(r / "config"),
            "XDG_DATA_HOME": str(r / "data"),
            "XDG_CACHE_HOME": str(r / "cache"),
            "XDG_RUNTIME_DIR": str(r / "runtime"),
            "TMPDIR": str(r / "tmp"),
            "DOCKER_CONFIG": str(r / "docker-config"),
            "REGISTRY_AUTH_FILE": str(r / "auth.json"),
            "CONTAINERS_CONF": str(r / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(r / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(r / "registries.conf"),
            "_CONTAINERS_ROOTLESS_UID": "65534",  # blob-info cache under XDG_DATA_HOME, not /var/lib/containers
        }

    @property
    def storage_root(self) -> Path:
        return self.root / "storage"

    @property
    def storage_runroot(self) -> Path:
        return self.short / "run"

    @property
    def libpod_tmp(self) -> Path:
        return self.short / "libpod"

    def cleanup(self) -> None:
        """Remove the short directory (the rest lives under the test's own temp dir)."""
        shutil.rmtree(self.short, ignore_errors=True)


@dataclass
class Skopeo:
    """``skopeo`` with a private policy, registries.d and temp dir; plain HTTP to the test registry."""

    home: ToolHome
    registry: LiveRegistry | None = None
    binary: str = field(default_factory=lambda: require_tool("skopeo"))

    def _base(self) -> list[str]:
        h = self.home.root
        return [self.binary, "--policy", str(h / "policy.json"), "--registries.d", str(h / "registries.d")]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self._base(), *args], self.home.env, registry=self.registry, check=check)

    def copy(self, src: str, dst: str, *extra: str) -> None:
        """``skopeo copy`` without TLS on either side (the test registry speaks plain HTTP)."""
        self.run("copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dst)

    def inspect(self, ref: str, *extra: str) -> dict[str, Any]:
        result = self.run("inspect", "--tls-verify=false", *extra, ref)
        doc: dict[str, Any] = json.loads(result.stdout)
        return doc

    def inspect_raw(self, ref: str, *extra: str) -> bytes:
        """The exact manifest (or with ``--config``, config) bytes that skopeo fetched."""
        result = self.run("inspect", "--tls-verify=false", "--raw", *extra, ref)
        return result.stdout.encode()

    def list_tags(self, ref: str) -> list[str]:
        doc = json.loads(self.run("list-tags", "--tls-verify=false", ref).stdout)
        return list(doc["Tags"])

    def delete(self, ref: str) -> None:
        self.run("delete", "--tls-verify=false", ref)


def containers_storage_args(binary: str, home: ToolHome) -> list[str]:
    """The private containers-storage flags podman and buildah share (vfs: no overlay mounts needed)."""
    return [binary, "--root", str(home.storage_root), "--runroot", str(home.storage_runroot), "--storage-driver", "vfs"]


@dataclass
class Podman:
    """``podman`` with private ``--root``/``--runroot``, vfs storage and a private containers.conf."""

    home: ToolHome
    registry: LiveRegistry | None = None
    binary: str = field(default_factory=lambda: require_tool("podman"))

    def _base(self) -> list[str]:
        h = self.home
        return [
            *containers_storage_args(self.binary, h),
            "--tmpdir",
            str(h.libpod_tmp),
            "--network-config-dir",
            str(h.root / "networks"),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self._base(), *args], self.home.env, registry=self.registry, check=check)

    def pull(self, ref: str) -> str:
        """Pull over plain HTTP; returns the image id podman printed."""
        return self.run("pull", "--quiet", "--tls-verify=false", ref).stdout.strip().splitlines()[-1]

    def push(self, source: str, dest: str, digestfile: Path) -> str:
        """Push ``source`` to ``dest``; returns the manifest digest podman wrote to ``digestfile``."""
        self.run("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile), source, dest)
        return digestfile.read_text().strip()

    def image_inspect(self, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.run("image", "inspect", ref).stdout)[0]
        return doc

    def remove_all_images(self) -> None:
        self.run("rmi", "--all", "--force")


@dataclass
class Buildah:
    """``buildah`` with private ``--root``/``--runroot`` and the vfs storage driver."""

    home: ToolHome
    registry: LiveRegistry | None = None
    binary: str = field(default_factory=lambda: require_tool("buildah"))

    def _base(self) -> list[str]:
        return containers_storage_args(self.binary, self.home)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self._base(), *args], self.home.env, registry=self.registry, check=check)


@dataclass
class Docker:
    """The docker CLI talking to one private dockerd (``DOCKER_HOST`` on its own unix socket)."""

    host: str
    config_dir: Path
    home: ToolHome
    registry: LiveRegistry | None = None
    binary: str = field(default_factory=docker_client)

    @property
    def env(self) -> dict[str, str]:
        return {**self.home.env, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.config_dir)}

    def run(self, *args: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args], self.env, registry=self.registry, check=check, timeout=timeout)

    def push(self, ref: str) -> str:
        """``docker push``; returns the manifest digest it reports (``TAG: digest: sha256:... size: N``)."""
        output = self.run("push", ref).stdout
        match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
        if match is None:
            raise ToolError(f"docker push {ref} printed no digest:\n{output}")
        return match.group(1)

    def image_inspect(self, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.run("image", "inspect", ref).stdout)[0]
        return doc

    def image_ids(self) -> list[str]:
        return sorted(set(self.run("images", "--all", "--quiet", "--no-trunc").stdout.split()))

    def remove_all_images(self) -> None:
        """Remove every container and image of the daemon (a worker's dockerd serves one test at a time)."""
        containers = self.run("ps", "--all", "--quiet", "--no-trunc").stdout.split()
        if containers:
            self.run("rm", "--force", *containers)
        ids = self.image_ids()
        if ids:
            self.run("rmi", "--force", *ids)

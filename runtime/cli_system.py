"""System-wide runtime commands: ``system prune``, ``system df``, and the container half of ``inspect``.

``system prune`` follows docker: it removes every container that is not running, dangling (unnamed) images (with
``-a`` every image no remaining container uses), the unpacked layer dirs under ``<root>/layers`` that no remaining
image or container needs, blobs no image needs and stale partial downloads. Volumes are never touched, and a layer
dir an existing container's overlay refers to (mounted or not) is always kept. Without ``-f`` it asks first, and
refuses to run when there is no terminal to ask on.

``system df`` prints a small table of the space used by images, containers, local volumes and unpacked layers.

The container JSON of ``inspect`` is built here from the container's record and runtime spec (``state.json`` and
``config.json`` in its directory). The spec holds the effective command line only, so ``Config.Entrypoint`` is
the image's entrypoint when the command line starts with it, and ``Config.Cmd`` the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dockyard.cli import cli, runtime_root
from runtime.cli_images import UserError, format_table, handled, human_size
from runtime.containers import Container, ContainerStore, chain_ids
from runtime.imagestore import UNNAMED, ImageRecord, ImageStore, ImageStoreError
from runtime.supervisor import read_state
from runtime.volumes import DATA_DIR

STALE_SECONDS = 3600.0  # partial downloads and unpacks younger than this may belong to a running pull or run
_STAGING_PREFIX = ".staging-"
_REMOVING_PREFIX = ".removing-"


# -- sizes ---------------------------------------------------------------------------------------------


def disk_usage(path: Path, skip: Iterable[str] = ()) -> int:
    """Bytes of the regular files under ``path`` (each inode once, symlinks not followed, top-level entries named
    in ``skip`` left out: a container's mounted ``rootfs``)."""
    skipped = set(skip)
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path, followlinks=False):
        if top == str(path):
            dirs[:] = [d for d in dirs if d not in skipped]
            files = [f for f in files if f not in skipped]
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(top, name))
                if (st.st_dev, st.st_ino) not in seen and not os.path.islink(os.path.join(top, name)):
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def container_size(container: Container) -> int:
    """What the container's directory holds (upper dir, logs, spec), without its mounted root filesystem."""
    return disk_usage(container.dir, skip=("rootfs",))


def blob_size(store: ImageStore, digest: str) -> int:
    """The size of blob ``digest`` on disk (0 when missing or malformed)."""
    with contextlib.suppress(OSError, ImageStoreError):
        return store.blob_path(digest).stat().st_size
    return 0


def image_blobs(store: ImageStore, record: ImageRecord) -> set[str]:
    """Manifest, config and layer digests of ``record`` (what is readable of them)."""
    found = {record.manifest_digest, record.config_digest}
    with contextlib.suppress(ImageStoreError, OSError, ValueError):
        found |= {layer.digest for layer in store.manifest(record.name).layers}
    return found


def image_chain_ids(store: ImageStore, record: ImageRecord) -> set[str]:
    """The chain ids of the unpacked layers ``record`` would use."""
    with contextlib.suppress(ImageStoreError, OSError, ValueError):
        return set(chain_ids([layer.diff_id for layer in store.layers(record.name)]))
    return set()


# -- layers in use -------------------------------------------------------------------------------------


def container_layer_dirs(store: ContainerStore, container: Container) -> set[str]:
    """Names of the layer dirs ``container`` uses: from its record and from the ``lower/`` links of its overlay."""
    names = {store.layers.path(cid).name for cid in container.chain_ids}
    lower = container.dir / "lower"
    if lower.is_dir():
        for link in lower.iterdir():
            with contextlib.suppress(OSError):
                target = Path(os.readlink(link))
                if target.parent == store.layers.dir:
                    names.add(target.name)
    return names


def protected_layer_dirs(store: ContainerStore, containers: Iterable[Container]) -> set[str]:
    """Layer dir names no prune may delete: those of every container and of every remaining image."""
    names: set[str] = set()
    for container in containers:
        names |= container_layer_dirs(store, container)
    for record in store.images.images():
        names |= {store.layers.path(cid).name for cid in image_chain_ids(store.images, record)}
    return names


def layer_dirs(store: ContainerStore) -> list[Path]:
    """The complete unpacked layer dirs under ``<root>/layers``."""
    if not store.layers.dir.is_dir():
        return []
    return sorted(p for p in store.layers.dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def remove_layer_dir(path: Path) -> bool:
    """Delete one layer dir under its unpack lock (skipped when another process holds it); True when removed. It
    is renamed aside first, so a half-deleted layer never looks complete."""
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        aside = path.with_name(_REMOVING_PREFIX + path.name)
        os.rename(path, aside)
        shutil.rmtree(aside)
        lock_path.unlink(missing_ok=True)
    return True


def remove_stale_staging(store: ContainerStore, grace: float) -> int:
    """Delete abandoned unpack staging dirs (and half-deleted layers) older than ``grace``; bytes freed."""
    freed = 0
    if not store.layers.dir.is_dir():
        return 0
    cutoff = time.time() - grace
    for path in store.layers.dir.iterdir():
        if path.name.startswith((_STAGING_PREFIX, _REMOVING_PREFIX)) and path.is_dir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    freed += disk_usage(path)
                    shutil.rmtree(path)
    return freed


# -- prune ---------------------------------------------------------------------------------------------


@dataclass
class PruneReport:
    """What ``system prune`` removed, and the bytes it freed."""

    containers: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    reclaimed: int = 0


def prune_containers(store: ContainerStore, report: PruneReport) -> list[Container]:
    """Remove every container that is not running; the remaining ones."""
    remaining = []
    for container in store.all():
        if container.is_running():
            remaining.append(container)
            continue
        size = container_size(container)
        store.remove(container)
        report.containers.append(container.id)
        report.reclaimed += size
    return remaining


def prune_images(store: ImageStore, in_use: set[str], all_images: bool, report: PruneReport) -> None:
    """Remove dangling images (every unused one with ``all_images``) that no container in ``in_use`` needs."""
    records = store.images()
    sizes = {d: blob_size(store, d) for r in records for d in image_blobs(store, r)}
    for record in records:
        if record.id in in_use or not (all_images or record.name.startswith(UNNAMED)):
            continue
        result = store.rmi(record.name)
        report.untagged += [name for name in result.untagged if not name.startswith(UNNAMED)]
        report.deleted += result.deleted
        report.reclaimed += sum(sizes.get(d, 0) for d in result.deleted)


def prune_layers(store: ContainerStore, remaining: list[Container], report: PruneReport) -> None:
    """Remove the layer dirs no remaining image or container needs, and stale staging dirs."""
    keep = protected_layer_dirs(store, store.all() + remaining)
    for path in layer_dirs(store):
        if path.name in keep:
            continue
        size = disk_usage(path)
        if remove_layer_dir(path):
            report.layers.append("sha256:" + path.name)
            report.reclaimed += size
    report.reclaimed += remove_stale_staging(store, STALE_SECONDS)


def prune_blobs(store: ImageStore, report: PruneReport) -> None:
    """Delete blobs no image needs and stale partial downloads (older than :data:`STALE_SECONDS`)."""
    tmp = store.root / "tmp"
    before_tmp = disk_usage(tmp) if tmp.is_dir() else 0
    candidates = {p: p.stat().st_size for p in (store.root / "blobs").glob("*/*") if p.is_file()}
    deleted = store.prune(STALE_SECONDS)
    report.deleted += deleted
    report.reclaimed += sum(size for path, size in candidates.items() if not path.exists())
    report.reclaimed += max(before_tmp - (disk_usage(tmp) if tmp.is_dir() else 0), 0)


def system_prune(store: ContainerStore, all_images: bool) -> PruneReport:
    """Containers, then images, then blobs and layer dirs (in that order, so each step sees what is now unused)."""
    report = PruneReport()
    remaining = prune_containers(store, report)
    prune_images(store.images, {c.image_id for c in store.all()}, all_images, report)
    prune_blobs(store.images, report)
    prune_layers(store, remaining, report)
    return report


def print_report(report: PruneReport) -> None:
    """docker's summary: the removed objects by kind, then the total."""
    sections = (
        ("Deleted Containers:", report.containers),
        ("Deleted Images:", [f"untagged: {n}" for n in report.untagged] + [f"deleted: {d}" for d in report.deleted]),
        ("Deleted Layers:", report.layers),
    )
    for title, lines in sections:
        if lines:
            click.echo(title)
            for line in lines:
                click.echo(line)
            click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")


def confirm_prune(all_images: bool) -> None:
    """docker's warning and question; UserError when there is no terminal to ask on or the answer is no."""
    if not sys.stdin.isatty():
        raise UserError("system prune needs confirmation and stdin is not a terminal: use -f to prune without asking")
    images = "all images without at least one container associated to them" if all_images else "all dangling images"
    click.echo("WARNING! This will remove:")
    for item in ("all stopped containers", images, "all unused unpacked layers and blobs"):
        click.echo(f"  - {item}")
    if not click.confirm("Are you sure you want to continue?", default=False):
        raise click.exceptions.Exit(0)


# -- df ------------------------------------------------------------------------------------------------


def percent(part: int, whole: int) -> str:
    """``1.2MB (40%)``."""
    return f"{human_size(part)} ({round(100 * part / whole) if whole else 0}%)"


def df_rows(store: ContainerStore) -> list[tuple[str, ...]]:
    """TYPE, TOTAL, ACTIVE, SIZE and RECLAIMABLE of images, containers, volumes and layers."""
    containers = store.all()
    used_images = {c.image_id for c in containers}
    records = store.images.images()
    blobs: dict[str, bool] = {}  # digest → needed by an image some container uses
    for record in records:
        for digest in image_blobs(store.images, record):
            blobs[digest] = blobs.get(digest, False) or record.id in used_images
    image_total = sum(blob_size(store.images, d) for d in blobs)
    image_free = sum(blob_size(store.images, d) for d, used in blobs.items() if not used)
    ids = {r.id for r in records}

    running = [c for c in containers if c.is_running()]
    sizes = {c.id: container_size(c) for c in containers}
    stopped_size = sum(size for cid, size in sizes.items() if cid not in {c.id for c in running})

    volumes = store.volumes.all()
    used_volumes = {v for c in containers for v in (*c.volumes, *c.anonymous_volumes)}
    vol_sizes = {v.name: disk_usage(v.mountpoint) for v in volumes}
    vol_free = sum(size for name, size in vol_sizes.items() if name not in used_volumes)

    used_layers: set[str] = set()
    for container in containers:
        used_layers |= container_layer_dirs(store, container)
    layer_sizes = {p.name: disk_usage(p) for p in layer_dirs(store)}
    layer_free = sum(size for name, size in layer_sizes.items() if name not in used_layers)

    def row(kind: str, total: int, active: int, size: int, free: int) -> tuple[str, ...]:
        return kind, str(total), str(active), human_size(size), percent(free, size)

    return [
        ("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"),
        row("Images", len(ids), len(ids & used_images), image_total, image_free),
        row("Containers", len(containers), len(running), sum(sizes.values()), stopped_size),
        row("Local Volumes", len(volumes), len(used_volumes & set(vol_sizes)), sum(vol_sizes.values()), vol_free),
        row("Layers", len(layer_sizes), len(used_layers & set(layer_sizes)), sum(layer_sizes.values()), layer_free),
    ]


# -- inspect (containers) ------------------------------------------------------------------------------


def _network_mode(spec: dict[str, Any]) -> str:
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "network":
            return "bridge" if namespace.get("path") else "none"
    return "host"


def _mounts(store: ContainerStore, container: Container, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The volumes and host folders of the spec's bind mounts (not dockyard's own /etc files)."""
    result = []
    for mount in spec.get("mounts", []):
        source = Path(str(mount.get("source", "")))
        if mount.get("type") != "bind" or source.is_relative_to(container.dir):
            continue
        rw = "ro" not in mount.get("options", [])
        doc: dict[str, Any] = {"Type": "bind", "Source": str(source), "Destination": mount.get("destination", "")}
        if source.parent.parent == store.volumes.dir and source.name == DATA_DIR:
            doc = {"Type": "volume", "Name": source.parent.name, **{k: v for k, v in doc.items() if k != "Type"}}
            doc["Driver"] = "local"
        result.append({**doc, "Mode": "" if doc["Type"] == "volume" else ("rw" if rw else "ro"), "RW": rw})
    return result


def _config(store: ContainerStore, container: Container, spec: dict[str, Any]) -> dict[str, Any]:
    process = spec.get("process", {})
    args: list[str] = list(process.get("args", []))
    image_config: dict[str, Any] = {}
    with contextlib.suppress(ImageStoreError, OSError, ValueError):
        image_config = store.images.image_config(container.image_id).get("config") or {}
    entrypoint = list(image_config.get("Entrypoint") or [])
    if entrypoint and args[: len(entrypoint)] == entrypoint:
        cmd: list[str] | None = args[len(entrypoint) :]
    else:
        entrypoint, cmd = [], args
    user = process.get("user", {})
    return {
        "Hostname": spec.get("hostname", ""),
        "User": f"{user.get('uid', 0)}:{user.get('gid', 0)}",
        "Tty": bool(process.get("terminal", False)),
        "Env": list(process.get("env", [])),
        "Cmd": cmd,
        "Image": container.image,
        "WorkingDir": process.get("cwd", "/"),
        "Entrypoint": entrypoint or None,
        "StopSignal": container.stop_signal,
    }


def inspect_container(store: ContainerStore, text: str) -> dict[str, Any]:
    """``docker container inspect``-like JSON for container ``text`` (id, name or unique id prefix)."""
    container = store.find(text)
    state = read_state(container.dir)
    status = container.status()
    running = container.is_running()
    try:
        spec: dict[str, Any] = json.loads((container.dir / "config.json").read_text())
    except (OSError, ValueError):
        spec = {}
    resources = spec.get("linux", {}).get("resources", {})
    return {
        "Id": container.id,
        "Created": container.created,
        "Path": (spec.get("process", {}).get("args") or [""])[0],
        "Args": (spec.get("process", {}).get("args") or [""])[1:],
        "State": {
            "Status": "running" if running else ("exited" if status.exited else "created"),
            "Running": running,
            "Pid": status.pid if running else 0,
            "ExitCode": status.exit_code if status.exit_code is not None else 0,
            "Error": state.get("error") or "",
            "StartedAt": status.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": status.finished_at or "0001-01-01T00:00:00Z",
            "OOMKilled": status.oom_killed,
        },
        "Image": container.image_id,
        "Name": "/" + container.name,
        "LogPath": str(container.dir / "container.log"),
        "Mounts": _mounts(store, container, spec),
        "Config": _config(store, container, spec),
        "HostConfig": {
            "Memory": int(resources.get("memory", {}).get("limit") or 0),
            "PidsLimit": resources.get("pids", {}).get("limit") or None,
            "NetworkMode": _network_mode(spec),
            "AutoRemove": container.auto_remove,
        },
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"UpperDir": str(container.dir / "upper"), "MergedDir": str(container.rootfs)},
        },
    }


# -- commands ------------------------------------------------------------------------------------------


@cli.group()
def system() -> None:
    """Manage the runtime's disk space (prune, df)."""


@system.command()
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
@handled
def prune(ctx: click.Context, all_images: bool, force: bool) -> None:
    """Remove stopped containers, dangling (with -a: unused) images, unused layers and blobs; never volumes."""
    if not force:
        confirm_prune(all_images)
    print_report(system_prune(ContainerStore(runtime_root(ctx.find_root())), all_images))


@system.command()
@click.pass_context
@handled
def df(ctx: click.Context) -> None:
    """Show the disk space used by images, containers, local volumes and unpacked layers."""
    for line in format_table(df_rows(ContainerStore(runtime_root(ctx.find_root())))):
        click.echo(line)

"""Containers: records, the unpacked-layer cache, overlay root filesystems and the lifecycle (create → start →
stop → rm, exec, commit).

Layout under the runtime root (the image store shares it: ``blobs/``, ``images.json``)::

    root/layers/<chain-id hex>/          one image layer unpacked ONCE (overlay whiteouts), shared by containers
    root/layers/<chain-id hex>.lock      flock'ed while that layer is unpacked
    root/containers/<id>/state.json      the supervisor's fields and, under "container", the record of this module
    root/containers/<id>/config.json     the OCI runtime spec (the container dir is runc's bundle)
    root/containers/<id>/rootfs/         the overlay mount: lowerdir = layer dirs, upper/ and work/ beside it;
                                         mounted while the container is created and while it runs, never after
    root/containers/<id>/lower/<n>       short symlinks to the layer dirs (top-most is 0), so the mount options of a
                                         long chain fit in one page: the mount is made from inside lower/
    root/containers/.lock                flock'ed while a name is taken
    root/runc/                           runc's state (never the system default)

Chain ids follow the OCI image spec: ``ChainID(L0) = DiffID(L0)``, ``ChainID(Ln) = sha256(ChainID(Ln-1) + " " +
DiffID(Ln))``. A layer dir is built in a staging dir and renamed into place, so it exists only complete.

User mistakes raise :class:`ContainerError` (one line); failures of dockyard itself surface as
``OciRuntimeError``, ``SupervisorError``, ``LayerError`` or ``OSError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from runtime.imagestore import OCI_CONFIG, OCI_LAYER_GZIP, ImageRecord, ImageStore, LayerInfo
from runtime.mounts import is_mounted, mount_overlay, rootfs_lock, unmount
from runtime.network import (
    PortMapping,
    allocate_ip,
    bind_listeners,
    connect_container,
    container_netns_name,
    delete_netns,
    ensure_switch,
    parse_publish,
    start_proxy,
    stop_proxy,
    switch_name,
)
from runtime.ocirt import INHERIT, OciRuntimeError, Runc, Stdio
from runtime.spec import (
    ETC_FILES,
    RunOptions,
    VolumeMount,
    build_spec,
    check_in_rootfs,
    check_options,
    exec_process,
    merge_env,
    write_spec,
)
from runtime.supervisor import (
    ContainerStatus,
    Supervised,
    SupervisorError,
    read_state,
    read_status,
    send_signal,
    supervise,
    supervisor_alive,
    update_state,
    wait,
)
from runtime.users import secure_join
from runtime.volumes import VOLUME_NAME_RE, Volume, VolumeError, VolumeStore, check_volume_name

if TYPE_CHECKING:  # the layer modules (tarfile, gzip, logging) load only when a layer is unpacked or written
    from runtime.layerdiff import LayerDigests

RUNC_MOUNTPOINTS = (*(f"etc/{name}" for name in ETC_FILES), "proc", "dev", "sys")
NAME_RE = VOLUME_NAME_RE  # docker's container names follow the same grammar
KILL_WAIT = 30.0
_ADJECTIVES = ("brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry", "quiet", "swift")
_NOUNS = ("turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "liskov", "torvalds", "wirth", "kay")


class ContainerError(Exception):
    """Something the user asked for cannot be done (unknown container, name in use...); ``str()`` is one line."""


# -- layers --------------------------------------------------------------------------------------


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain id of every layer, bottom first (see the module docstring)."""
    result: list[str] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            result.append("sha256:" + hashlib.sha256(f"{result[-1]} {diff_id}".encode()).hexdigest())
    return result


class LayerCache:
    """Unpacked layers under ``root/layers``, one directory per chain id, each unpacked once."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "layers"

    def path(self, chain_id: str) -> Path:
        """Where the layer of ``chain_id`` is (or will be) unpacked."""
        return self.dir / chain_id.partition(":")[2]

    def ensure(self, layers: Sequence[LayerInfo]) -> list[Path]:
        """The layer dirs of ``layers`` (bottom first), unpacking those not in the cache yet."""
        ids = chain_ids([layer.diff_id for layer in layers])
        return [self._ensure_one(layer, cid) for layer, cid in zip(layers, ids, strict=True)]

    def _ensure_one(self, layer: LayerInfo, chain_id: str) -> Path:
        target = self.path(chain_id)
        if target.is_dir():
            return target
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_dir():  # another process may have unpacked it while we waited
                from runtime.applier import apply_layer

                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.dir))
                with open(layer.path, "rb") as stream:
                    apply_layer(stream, staging, label=layer.digest, whiteout_format="overlay")
                staging.chmod(0o755)
                os.rename(staging, target)
        return target


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; the directories this call created, top-most first (``[]`` when it existed)."""
    missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    path.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_empty_dirs(created: Sequence[Path]) -> None:
    """Undo :func:`make_dirs`: remove ``created`` deepest first, keeping any that is no longer empty."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """The record of a container (kept in its ``state.json`` under ``"container"``)."""

    id: str
    name: str
    image: str
    image_id: str
    created: str
    dir: Path
    chain_ids: tuple[str, ...]
    volumes: tuple[str, ...] = ()
    anonymous_volumes: tuple[str, ...] = ()
    auto_remove: bool = False
    tty: bool = False
    stop_signal: str = "SIGTERM"
    ports: tuple[str, ...] = ()  # published ports, as str(PortMapping)
    ip: str | None = None  # bridge networking: the address on the bridge,
    netns: str | None = None  # the container's own named network namespace,
    switch: str | None = None  # and the switch namespace it is wired to

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["dir"] = str(self.dir)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Container:
        fields = {**doc, "dir": Path(doc["dir"])}
        for key in ("chain_ids", "volumes", "anonymous_volumes", "ports"):
            fields[key] = tuple(doc.get(key, ()))
        return cls(**fields)

    def port_mappings(self) -> list[PortMapping]:
        """The published ports (``-p``)."""
        return [parse_publish(text) for text in self.ports]

    def status(self) -> ContainerStatus:
        """The supervisor's view (``status``: created, running, exited)."""
        return read_status(self.dir)

    def is_running(self) -> bool:
        """True while the container's supervisor is alive and the container has not exited."""
        status = self.status()
        return not status.exited and supervisor_alive(self.dir, status.supervisor_pid)


@dataclass(frozen=True)
class VolumeSpec:
    """One ``-v``: ``source`` None (anonymous volume), a volume name or an absolute host path."""

    source: str | None
    destination: str
    readonly: bool = False

    @property
    def is_bind(self) -> bool:
        return self.source is not None and self.source.startswith("/")


def parse_volume(text: str) -> VolumeSpec:
    """``SRC:DST[:ro|rw]`` or ``DST`` (anonymous); :class:`ContainerError` for what docker refuses."""
    parts = text.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw") or not 1 <= len(parts) <= 2 or not all(parts):
        raise ContainerError(f"invalid volume specification: {text!r}")
    source, destination = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    if not PurePosixPath(destination).is_absolute():
        raise ContainerError(f"invalid volume specification {text!r}: the mount path {destination!r} must be absolute")
    if source is not None and not source.startswith("/"):
        try:
            check_volume_name(source)
        except VolumeError as exc:
            raise ContainerError(str(exc)) from None
    return VolumeSpec(source, destination, mode == "ro")


def check_container_name(name: str) -> str:
    """``name`` when docker would accept it as a container name, else :class:`ContainerError`."""
    if not NAME_RE.fullmatch(name):
        raise ContainerError(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def wanted_volumes(image_config: dict[str, Any], specs: Sequence[VolumeSpec]) -> list[VolumeSpec]:
    """``specs`` (the ``-v`` options) and an anonymous volume for each of the image's ``Volumes`` that no spec
    covers, in that order."""
    covered = {str(PurePosixPath(spec.destination)) for spec in specs}
    image_volumes = sorted(image_config.get("Volumes") or {})
    return [*specs, *(VolumeSpec(None, dest) for dest in image_volumes if dest not in covered)]


def parse_signal(text: str) -> int:
    """A signal number from ``9``, ``KILL`` or ``SIGKILL``; :class:`ContainerError` when unknown."""
    if text.isdigit():
        return int(text)
    name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"invalid signal: {text}") from None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the store -----------------------------------------------------------------------------------


class ContainerStore:
    """Every container under ``root/containers``, with the image store, layer cache and volumes they use."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.images = ImageStore(self.root)
        self.layers = LayerCache(self.root)
        self.volumes = VolumeStore(self.root)
        self.runtime = Runc(self.root / "runc")
        self.dir = self.root / "containers"

    # -- lookup --

    def all(self) -> list[Container]:
        """Every container, newest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for folder in self.dir.iterdir():
            doc = read_state(folder).get("container") if folder.is_dir() else None
            if isinstance(doc, dict):
                found.append(Container.from_json(doc))
        return sorted(found, key=lambda c: (c.created, c.id), reverse=True)

    def find(self, text: str) -> Container:
        """The container with id, name or unique id prefix ``text``; :class:`ContainerError` otherwise."""
        containers = self.all()
        for container in containers:
            if text in (container.id, container.name):
                return container
        matches = [c for c in containers if text and c.id.startswith(text)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ContainerError(f"multiple containers match {text!r}: be more specific")
        raise ContainerError(f"No such container: {text}")

    def volume_users(self, name: str) -> list[Container]:
        """The containers that use volume ``name``."""
        return [c for c in self.all() if name in c.volumes or name in c.anonymous_volumes]

    # -- create --

    @contextlib.contextmanager
    def _names_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _free_name(self, name: str | None) -> str:
        taken = {c.name for c in self.all()}
        if name is not None:
            if check_container_name(name) in taken:
                raise ContainerError(f"the container name {name!r} is already in use: remove it or choose another")
            return name
        while True:
            candidate = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(2)}"
            if candidate not in taken:
                return candidate

    def create(
        self,
        image: ImageRecord,
        opts: RunOptions,
        *,
        name: str | None = None,
        volumes: Sequence[VolumeSpec] = (),
        auto_remove: bool = False,
        ports: Sequence[PortMapping] = (),
    ) -> Container:
        """Create a container of the local ``image``: rootfs mounted, volumes ready, runtime spec written;
        ``ports`` are published (through the port proxy) whenever it runs.

        All or nothing: the options, the name and the volume destinations are checked before anything is
        created, the user and working directory right after the mount, before any volume or host directory is
        made; any failure after that undoes every step (unmount, container dir and record, network namespaces,
        the volumes and bind source directories made for it). User mistakes raise :class:`ContainerError`,
        ``SpecError``, ``UserError`` or ``VolumeError``."""
        config = self.images.image_config(image.config_digest)
        layers = self.images.layers(image.config_digest)
        image_config: dict[str, Any] = config.get("config") or {}
        if name is not None:
            check_container_name(name)
        wanted = wanted_volumes(image_config, volumes)
        check_options(image_config, opts, [spec.destination for spec in wanted])
        with self._names_lock():
            cid = secrets.token_hex(32)
            container = Container(
                id=cid,
                name=self._free_name(name),
                image=image.name,
                image_id=image.config_digest,
                created=_now(),
                dir=self.dir / cid,
                chain_ids=tuple(chain_ids([layer.diff_id for layer in layers])),
                auto_remove=auto_remove,
                tty=opts.tty,
                stop_signal=str(image_config.get("StopSignal") or "SIGTERM"),
                ports=tuple(str(mapping) for mapping in ports),
            )
            if opts.network == "bridge":
                used = {c.ip for c in self.all() if c.ip and c.switch == switch_name(self.root)}
                container = replace(
                    container,
                    ip=allocate_ip(used),
                    netns=container_netns_name(cid),
                    switch=switch_name(self.root),
                )
            container.dir.mkdir(mode=0o700)
            self._save(container)
        with contextlib.ExitStack() as undo:  # each step adds its undo; they run (last first) unless all succeed
            undo.callback(self._destroy, container)
            prepared = self._prepare(container, layers, image_config, opts, wanted, undo)
            undo.pop_all()
        return prepared

    def _save(self, container: Container) -> None:
        update_state(container.dir, container=container.to_json())

    def _prepare(
        self,
        container: Container,
        layers: Sequence[LayerInfo],
        image_config: dict[str, Any],
        opts: RunOptions,
        volumes: Sequence[VolumeSpec],
        undo: contextlib.ExitStack,
    ) -> Container:
        self.layers.ensure(layers)
        self.mount(container)
        check_in_rootfs(image_config, opts, container.rootfs)
        mounts, container = self._volume_mounts(container, volumes, undo)
        netns_path = None
        if container.switch and container.ip:
            with self._names_lock():
                ensure_switch(container.switch)
            netns_path = str(connect_container(container.switch, container.id, container.ip))
        spec = build_spec(
            image_config,
            replace(opts, mounts=mounts, container_ip=container.ip),
            container.rootfs,
            container.dir,
            netns_path,
            container_id=container.id,
        )
        write_spec(container.dir, spec)
        return container

    def _volume_mounts(
        self, container: Container, wanted: Sequence[VolumeSpec], undo: contextlib.ExitStack
    ) -> tuple[tuple[VolumeMount, ...], Container]:
        """Binds, named and anonymous volumes (:func:`wanted_volumes`), recorded in the container; what is made
        here (volumes, missing bind source directories) is removed again by ``undo``."""
        mounts: list[VolumeMount] = []
        named: list[str] = []
        anonymous: list[str] = []
        for spec in wanted:
            if spec.is_bind:
                source = Path(str(spec.source))
                undo.callback(remove_empty_dirs, make_dirs(source))  # docker makes a missing host dir too
            else:
                volume = self._volume_for(container, spec.source, undo)
                (named if spec.source else anonymous).append(volume.name)
                source = volume.mountpoint
                self._copy_image_content(container, spec.destination, source)
            mounts.append(VolumeMount(source, spec.destination, spec.readonly))
        container = replace(container, volumes=tuple(named), anonymous_volumes=tuple(anonymous))
        self._save(container)
        return tuple(mounts), container

    def _volume_for(self, container: Container, name: str | None, undo: contextlib.ExitStack) -> Volume:
        """Volume ``name`` (None: a new anonymous one), created when missing; one created here is removed by
        ``undo`` unless another container uses it by then."""
        if name is not None and self.volumes.exists(name):
            return self.volumes.get(name)
        volume = self.volumes.create(name)
        undo.callback(self._forget_volume, volume.name, container.id)
        return volume

    def _forget_volume(self, name: str, owner: str) -> None:
        """Remove volume ``name``, made for container ``owner``, unless another container uses it."""
        if not any(c.id != owner for c in self.volume_users(name)):
            with contextlib.suppress(VolumeError):
                self.volumes.remove(name)

    def _copy_image_content(self, container: Container, destination: str, volume: Path) -> None:
        """Fill an empty volume with what the image has at ``destination`` (docker's copy-up)."""
        source = secure_join(container.rootfs, destination)
        if source.is_dir() and not any(volume.iterdir()):
            shutil.copytree(source, volume, symlinks=True, dirs_exist_ok=True)

    def mount(self, container: Container) -> None:
        """Mount the container's rootfs (no-op when mounted)."""
        if is_mounted(container.rootfs):
            return
        lowers = [self.layers.path(cid) for cid in reversed(container.chain_ids)]
        missing = [str(p) for p in lowers if not p.is_dir()]
        if missing:
            raise ContainerError(f"container {container.name}: unpacked layer {missing[0]} is missing")
        d = container.dir
        mount_overlay(container.rootfs, lowers, d / "upper", d / "work", d / "lower")

    # -- lifecycle --

    @contextlib.contextmanager
    def _rootfs_lock(self, container: Container) -> Iterator[None]:
        with rootfs_lock(container.dir):
            yield

    def _unmount_ended(self, container: Container) -> None:
        if not container.is_running():
            unmount(container.rootfs)

    def release(self, container: Container) -> None:
        """Unmount the rootfs of a container that has ended (no-op while it runs, when it is not mounted or
        when the container is gone): a container that is not running holds no mount; :meth:`start` mounts
        it again. Call it once the container has exited (``wait``)."""
        if container.dir.is_dir():
            with self._rootfs_lock(container):
                self._unmount_ended(container)

    def start(self, container: Container, *, interactive: bool = False) -> Supervised:
        """Start the container under a supervisor; returns once it runs (or failed to start). Its published
        ports are bound first (``PortInUseError`` when one is taken), then served by its port proxy. The
        rootfs is mounted for the run, and unmounted again when the container did not start."""
        with self._rootfs_lock(container):
            if container.is_running():
                raise ContainerError(f"container {container.name} is already running")
            self.mount(container)
            try:
                started = self._supervise(container, interactive)
            except BaseException:
                self._unmount_ended(container)
                raise
            if started.status.exited:
                self._unmount_ended(container)
            return started

    def _supervise(self, container: Container, interactive: bool) -> Supervised:
        """Bind the published ports, start the supervisor and, once the container runs, its port proxy."""
        mappings = container.port_mappings()
        stop_proxy(container.dir)  # a proxy of an earlier run that has not noticed the exit yet
        listeners = bind_listeners(mappings)
        try:
            started = supervise(container.dir, container.id, self.runtime, tty=container.tty, interactive=interactive)
            if mappings and started.status.status == "running" and started.status.pid:
                try:
                    start_proxy(container.dir, started.status.pid, mappings, listeners)
                except BaseException:
                    with contextlib.suppress(SupervisorError, OciRuntimeError):
                        send_signal(container.dir, signal.SIGKILL)
                    raise
            return started
        finally:
            for sock in listeners:
                sock.close()

    def stop(self, container: Container, timeout: float = 10.0) -> ContainerStatus:
        """The image's StopSignal, then SIGKILL after ``timeout`` seconds; the final status (rootfs unmounted)."""
        if not container.is_running():
            stop_proxy(container.dir)
            self.release(container)
            return container.status()
        with contextlib.suppress(SupervisorError, OciRuntimeError):  # it may have just exited
            send_signal(container.dir, parse_signal(container.stop_signal))
        try:
            return wait(container.dir, timeout=timeout)
        except TimeoutError:
            with contextlib.suppress(SupervisorError, OciRuntimeError):
                send_signal(container.dir, signal.SIGKILL)
            return wait(container.dir, timeout=KILL_WAIT)
        finally:
            stop_proxy(container.dir)
            self.release(container)

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the container's init process."""
        if not container.is_running():
            raise ContainerError(f"container {container.name} is not running")
        send_signal(container.dir, sig)

    def remove(self, container: Container, *, force: bool = False, volumes: bool = False) -> None:
        """Delete the container: runtime state, rootfs mount, directory (and its anonymous volumes with
        ``volumes``). A running container only with ``force`` (it is killed first)."""
        if container.is_running():
            if not force:
                raise ContainerError(
                    f"cannot remove container {container.name}: it is running (stop it first, or use rm -f)"
                )
            with contextlib.suppress(SupervisorError, OciRuntimeError):
                send_signal(container.dir, signal.SIGKILL)
            with contextlib.suppress(SupervisorError):
                wait(container.dir, timeout=KILL_WAIT)
        self._destroy(container)
        if volumes:
            for name in container.anonymous_volumes:
                with contextlib.suppress(VolumeError):
                    self.volumes.remove(name)

    def _destroy(self, container: Container) -> None:
        stop_proxy(container.dir)
        if self.runtime.exists(container.id):  # the supervisor deletes it; not when it was killed
            with contextlib.suppress(OciRuntimeError):
                self.runtime.delete(container.id, force=True)
        unmount(container.rootfs)
        if is_mounted(container.rootfs):
            raise OSError(f"{container.rootfs} is still mounted; not deleting the container directory")
        self._disconnect(container)
        shutil.rmtree(container.dir, ignore_errors=True)

    def _disconnect(self, container: Container) -> None:
        """Delete a bridge container's namespace, and the switch namespace when no other container uses it."""
        if container.netns:
            delete_netns(container.netns)
        if container.switch:
            with self._names_lock():
                if not any(c.switch == container.switch for c in self.all() if c.id != container.id):
                    delete_netns(container.switch)

    def exec(
        self,
        container: Container,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        interactive: bool = False,
    ) -> int:
        """Run ``args`` inside the running container in the foreground; its exit code."""
        if not container.is_running():
            raise ContainerError(f"container {container.name} is not running")
        spec = json.loads((container.dir / "config.json").read_text())
        process = exec_process(spec, args, env=env, user=user, workdir=workdir, tty=tty)
        stdio = INHERIT if interactive else Stdio(stdin=subprocess.DEVNULL)
        return self.runtime.exec(container.id, process, stdio=stdio)

    # -- commit --

    def commit(
        self, container: Container, reference: str, *, message: str = "", changes: Sequence[str] = ()
    ) -> ImageRecord:
        """The container's changes as one new layer on top of its image, recorded as image ``reference``."""
        if container.is_running():
            raise ContainerError(f"container {container.name} is running: stop it before committing")
        base = self.images.image_config(container.image_id)
        new_config = apply_changes(base.get("config") or {}, changes)
        unmount(container.rootfs)  # the upper dir is read while no overlay uses it
        digests = self._write_layer(container)
        config = _committed_config(base, new_config, digests, message, changes)
        config_body = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_digest = self.images.write_blob(config_body)
        layers = [
            {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
            for layer in self.images.manifest(container.image_id).layers
        ]
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digests.digest, "size": digests.size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_body)},
            "layers": layers,
        }
        return self.images.add_image(reference, json.dumps(manifest, separators=(",", ":")).encode())

    def _write_layer(self, container: Container) -> LayerDigests:
        """Write the upper dir (without runc's mountpoints) as a layer blob into the image store."""
        from runtime.layerdiff import write_layer

        lowers = [self.layers.path(cid) for cid in reversed(container.chain_ids)]
        tmp = container.dir / "commit.tmp"
        try:
            with _runc_mountpoints_aside(container), open(tmp, "wb") as out:
                digests = write_layer(container.dir / "upper", out, lower=lowers)
            with open(tmp, "rb") as blob:
                self.images.import_blob(blob, digests.digest, digests.size)
        finally:
            tmp.unlink(missing_ok=True)
        return digests


def _placeholder(path: Path) -> bool:
    """True for what runc leaves as a mountpoint: an empty regular file or an empty directory."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode) and not any(path.iterdir())


def _mount_destinations(container: Container) -> list[str]:
    """The destinations of the spec's mounts, relative to the root."""
    try:
        spec = json.loads((container.dir / "config.json").read_text())
    except (OSError, ValueError):
        return []
    return [str(m["destination"]).strip("/") for m in spec.get("mounts", []) if str(m["destination"]).strip("/")]


@contextlib.contextmanager
def _runc_mountpoints_aside(container: Container) -> Iterator[None]:
    """Move the mountpoints runc made in the upper dir out of it while a commit reads it, then back."""
    upper = container.dir / "upper"
    aside = container.dir / "aside"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    moved: list[tuple[Path, Path]] = []
    candidates = sorted(set(RUNC_MOUNTPOINTS) | set(_mount_destinations(container)), key=len, reverse=True)
    try:
        for index, rel in enumerate(candidates):
            path = upper / rel
            if _placeholder(path):
                os.rename(path, aside / str(index))
                moved.append((aside / str(index), path))
        yield
    finally:
        for source, back in reversed(moved):
            os.rename(source, back)
        shutil.rmtree(aside, ignore_errors=True)


def _committed_config(
    base: dict[str, Any], config: dict[str, Any], digests: LayerDigests, message: str, changes: Sequence[str]
) -> dict[str, Any]:
    """The image config of a commit: the base one with the new layer, history entry and ``config``."""
    now = _now()
    result = {**base, "created": now, "config": config}
    rootfs = dict(base.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), digests.diff_id]
    result["rootfs"] = rootfs
    entry: dict[str, Any] = {"created": now, "created_by": "dockyard commit" + "".join(f" -c {c!r}" for c in changes)}
    if message:
        entry["comment"] = message
    result["history"] = [*(base.get("history") or []), entry]
    return result


# -- commit -c: Dockerfile instructions ----------------------------------------------------------


def _command_form(text: str) -> list[str]:
    """The exec form ``["a", "b"]`` as is; the shell form becomes ``/bin/sh -c TEXT`` (Dockerfile rules)."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    """``K=V K2="V 2"`` or the legacy ``K V...`` form of ENV and LABEL."""
    words = shlex.split(text)
    if not words:
        raise ContainerError(f"{what} needs at least one argument")
    if "=" not in words[0]:
        key, _, value = text.strip().partition(" ")
        return [(key, value.strip())]
    if not all("=" in word for word in words):
        raise ContainerError(f"{what} {text!r}: expected KEY=VALUE pairs")
    return [(word.partition("=")[0], word.partition("=")[2]) for word in words]


def _workdir(config: dict[str, Any], text: str) -> str:
    path = PurePosixPath(config.get("WorkingDir") or "/", text.strip())
    return str(path)


def _apply_change(config: dict[str, Any], instruction: str, rest: str, cmd_set: bool) -> bool:
    """Apply one instruction to ``config`` (in place); returns whether CMD was set by this commit."""
    if instruction == "CMD":
        config["Cmd"] = _command_form(rest)
        return True
    if instruction == "ENTRYPOINT":
        config["Entrypoint"] = _command_form(rest)
        if not cmd_set:  # as in a Dockerfile: ENTRYPOINT drops the CMD inherited from the base image
            config["Cmd"] = None
    elif instruction == "ENV":
        config["Env"] = merge_env(config.get("Env") or [], [f"{k}={v}" for k, v in _pairs(rest, "ENV")])
    elif instruction == "LABEL":
        config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs(rest, "LABEL"))}
    elif instruction == "WORKDIR":
        config["WorkingDir"] = _workdir(config, rest)
    elif instruction in ("USER", "STOPSIGNAL"):
        config["User" if instruction == "USER" else "StopSignal"] = rest.strip()
    elif instruction == "EXPOSE":
        ports: dict[str, Any] = {p if "/" in p else f"{p}/tcp": {} for p in rest.split()}
        config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}), **ports}
    elif instruction == "VOLUME":
        paths = _command_form(rest) if rest.strip().startswith("[") else rest.split()
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
    else:
        raise ContainerError(
            f"unsupported change {instruction!r}: commit -c takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
            "STOPSIGNAL, USER, VOLUME or WORKDIR"
        )
    return cmd_set


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """A copy of the image's ``config`` with the Dockerfile instructions of ``commit -c`` applied, in order."""
    result = json.loads(json.dumps(config))
    cmd_set = False
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        if not rest.strip():
            raise ContainerError(f"invalid change {change!r}: expected an instruction and its arguments")
        cmd_set = _apply_change(result, instruction.upper(), rest, cmd_set)
    return dict(result)

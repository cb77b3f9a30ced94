"""Image config + ``run`` options → an OCI runtime-spec ``config.json``, the way docker's daemon builds it.

:func:`build_spec` is the whole mapping; everything it decides is docker's documented behaviour:

- **args**: ``Entrypoint + Cmd``; a command given after the image replaces ``Cmd``; ``--entrypoint X``
  replaces ``Entrypoint`` *and drops the image's* ``Cmd``; ``--entrypoint ""`` clears both; an empty
  result is :class:`SpecError` ``no command specified``.
- **env**: ``PATH`` (default), ``HOSTNAME`` and, with a tty, ``TERM=xterm``, then the image's ``Env``,
  then ``--env-file`` entries, then ``-e`` (a key replaces the same key in place, new keys are appended,
  a bare ``KEY`` unsets it); ``HOME`` from the user's passwd entry is appended when still unset.
- **user** from ``-u`` or the image's ``User``, resolved in the container's own passwd/group
  (:mod:`runtime.users`); **cwd** from ``-w`` or ``WorkingDir`` (created, root-owned, if missing), else ``/``.
- **security**: docker's default capabilities intersected with this host's bounding set (effective and
  permitted only for uid 0, as moby), ``noNewPrivileges``, moby's masked and read-only paths, its device
  cgroup rules, runc's default device nodes, ``RLIMIT_NOFILE`` 1024:1024 capped at the host's hard limit.
- **namespaces** pid, mount, uts, ipc and network (``none``: a new one, loopback only; ``host``: none;
  ``bridge``: the namespace at the path the caller prepared).
- **mounts**: moby's defaults (``/proc``, ``/dev``, ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``, ``/sys``
  and the cgroup tree read-only), ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` bound from
  files written into the container directory (so they never land in the rootfs or a commit), then the
  volumes and binds, parents before children.
- **cgroups**: ``<cgroup_parent>/<container id>``, memory limit (swap 2x memory by default, as docker)
  and pids limit.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from runtime.users import ResolvedUser, resolve_user, secure_join

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 * 1024 * 1024  # docker refuses smaller limits ("Minimum memory limit allowed is 6MB")
RLIM_UNLIMITED = 2**64 - 1  # how the runtime spec writes RLIM_INFINITY
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")
ETC_FILES = ("hosts", "hostname", "resolv.conf")

NetworkMode = Literal["none", "host", "bridge"]
NETWORK_MODES: tuple[str, ...] = ("none", "host", "bridge")

# Docker's default capability set (moby oci/caps), with the kernel's numbers for the bounding-set check.
CAPABILITY_NUMBERS: Mapping[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18,
    "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29,
    "CAP_SETFCAP": 31,
}
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# (destination, type, source, options): moby's DefaultLinuxSpec mounts.
DEFAULT_MOUNTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    ("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    ("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")),
    ("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
)
# (path, major, minor): the device nodes runc creates by default, listed explicitly.
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
# (allow, major, minor): moby's device cgroup rules after "deny all"; runc appends its own defaults.
DEVICE_RULES: tuple[tuple[bool, int, int], ...] = (
    (True, 1, 5),
    (True, 1, 3),
    (True, 1, 9),
    (True, 1, 8),
    (True, 5, 0),
    (True, 5, 1),
    (False, 10, 229),
)
# (name, soft, hard): containerd's default for NOFILE (docker's daemon passes it on).
DEFAULT_RLIMITS: tuple[tuple[str, int, int], ...] = (("RLIMIT_NOFILE", 1024, 1024),)
_HOST_RLIMITS: Mapping[str, int] = {"RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC}

_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


class SpecError(ValueError):
    """Options that cannot become a runtime spec; ``str()`` is a one-line message for the user."""


@dataclass(frozen=True)
class VolumeMount:
    """A volume or bind mount: host ``source`` (an existing path) at container ``destination``."""

    source: Path
    destination: str
    readonly: bool = False


@dataclass(frozen=True)
class RunOptions:
    """What ``dockyard run`` was asked for, already parsed (no host lookups left except files).

    ``command`` replaces the image's Cmd when non-empty. ``entrypoint``: None keeps the image's,
    ``""`` clears it, anything else replaces it (and drops the image's Cmd). ``env_file`` holds the
    entries of ``--env-file`` files (applied before ``env``, the ``-e`` entries). ``memory`` and
    ``memory_swap`` are bytes (:func:`parse_memory`; memory 0 = no limit; swap -1 = unlimited, None =
    docker's 2x memory);
    ``pids_limit`` None or <= 0 is unlimited. ``container_ip`` names the container in ``/etc/hosts``
    under bridge networking. ``interactive`` is not used by the spec (stdin is the supervisor's business).
    """

    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    env_file: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    pids_limit: int | None = None
    network: NetworkMode = "bridge"
    tty: bool = False
    interactive: bool = False
    mounts: tuple[VolumeMount, ...] = ()
    read_only: bool = False
    cgroup_parent: str = "/dockyard"
    container_ip: str | None = None


def parse_memory(text: str) -> int:
    """Bytes for docker's memory syntax: ``"1073741824"``, ``"256m"``, ``"1g"``, ``"1.5G"``, ``"512kb"``.

    Units are binary (k = 1024) and case-insensitive, like docker's ``RAMInBytes``.
    """
    match = _MEMORY_RE.match(text.strip())
    if match is None:
        raise SpecError(f"invalid size: {text!r} (expected a number with an optional unit b, k, m, g, t or p)")
    return int(float(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").lower()])


def _list(value: Any) -> list[str]:
    """An image config list field (``null`` or missing → ``[]``)."""
    return [str(item) for item in value] if value else []


def process_args(image_config: Mapping[str, Any], opts: RunOptions) -> list[str]:
    """``Entrypoint + Cmd`` with docker's override rules (module docstring); empty → :class:`SpecError`."""
    if opts.entrypoint is None:
        entrypoint = _list(image_config.get("Entrypoint"))
        cmd = list(opts.command) or _list(image_config.get("Cmd"))
    else:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    args = entrypoint + cmd
    if not args:
        raise SpecError("no command specified")
    return args


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """docker's ``ReplaceOrAppendEnvValues``: ``K=V`` replaces K in place or appends; bare ``K`` removes K."""
    result = list(base)
    for entry in overrides:
        key = entry.partition("=")[0]
        index = next((i for i, old in enumerate(result) if old.partition("=")[0] == key), None)
        if "=" not in entry:
            if index is not None:
                del result[index]
        elif index is None:
            result.append(entry)
        else:
            result[index] = entry
    return result


def _has_key(env: Sequence[str], key: str) -> bool:
    return any(entry.partition("=")[0] == key for entry in env)


def container_env(image_config: Mapping[str, Any], opts: RunOptions, hostname: str, home: str) -> list[str]:
    """The process environment (module docstring for the order)."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if opts.tty else [])
    configured = merge_env(merge_env(_list(image_config.get("Env")), opts.env_file), opts.env)
    env = merge_env(base, configured)
    if not _has_key(env, "HOME"):
        env.append(f"HOME={home}")
    return env


def _absolute_path(path: str, what: str) -> str:
    """``path`` normalised; :class:`SpecError` unless it is absolute and free of ``..``."""
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        raise SpecError(f"the {what} {path!r} is invalid, it needs to be an absolute path")
    return str(pure)


def working_dir(image_config: Mapping[str, Any], opts: RunOptions) -> str:
    """``-w``, else the image's ``WorkingDir``, else ``/``; always absolute."""
    workdir = opts.workdir or image_config.get("WorkingDir") or "/"
    return _absolute_path(str(workdir), "working directory")


def workdir_in(rootfs: Path, workdir: str) -> Path:
    """Where ``workdir`` is inside ``rootfs`` (never outside); :class:`SpecError` when it or one of its parents is
    something other than a directory in the image. Reads only."""
    target = secure_join(rootfs, workdir)
    deepest = next(path for path in (target, *target.parents) if path.exists())  # "/" exists at the latest
    if not deepest.is_dir():
        raise SpecError(f"the working directory {workdir!r} is not a directory in the image")
    return target


def ensure_workdir(rootfs: Path, workdir: str) -> None:
    """Create ``workdir`` inside ``rootfs`` (0755, root-owned, as docker) unless it exists; never escapes."""
    workdir_in(rootfs, workdir).mkdir(mode=0o755, parents=True, exist_ok=True)


def host_bounding_set(status: Path = Path("/proc/self/status")) -> frozenset[int]:
    """Capability numbers in this process's bounding set (``CapBnd`` of ``/proc/self/status``)."""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split(":", 1)[1].strip(), 16)
            return frozenset(bit for bit in range(64) if mask >> bit & 1)
    raise SpecError(f"no CapBnd line in {status}")


def capability_sets(caps: Sequence[str], uid: int) -> dict[str, list[str]]:
    """``process.capabilities`` for ``caps``: effective and permitted only for uid 0 (moby's SetCapabilities)."""
    if uid == 0:
        return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
    return {"bounding": list(caps)}


def capabilities(uid: int, bounding: frozenset[int] | None = None) -> dict[str, list[str]]:
    """Docker's default capabilities that ``bounding`` (default: this host's bounding set) allows."""
    allowed = host_bounding_set() if bounding is None else bounding
    return capability_sets([name for name in DEFAULT_CAPABILITIES if CAPABILITY_NUMBERS[name] in allowed], uid)


def _host_hard_limit(name: str) -> int:
    """The host's hard limit for an rlimit, as a spec number (infinity → 2**64 - 1)."""
    hard = resource.getrlimit(_HOST_RLIMITS[name])[1]
    return RLIM_UNLIMITED if hard == resource.RLIM_INFINITY else hard


def rlimits() -> list[dict[str, Any]]:
    """:data:`DEFAULT_RLIMITS`, each value capped at the host's hard limit (raising it needs CAP_SYS_RESOURCE)."""
    result = []
    for name, soft, hard in DEFAULT_RLIMITS:
        ceiling = _host_hard_limit(name)
        result.append({"type": name, "soft": min(soft, ceiling), "hard": min(hard, ceiling)})
    return result


def user_spec(user: ResolvedUser) -> dict[str, Any]:
    """The spec's ``process.user``."""
    return {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)}


def process(args: list[str], env: list[str], cwd: str, user: ResolvedUser, tty: bool) -> dict[str, Any]:
    """The spec's ``process`` object."""
    return {
        "terminal": tty,
        "user": user_spec(user),
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": capabilities(user.uid),
        "rlimits": rlimits(),
        "noNewPrivileges": True,
    }


def _hostname(opts: RunOptions, container_id: str) -> str:
    if opts.hostname:
        return opts.hostname
    return socket.gethostname() if opts.network == "host" else container_id[:12]


def _hosts_content(opts: RunOptions, hostname: str) -> str:
    """Docker's container ``/etc/hosts``; the host's own file under host networking."""
    if opts.network == "host":
        return HOST_HOSTS.read_text() if HOST_HOSTS.exists() else f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"{opts.container_ip or '127.0.0.1'}\t{hostname}",
    ]
    return "\n".join(lines) + "\n"


def _is_loopback_nameserver(line: str) -> bool:
    fields = line.split()
    return len(fields) >= 2 and fields[0] == "nameserver" and (fields[1].startswith("127.") or fields[1] == "::1")


def _resolv_content(network: str) -> str:
    """``none``: empty (nothing to ask); ``host``: the host's file; ``bridge``: it without loopback servers."""
    if network == "none" or not HOST_RESOLV_CONF.exists():
        return ""
    text = HOST_RESOLV_CONF.read_text()
    if network == "host":
        return text
    return "".join(line for line in text.splitlines(keepends=True) if not _is_loopback_nameserver(line))


def _atomic_write(path: Path, content: str | bytes) -> None:
    """Write ``path`` through a temp file and ``os.replace`` (readers see old or new, never half)."""
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_etc_files(container_dir: Path, opts: RunOptions, hostname: str) -> dict[str, Path]:
    """Write ``hosts``, ``hostname`` and ``resolv.conf`` into ``container_dir``; name → path."""
    container_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "hosts": _hosts_content(opts, hostname),
        "hostname": hostname + "\n",
        "resolv.conf": _resolv_content(opts.network),
    }
    paths = {}
    for name, text in contents.items():
        paths[name] = container_dir / name
        _atomic_write(paths[name], text)
        paths[name].chmod(0o644)
    return paths


def _bind(source: Path, destination: str, readonly: bool) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": str(source),
        "options": ["rbind", "rprivate", "ro" if readonly else "rw"],
    }


def mount_destination(destination: str) -> str:
    """The container path of a volume or bind, normalised; :class:`SpecError` unless it is absolute, free of
    ``..`` and not ``/``."""
    checked = _absolute_path(destination, "mount destination")
    if checked == "/":
        raise SpecError("invalid mount destination '/': cannot mount over the root")
    return checked


def user_mounts(opts: RunOptions) -> list[dict[str, Any]]:
    """Volumes and binds, checked, parents before children (docker sorts by path depth)."""
    mounts = []
    for mount in opts.mounts:
        destination = mount_destination(mount.destination)
        if not mount.source.is_absolute() or not mount.source.exists():
            raise SpecError(f"bind source path does not exist: {mount.source}")
        mounts.append(_bind(mount.source, destination, mount.readonly))
    return sorted(mounts, key=lambda m: len(PurePosixPath(m["destination"]).parts))


def mounts(user: list[dict[str, Any]], etc_files: Mapping[str, Path], read_only: bool) -> list[dict[str, Any]]:
    """Default mounts, the ``/etc`` files, then ``user`` mounts; a user mount replaces one at the same place."""
    taken = {m["destination"] for m in user}
    result = [
        {"destination": dst, "type": kind, "source": src, "options": list(options)}
        for dst, kind, src, options in DEFAULT_MOUNTS
        if dst not in taken
    ]
    for name, path in etc_files.items():
        if f"/etc/{name}" not in taken:
            result.append(_bind(path, f"/etc/{name}", read_only))
    return result + user


def check_network(network: str) -> None:
    """:class:`SpecError` unless ``network`` is one of :data:`NETWORK_MODES`."""
    if network not in NETWORK_MODES:
        raise SpecError(f"invalid network mode {network!r}: expected none, host or bridge")


def namespaces(network: str, netns_path: str | None) -> list[dict[str, str]]:
    """pid, mount, uts, ipc and the network namespace the mode asks for (module docstring)."""
    check_network(network)
    if (network == "bridge") != (netns_path is not None):
        raise SpecError("a network namespace path is needed with bridge networking, and only with it")
    result = [{"type": kind} for kind in ("pid", "mount", "uts", "ipc")]
    if network == "none":
        result.append({"type": "network"})
    elif netns_path is not None:
        result.append({"type": "network", "path": netns_path})
    return result


def devices() -> list[dict[str, Any]]:
    """runc's default device nodes, as explicit spec entries (0666, root-owned)."""
    return [
        {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}
        for path, major, minor in DEFAULT_DEVICES
    ]


def _device_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for allow, major, minor in DEVICE_RULES:
        rules.append({"allow": allow, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    return rules


def swap_accounting() -> bool:
    """True when the kernel accounts swap per cgroup (v1 ``memsw`` files, or cgroup v2)."""
    root = Path("/sys/fs/cgroup")
    return (root / "memory" / "memory.memsw.limit_in_bytes").exists() or (root / "cgroup.controllers").exists()


def memory_resources(memory: int | None, memory_swap: int | None) -> dict[str, int] | None:
    """``linux.resources.memory`` with docker's checks and its default swap (2x memory); 0 or None: no limit."""
    if not memory:
        if memory_swap is not None:
            raise SpecError("you should always set the memory limit when using a memory-swap limit")
        return None
    if memory < MIN_MEMORY:
        raise SpecError("minimum memory limit allowed is 6MB")
    if memory_swap is not None and memory_swap != -1 and memory_swap < memory:
        raise SpecError("minimum memory-swap limit should be larger than the memory limit")
    result = {"limit": memory}
    if swap_accounting():
        result["swap"] = 2 * memory if memory_swap is None else memory_swap
    return result


def resources(opts: RunOptions) -> dict[str, Any]:
    """``linux.resources``: device rules, memory and pids limits."""
    result: dict[str, Any] = {"devices": _device_rules()}
    memory = memory_resources(opts.memory, opts.memory_swap)
    if memory is not None:
        result["memory"] = memory
    if opts.pids_limit is not None and opts.pids_limit > 0:
        result["pids"] = {"limit": opts.pids_limit}
    return result


def cgroups_path(parent: str, container_id: str) -> str:
    """``<parent>/<container id>``, absolute, so each container has its own cgroup."""
    return str(PurePosixPath("/", parent.strip("/"), container_id))


def linux_section(opts: RunOptions, container_id: str, netns_path: str | None) -> dict[str, Any]:
    """The spec's ``linux`` object."""
    return {
        "namespaces": namespaces(opts.network, netns_path),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "devices": devices(),
        "resources": resources(opts),
        "cgroupsPath": cgroups_path(opts.cgroup_parent, container_id),
    }


def check_options(image_config: Mapping[str, Any], opts: RunOptions, destinations: Sequence[str] = ()) -> None:
    """Every check of :func:`build_spec` that needs neither the container's files nor anything created for it:
    the command, the working directory's syntax, the mount ``destinations`` (and those of ``opts.mounts``), the
    memory limits and the network mode. Run it before creating anything for a container, so that these
    mistakes leave nothing behind. :class:`SpecError`; no side effect."""
    process_args(image_config, opts)
    working_dir(image_config, opts)
    for destination in (*destinations, *(mount.destination for mount in opts.mounts)):
        mount_destination(destination)
    memory_resources(opts.memory, opts.memory_swap)
    check_network(opts.network)


def check_in_rootfs(image_config: Mapping[str, Any], opts: RunOptions, rootfs: Path) -> None:
    """The checks of :func:`build_spec` that read the image's files in the mounted ``rootfs``: the user exists
    (:class:`runtime.users.UserError`) and the working directory is not a file (:class:`SpecError`). Reads only."""
    resolve_user(rootfs, opts.user or str(image_config.get("User") or ""))
    workdir_in(rootfs, working_dir(image_config, opts))


def build_spec(
    image_config: Mapping[str, Any],
    opts: RunOptions,
    rootfs: Path,
    container_dir: Path,
    netns_path: str | None,
    *,
    container_id: str | None = None,
) -> dict[str, Any]:
    """The runtime spec for running ``opts`` on an image whose ``config`` object is ``image_config``.

    ``image_config`` is the ``config`` member of the OCI image config (``Entrypoint``, ``Cmd``, ``Env``,
    ``WorkingDir``, ``User``...). ``rootfs`` is the container's root (already mounted); ``container_dir``
    receives ``hosts``, ``hostname`` and ``resolv.conf``. ``container_id`` defaults to
    ``container_dir.name`` and names the cgroup (and, cut to 12, the default hostname). Side effects:
    those three files, and the working directory created in ``rootfs`` when missing; both happen only
    after every option was checked. Bad options raise :class:`SpecError` or, for the user,
    :class:`runtime.users.UserError` (both ``ValueError`` with a one-line message).
    """
    cid = container_id or container_dir.name
    user = resolve_user(rootfs, opts.user or str(image_config.get("User") or ""))
    hostname = _hostname(opts, cid)
    args = process_args(image_config, opts)
    cwd = working_dir(image_config, opts)
    env = container_env(image_config, opts, hostname, user.home)
    linux = linux_section(opts, cid, netns_path)
    binds = user_mounts(opts)
    ensure_workdir(rootfs, cwd)
    etc_files = write_etc_files(container_dir, opts, hostname)
    return {
        "ociVersion": OCI_VERSION,
        "process": process(args, env, cwd, user, opts.tty),
        "root": {"path": str(rootfs), "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts(binds, etc_files, opts.read_only),
        "linux": linux,
    }


def exec_process(
    spec: Mapping[str, Any],
    args: Sequence[str],
    *,
    env: Sequence[str] = (),
    user: str | None = None,
    workdir: str | None = None,
    tty: bool = False,
) -> dict[str, Any]:
    """The ``process`` for ``exec`` into a container built from ``spec``, as ``docker exec`` does.

    It inherits the container's env (plus ``TERM=xterm`` with a tty, then ``env``), user (``user``
    resolved in the container's rootfs instead, when given), cwd (or ``workdir``), rlimits and
    capabilities. An empty ``args`` is :class:`SpecError`.
    """
    if not args:
        raise SpecError("no command specified")
    base = spec["process"]
    proc = {**base, "terminal": tty, "args": list(args)}
    proc["env"] = merge_env(base["env"], (["TERM=xterm"] if tty else []) + list(env))
    if workdir:
        proc["cwd"] = _absolute_path(workdir, "working directory")
    if user:
        resolved = resolve_user(Path(spec["root"]["path"]), user)
        proc["user"] = user_spec(resolved)
        proc["capabilities"] = capability_sets(base["capabilities"]["bounding"], resolved.uid)
    return proc


def write_spec(bundle: Path, spec: Mapping[str, Any]) -> Path:
    """Write ``spec`` as ``bundle/config.json`` (atomically) and return that path."""
    bundle.mkdir(parents=True, exist_ok=True)
    path = bundle / "config.json"
    _atomic_write(path, json.dumps(spec, indent=2) + "\n")
    return path

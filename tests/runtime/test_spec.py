"""runtime.spec: image config + run options → runtime spec, compared with docker's documented behaviour."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    RLIM_UNLIMITED,
    RunOptions,
    SpecError,
    VolumeMount,
    build_spec,
    capabilities,
    exec_process,
    host_bounding_set,
    merge_env,
    parse_memory,
    process_args,
    swap_accounting,
    write_spec,
)
from runtime.users import UserError

MiB = 1024 * 1024
PATH = f"PATH={DEFAULT_PATH}"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return tmp_path / "rootfs"


def spec_for(rootfs: Path, image: dict[str, Any], opts: RunOptions, netns: str | None = None) -> dict[str, Any]:
    return build_spec(image, opts, rootfs, rootfs.parent / "ctr", netns, container_id="0123456789abcdef")


# docker run semantics (docs.docker.com "Understand how CMD and ENTRYPOINT interact", --entrypoint):
# (image Entrypoint, image Cmd, --entrypoint, command after the image) → args
ARGS_TABLE = [
    (None, ["sh"], None, (), ["sh"]),
    (None, ["sh"], None, ("echo", "hi"), ["echo", "hi"]),
    (["/ep", "-x"], ["a"], None, (), ["/ep", "-x", "a"]),
    (["/ep"], ["a", "b"], None, ("c",), ["/ep", "c"]),
    (["/ep"], None, None, (), ["/ep"]),
    (["/ep"], ["a"], "/other", (), ["/other"]),
    (["/ep"], ["a"], "/other", ("x", "y"), ["/other", "x", "y"]),
    (None, ["a"], "/other", (), ["/other"]),
    (["/ep"], ["a"], "", ("sh", "-c", "true"), ["sh", "-c", "true"]),
    ([], [], None, ("true",), ["true"]),
]


@pytest.mark.parametrize(("entrypoint", "cmd", "override", "command", "expected"), ARGS_TABLE)
def test_args_follow_docker(
    entrypoint: list[str] | None,
    cmd: list[str] | None,
    override: str | None,
    command: tuple[str, ...],
    expected: list[str],
) -> None:
    image = {"Entrypoint": entrypoint, "Cmd": cmd}
    assert process_args(image, RunOptions(entrypoint=override, command=command)) == expected


@pytest.mark.parametrize(
    ("image", "override"),
    [({}, None), ({"Entrypoint": None, "Cmd": None}, None), ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "")],
)
def test_no_command_is_an_error(image: dict[str, Any], override: str | None) -> None:
    with pytest.raises(SpecError, match=r"^no command specified$"):
        process_args(image, RunOptions(entrypoint=override))


# (image Env, --env-file entries, -e entries, tty) → env (HOSTNAME is the container id cut to 12)
ENV_TABLE = [
    ([], (), (), False, [PATH, "HOSTNAME=0123456789ab", "HOME=/root"]),
    (["PATH=/opt/bin", "A=1"], (), (), False, ["PATH=/opt/bin", "HOSTNAME=0123456789ab", "A=1", "HOME=/root"]),
    (["A=1", "B=2"], (), ("A=3", "C=4"), False, [PATH, "HOSTNAME=0123456789ab", "A=3", "B=2", "C=4", "HOME=/root"]),
    (["A=1"], ("A=file", "F=1"), ("F=2",), False, [PATH, "HOSTNAME=0123456789ab", "A=file", "F=2", "HOME=/root"]),
    (["A=1", "B=2"], (), ("A",), False, [PATH, "HOSTNAME=0123456789ab", "B=2", "HOME=/root"]),
    ([], (), ("HOME=/custom",), False, [PATH, "HOSTNAME=0123456789ab", "HOME=/custom"]),
    ([], (), ("HOSTNAME=mine",), True, [PATH, "HOSTNAME=mine", "TERM=xterm", "HOME=/root"]),
    ([], (), ("TERM=vt100", "EMPTY="), True, [PATH, "HOSTNAME=0123456789ab", "TERM=vt100", "EMPTY=", "HOME=/root"]),
]


@pytest.mark.parametrize(("image_env", "env_file", "env", "tty", "expected"), ENV_TABLE)
def test_env_follows_docker(
    rootfs: Path, image_env: list[str], env_file: tuple[str, ...], env: tuple[str, ...], tty: bool, expected: list[str]
) -> None:
    opts = RunOptions(command=("true",), env=env, env_file=env_file, tty=tty, network="none")
    spec = spec_for(rootfs, {"Env": image_env}, opts)
    assert spec["process"]["env"] == expected
    assert spec["process"]["terminal"] is tty


# (image User, -u, image WorkingDir, -w) → (uid, gid, additionalGids, HOME, cwd)
USER_TABLE = [
    ("", None, "", None, (0, 0, [], "/root", "/")),
    ("app", None, "/srv", None, (1000, 1000, [2000], "/home/app", "/srv")),
    ("app", "root", "/srv", "/other", (0, 0, [], "/root", "/other")),
    ("", "1000:1000", None, None, (1000, 1000, [], "/home/app", "/")),
    ("", "4242", None, "/data/deep", (4242, 0, [], "/", "/data/deep")),
    ("", "app:extra", None, None, (1000, 2000, [], "/home/app", "/")),
]


@pytest.mark.parametrize(("image_user", "user", "image_workdir", "workdir", "expected"), USER_TABLE)
def test_user_and_workdir(
    rootfs: Path,
    image_user: str,
    user: str | None,
    image_workdir: str | None,
    workdir: str | None,
    expected: tuple[int, int, list[int], str, str],
) -> None:
    image = {"User": image_user, "WorkingDir": image_workdir, "Cmd": ["true"]}
    spec = spec_for(rootfs, image, RunOptions(user=user, workdir=workdir, network="none"))
    uid, gid, groups, home, cwd = expected
    assert spec["process"]["user"] == {"uid": uid, "gid": gid, "additionalGids": groups}
    assert f"HOME={home}" in spec["process"]["env"]
    assert spec["process"]["cwd"] == cwd
    assert (rootfs / cwd.lstrip("/")).is_dir()  # docker creates a missing working directory


BAD_OPTIONS = [
    (RunOptions(network="none", user="nobody"), "unable to find user nobody"),
    (RunOptions(network="none", workdir="relative"), "the working directory 'relative' is invalid"),
    (RunOptions(network="none", workdir="/a/../b"), "the working directory '/a/../b' is invalid"),
    (RunOptions(network="bridge"), "a network namespace path is needed with bridge networking"),
    (RunOptions(network="weird"), "invalid network mode 'weird'"),  # type: ignore[arg-type]
    (RunOptions(network="none", memory=4 * MiB), "minimum memory limit allowed is 6MB"),
    (RunOptions(network="none", memory_swap=64 * MiB), "always set the memory limit"),
    (RunOptions(network="none", memory=64 * MiB, memory_swap=32 * MiB), "memory-swap limit should be larger"),
    (
        RunOptions(network="none", mounts=(VolumeMount(Path("/nonexistent-dockyard"), "/data"),)),
        "bind source path does not exist",
    ),
    (RunOptions(network="none", mounts=(VolumeMount(Path("/tmp"), "data"),)), "mount destination 'data' is invalid"),
    (RunOptions(network="none", mounts=(VolumeMount(Path("/tmp"), "/"),)), "cannot mount over the root"),
    (RunOptions(network="none", entrypoint=""), "no command specified"),
]


@pytest.mark.parametrize(("opts", "message"), BAD_OPTIONS)
def test_bad_options_fail_before_touching_anything(rootfs: Path, opts: RunOptions, message: str) -> None:
    image = {"Cmd": ["true"]}
    with pytest.raises((SpecError, UserError)) as info:
        spec_for(rootfs, image, opts)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (rootfs.parent / "ctr").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256m", 256 * MiB),
        ("256M", 256 * MiB),
        ("1g", 1024 * MiB),
        ("1.5g", 1536 * MiB),
        ("512k", 512 * 1024),
        ("512kb", 512 * 1024),
        ("2MiB", 2 * MiB),
        ("1048576", MiB),
        ("16 m", 16 * MiB),
        ("1t", 1024**4),
    ],
)
def test_parse_memory_like_docker(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "m", "-1m", "12x", "1.2.3m", "ten"])
def test_parse_memory_rejects(text: str) -> None:
    with pytest.raises(SpecError, match="invalid size"):
        parse_memory(text)


def test_capabilities_are_dockers_within_the_hosts_bounding_set(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    caps = spec["process"]["capabilities"]
    assert set(caps["bounding"]) <= set(DEFAULT_CAPABILITIES)
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert "inheritable" not in caps
    assert "ambient" not in caps
    numbers = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_RAW": 13, "CAP_MKNOD": 27, "CAP_SETFCAP": 31}
    host = host_bounding_set()
    for name, number in numbers.items():
        assert (name in caps["bounding"]) == (number in host)


def test_capabilities_drop_what_the_host_lacks() -> None:
    without_mknod = frozenset(range(64)) - {27}
    assert "CAP_MKNOD" not in capabilities(0, without_mknod)["bounding"]
    assert len(capabilities(0, frozenset(range(64)))["bounding"]) == len(DEFAULT_CAPABILITIES)
    assert capabilities(1000, frozenset(range(64))) == {"bounding": list(DEFAULT_CAPABILITIES)}


def test_non_root_user_gets_no_effective_capabilities(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"], "User": "app"}, RunOptions(network="none"))
    assert set(spec["process"]["capabilities"]) == {"bounding"}


def test_rlimits_never_exceed_the_hosts_hard_limits(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ceiling = RLIM_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    (nofile,) = spec["process"]["rlimits"]
    assert nofile["type"] == "RLIMIT_NOFILE"
    assert nofile["soft"] == nofile["hard"] == min(1024, ceiling)
    assert nofile["hard"] <= ceiling


def test_rlimits_are_capped_when_the_host_is_lower(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (256, 512))
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]


def test_security_defaults(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    linux = spec["linux"]
    assert spec["process"]["noNewPrivileges"] is True
    assert set(linux["maskedPaths"]) == set(MASKED_PATHS)
    assert {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"} <= set(linux["maskedPaths"])
    assert set(linux["readonlyPaths"]) == set(READONLY_PATHS) >= {"/proc/sys", "/proc/sysrq-trigger"}
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {d["path"] for d in linux["devices"]} == {
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    }
    assert all(d["fileMode"] == 0o666 for d in linux["devices"])
    assert linux["cgroupsPath"] == "/dockyard/0123456789abcdef"


@pytest.mark.parametrize(
    ("network", "netns", "expected"),
    [
        ("none", None, {"type": "network"}),
        ("host", None, None),
        ("bridge", "/run/netns/dockyard-x", {"type": "network", "path": "/run/netns/dockyard-x"}),
    ],
)
def test_namespaces(rootfs: Path, network: str, netns: str | None, expected: dict[str, str] | None) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network=network), netns)  # type: ignore[arg-type]
    namespaces = spec["linux"]["namespaces"]
    assert [ns for ns in namespaces if ns["type"] != "network"] == [
        {"type": "pid"},
        {"type": "mount"},
        {"type": "uts"},
        {"type": "ipc"},
    ]
    assert [ns for ns in namespaces if ns["type"] == "network"] == ([expected] if expected else [])


def test_default_mounts_as_moby(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    by_destination = {m["destination"]: m for m in spec["mounts"]}
    assert list(by_destination)[:7] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert "ro" in by_destination["/sys"]["options"]
    assert "ro" in by_destination["/sys/fs/cgroup"]["options"]
    assert by_destination["/proc"]["type"] == "proc"
    assert "newinstance" in by_destination["/dev/pts"]["options"]


def test_etc_files_are_bound_from_the_container_dir(rootfs: Path) -> None:
    opts = RunOptions(network="bridge", hostname="web", container_ip="10.88.0.5")
    spec = spec_for(rootfs, {"Cmd": ["true"]}, opts, "/run/netns/x")
    ctr = rootfs.parent / "ctr"
    by_destination = {m["destination"]: m for m in spec["mounts"]}
    for name in ("hosts", "hostname", "resolv.conf"):
        mount = by_destination[f"/etc/{name}"]
        assert mount["source"] == str(ctr / name)
        assert mount["type"] == "bind"
        assert "rbind" in mount["options"]
        assert not (rootfs / "etc" / name).exists()  # nothing written into the image's filesystem
    hosts = (ctr / "hosts").read_text()
    assert "127.0.0.1\tlocalhost" in hosts
    assert "10.88.0.5\tweb" in hosts
    assert (ctr / "hostname").read_text() == "web\n"
    assert spec["hostname"] == "web"
    assert "nameserver 127." not in (ctr / "resolv.conf").read_text()


def test_network_none_has_an_empty_resolv_conf(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    ctr = rootfs.parent / "ctr"
    assert (ctr / "resolv.conf").read_text() == ""
    assert f"127.0.0.1\t{spec['hostname']}" in (ctr / "hosts").read_text()
    assert spec["hostname"] == "0123456789ab"


def test_volumes_and_binds(rootfs: Path, tmp_path: Path) -> None:
    data, conf, nested = tmp_path / "data", tmp_path / "conf", tmp_path / "nested"
    for path in (data, conf, nested):
        path.mkdir()
    mounts = (
        VolumeMount(nested, "/srv/data/cache"),
        VolumeMount(data, "/srv/data/"),
        VolumeMount(conf, "/etc/resolv.conf", readonly=True),
    )
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none", mounts=mounts))
    binds = [m for m in spec["mounts"] if m["source"] in {str(data), str(conf), str(nested)}]
    assert [m["destination"] for m in binds] == ["/srv/data", "/etc/resolv.conf", "/srv/data/cache"]  # by depth
    assert binds[0]["options"] == ["rbind", "rprivate", "rw"]
    assert binds[1]["options"] == ["rbind", "rprivate", "ro"]
    destinations = [m["destination"] for m in spec["mounts"]]
    assert destinations.count("/etc/resolv.conf") == 1  # the user's bind replaces dockyard's file


def test_read_only_root(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none", read_only=True))
    assert spec["root"] == {"path": str(rootfs), "readonly": True}
    hosts = next(m for m in spec["mounts"] if m["destination"] == "/etc/hosts")
    assert "ro" in hosts["options"]


@pytest.mark.parametrize(
    ("memory", "swap", "pids", "expected_memory", "expected_pids"),
    [
        (None, None, None, None, None),
        (0, None, None, None, None),
        (256 * MiB, None, 100, {"limit": 256 * MiB, "swap": 512 * MiB}, {"limit": 100}),
        (64 * MiB, -1, 0, {"limit": 64 * MiB, "swap": -1}, None),
        (64 * MiB, 100 * MiB, -1, {"limit": 64 * MiB, "swap": 100 * MiB}, None),
    ],
)
def test_resources(
    rootfs: Path,
    memory: int | None,
    swap: int | None,
    pids: int | None,
    expected_memory: dict[str, int] | None,
    expected_pids: dict[str, int] | None,
) -> None:
    opts = RunOptions(network="none", memory=memory, memory_swap=swap, pids_limit=pids)
    resources = spec_for(rootfs, {"Cmd": ["true"]}, opts)["linux"]["resources"]
    if expected_memory is not None and not swap_accounting():
        expected_memory = {"limit": expected_memory["limit"]}
    assert resources.get("memory") == expected_memory
    assert resources.get("pids") == expected_pids


def test_merge_env_is_replace_or_append() -> None:
    assert merge_env(["A=1", "B=2", "C=3"], ["B=9", "D=4", "C", "X"]) == ["A=1", "B=9", "D=4"]


def test_exec_process_inherits_the_container(rootfs: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"], "Env": ["A=1"], "WorkingDir": "/srv"}, RunOptions(network="none"))
    proc = exec_process(spec, ["sh"], env=["A=2"], tty=True)
    assert proc["args"] == ["sh"]
    assert proc["cwd"] == "/srv"
    assert "A=2" in proc["env"]
    assert "TERM=xterm" in proc["env"]
    assert proc["terminal"] is True
    as_app = exec_process(spec, ["id"], user="app", workdir="/tmp")
    assert as_app["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert set(as_app["capabilities"]) == {"bounding"}
    assert as_app["cwd"] == "/tmp"
    with pytest.raises(SpecError, match="no command specified"):
        exec_process(spec, [])


def test_write_spec(rootfs: Path, tmp_path: Path) -> None:
    spec = spec_for(rootfs, {"Cmd": ["true"]}, RunOptions(network="none"))
    path = write_spec(tmp_path / "bundle", spec)
    assert path == tmp_path / "bundle" / "config.json"
    assert json.loads(path.read_text()) == spec

"""runtime.ocirt against the real runc: bundles from runtime.spec with a busybox-static rootfs.

Every container has a unique ``dockyard-test-<random>`` id, lives in a runc state directory under the
test's temp dir (never runc's system root), and is deleted (``runc delete --force``) at teardown; runc
removes its cgroups with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.ocirt import ContainerNotFoundError, OciRuntimeError, Runc, StartError, Stdio, runtime_named
from runtime.spec import (
    CAPABILITY_NUMBERS,
    RunOptions,
    VolumeMount,
    build_spec,
    exec_process,
    host_bounding_set,
    write_spec,
)
from tests.support.tools import require_root, require_tool

APPLETS = ("sh", "echo", "cat", "sleep", "id", "true", "false", "env", "pwd", "hostname", "ls", "touch", "grep", "seq")
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"
MiB = 1024 * 1024


def make_rootfs(path: Path, busybox: Path) -> Path:
    """A minimal root: busybox-static with applet symlinks, and a passwd/group with ``app`` (1000)."""
    (path / "bin").mkdir(parents=True)
    shutil.copy2(busybox, path / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", path / "bin" / applet)
    (path / "etc").mkdir()
    (path / "etc" / "passwd").write_text(PASSWD)
    (path / "etc" / "group").write_text(GROUP)
    return path


def new_id() -> str:
    return "dockyard-test-" + secrets.token_hex(6)


@dataclass
class Sandbox:
    """A private runc root plus the containers made in it (all deleted at teardown)."""

    base: Path
    busybox: Path
    runc: Runc
    ids: list[str] = field(default_factory=list)

    def bundle(
        self, opts: RunOptions, image: dict[str, Any] | None = None, netns: str | None = None
    ) -> tuple[str, Path]:
        """A fresh container id and its bundle directory (``config.json`` + ``hosts`` etc.)."""
        cid = new_id()
        rootfs = make_rootfs(self.base / cid / "rootfs", self.busybox)
        container_dir = self.base / cid / "container"
        write_spec(container_dir, build_spec(image or {}, opts, rootfs, container_dir, netns, container_id=cid))
        self.ids.append(cid)
        return cid, container_dir

    def run(
        self, *command: str, image: dict[str, Any] | None = None, netns: str | None = None, **options: Any
    ) -> tuple[int, str, str]:
        """Run ``command`` in the foreground; (exit code, stdout, stderr)."""
        options.setdefault("network", "none")
        cid, bundle = self.bundle(RunOptions(command=command, **options), image, netns)
        out, err = bundle / "out", bundle / "err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            code = self.runc.run(cid, bundle, stdio=Stdio(subprocess.DEVNULL, stdout, stderr))
        return code, out.read_text(), err.read_text()

    def cleanup(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(ContainerNotFoundError):
                self.runc.delete(cid, force=True)
        leftovers = subprocess.run(
            ["runc", "--root", str(self.runc.root), "list", "-q"], capture_output=True, text=True, check=False
        )
        assert leftovers.stdout.strip() == ""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    require_root()
    require_tool("runc")
    busybox = Path(require_tool("busybox"))
    box = Sandbox(tmp_path, busybox, Runc(tmp_path / "runc-state"))
    try:
        yield box
    finally:
        box.cleanup()


def test_echo(sandbox: Sandbox) -> None:
    assert sandbox.run("echo", "hi") == (0, "hi\n", "")


def test_exit_code(sandbox: Sandbox) -> None:
    code, _, _ = sandbox.run("sh", "-c", "echo oops >&2; exit 3")
    assert code == 3


def test_user_ids(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("id", user="1000:1000")
    assert code == 0
    assert out.startswith("uid=1000(app) gid=1000(app)")
    _, out, _ = sandbox.run("id", user="app")
    assert "groups=" in out
    assert "2000(extra)" in out


def test_env_and_cwd(sandbox: Sandbox) -> None:
    image = {"Env": ["FOO=image", "KEEP=1"], "WorkingDir": "/work/dir"}
    code, out, _ = sandbox.run("sh", "-c", 'echo "$FOO $KEEP $HOME $HOSTNAME"; pwd', image=image, env=("FOO=cli",))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["cli", "1", "/root"]
    assert lines[0].split()[3].startswith("dockyard-tes")
    assert lines[1] == "/work/dir"


def test_hostname(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("sh", "-c", "hostname; cat /etc/hostname; grep web /etc/hosts", hostname="web")
    assert code == 0
    assert out.splitlines() == ["web", "web", "127.0.0.1\tweb"]


def test_network_none_has_only_loopback(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("cat", "/proc/net/dev")
    assert code == 0
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_network_host_sees_the_hosts_interfaces(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("cat", "/proc/net/dev", network="host")
    assert code == 0
    inside = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    host = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert inside == host


def test_network_bridge_joins_the_given_namespace(sandbox: Sandbox) -> None:
    ip = require_tool("ip")
    name = new_id()
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "add", "dyva", "type", "veth", "peer", "name", "dyvb"], check=True)
        code, out, _ = sandbox.run("cat", "/proc/net/dev", network="bridge", netns=f"/run/netns/{name}")
    finally:
        subprocess.run([ip, "netns", "delete", name], check=True)
    assert code == 0
    assert {line.split(":")[0].strip() for line in out.splitlines()[2:]} == {"lo", "dyva", "dyvb"}


def test_capabilities_inside(sandbox: Sandbox) -> None:
    _, out, _ = sandbox.run("grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    bounding = int(caps["CapBnd"], 16)
    expected = sum(1 << n for n in CAPABILITY_NUMBERS.values() if n in host_bounding_set())
    assert bounding == expected
    assert int(caps["CapEff"], 16) == expected
    _, out, _ = sandbox.run("grep", "^CapEff", "/proc/self/status", user="app")
    assert int(out.split()[1], 16) == 0


def test_masked_and_readonly_paths(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("sh", "-c", "cat /proc/keys | wc -c; echo 1 > /proc/sys/kernel/ns_last_pid || echo ro")
    assert code == 0
    assert out.split()[-1] == "ro"


def test_memory_limit_kills_with_137(sandbox: Sandbox) -> None:
    hog = "x=a; while true; do x=$x$x; done"
    code, _, _ = sandbox.run("sh", "-c", hog, memory=16 * MiB)
    assert code == 137


def test_pids_limit(sandbox: Sandbox) -> None:
    script = "cat /sys/fs/cgroup/pids/pids.max; for i in $(seq 1 20); do sleep 2 & done; echo forked"
    _, out, err = sandbox.run("sh", "-c", script, pids_limit=8)
    assert out.splitlines()[0] == "8"
    assert "can't fork" in err


def test_volumes_ro_and_rw(sandbox: Sandbox, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "seed").write_text("seed\n")
    mounts = (VolumeMount(rw, "/data"), VolumeMount(ro, "/config", readonly=True))
    script = "echo kept > /data/file; cat /config/seed; touch /config/new || echo refused"
    code, out, _ = sandbox.run("sh", "-c", script, mounts=mounts)
    assert code == 0
    assert out.splitlines() == ["seed", "refused"]
    assert (rw / "file").read_text() == "kept\n"
    assert not (ro / "new").exists()


def test_read_only_root(sandbox: Sandbox) -> None:
    _, out, _ = sandbox.run(
        "sh", "-c", "touch /x || echo refused; echo ok > /etc/hosts || echo hosts-ro", read_only=True
    )
    assert out.splitlines() == ["refused", "hosts-ro"]


def test_missing_command_is_a_start_error(sandbox: Sandbox) -> None:
    with pytest.raises(StartError) as info:
        sandbox.run("definitely-not-here")
    assert info.value.exit_code == 127
    assert "executable file not found" in str(info.value)


def test_lifecycle_state_exec_kill_delete(sandbox: Sandbox) -> None:
    cid, bundle = sandbox.bundle(RunOptions(command=("sleep", "60"), network="none", env=("A=1",)))
    runc = sandbox.runc
    runc.create(cid, bundle, stdio=Stdio(subprocess.DEVNULL, subprocess.DEVNULL, subprocess.DEVNULL))
    created = runc.state(cid)
    assert (created.id, created.status, created.bundle) == (cid, "created", str(bundle))
    runc.start(cid)
    running = runc.state(cid)
    assert running.status == "running"
    assert Path(f"/proc/{running.pid}").exists()
    spec = json.loads((bundle / "config.json").read_text())
    out = bundle / "exec-out"
    with open(out, "wb") as stdout:
        process = exec_process(spec, ["sh", "-c", "echo $A $B; id -u; exit 7"], env=["B=2"], user="app")
        assert runc.exec(cid, process, stdio=Stdio(subprocess.DEVNULL, stdout, None)) == 7
    assert out.read_text() == "1 2\n1000\n"
    runc.kill(cid, 9)
    deadline = time.monotonic() + 10
    while runc.state(cid).status != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runc.state(cid).status == "stopped"
    runc.delete(cid)
    with pytest.raises(ContainerNotFoundError):
        runc.state(cid)


def test_errors_carry_runcs_message(sandbox: Sandbox) -> None:
    with pytest.raises(ContainerNotFoundError, match="does not exist"):
        sandbox.runc.kill("dockyard-test-missing", 15)
    with pytest.raises(OciRuntimeError):
        sandbox.runc.start("dockyard-test-missing")


def test_a_missing_binary_is_an_oci_runtime_error(tmp_path: Path) -> None:
    runc = Runc(tmp_path / "state", binary=str(tmp_path / "no-such-runc"))
    with pytest.raises(OciRuntimeError, match="no-such-runc"):
        runc.state("dockyard-test-x")
    with pytest.raises(OciRuntimeError, match="no-such-runc"):
        runc.run("dockyard-test-x", tmp_path)


def test_runtime_named() -> None:
    runtime = runtime_named("runc", Path("/tmp/x"))
    assert (runtime.name, runtime.root, runtime.binary) == ("runc", Path("/tmp/x"), "runc")
    assert runtime_named("runc", Path("/tmp/x"), "/usr/sbin/runc").binary == "/usr/sbin/runc"
    with pytest.raises(ValueError, match="unknown OCI runtime 'kata'"):
        runtime_named("kata", Path("/tmp/x"))

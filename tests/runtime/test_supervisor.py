"""runtime.supervisor: detached supervision of real runc containers, docker's json-file logs, state.json.

Containers are ``dockyard-test-<random>`` in a runc root under the test's temp dir; teardown kills what
still runs (through runc, by container id: never another process) and deletes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.ocirt import OciRuntimeError, Runc, Stdio
from runtime.spec import RunOptions, exec_process
from runtime.supervisor import (
    LOG_NAME,
    JsonLogWriter,
    SupervisorError,
    memory_cgroup_dir,
    oom_killed,
    parse_arguments,
    read_logs,
    read_state,
    read_status,
    rfc3339_nano,
    send_signal,
    supervise,
    supervisor_alive,
    update_state,
    wait,
)
from tests.runtime.test_ocirt import Sandbox
from tests.support.tools import require_root, require_tool

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
MiB = 1024 * 1024


@dataclass
class Supervised:
    """Containers started under supervision in one test, stopped and deleted at teardown."""

    box: Sandbox
    dirs: list[Path] = field(default_factory=list)

    def start(
        self, *command: str, tty: bool = False, interactive: bool = False, **options: Any
    ) -> tuple[str, Path, Any]:
        options.setdefault("network", "none")
        cid, container_dir = self.box.bundle(RunOptions(command=command, tty=tty, **options))
        self.dirs.append(container_dir)
        started = supervise(container_dir, cid, self.box.runc, tty=tty, interactive=interactive, timeout=30)
        return cid, container_dir, started

    def cleanup(self) -> None:
        for container_dir in self.dirs:
            status = read_status(container_dir)
            if supervisor_alive(container_dir, status.supervisor_pid):
                with contextlib.suppress(SupervisorError, OciRuntimeError):
                    send_signal(container_dir, signal.SIGKILL)
                wait(container_dir, timeout=30)
            deadline = time.monotonic() + 10  # the end is recorded last; the process exits right after
            while supervisor_alive(container_dir, read_status(container_dir).supervisor_pid):
                assert time.monotonic() < deadline, f"the supervisor of {container_dir} did not exit"
                time.sleep(0.02)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    require_root()
    require_tool("runc")
    box = Sandbox(tmp_path, Path(require_tool("busybox")), Runc(tmp_path / "runc-state"))
    sup = Supervised(box)
    try:
        yield sup
    finally:
        try:
            sup.cleanup()
        finally:
            box.cleanup()


def logs(container_dir: Path) -> list[tuple[str, str]]:
    return [(entry.stream, entry.log) for entry in read_logs(container_dir)]


def wait_for_log(container_dir: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in log for _, log in logs(container_dir)):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {logs(container_dir)}"
        time.sleep(0.02)


def test_detached_container_logs_json_lines(supervised: Supervised) -> None:
    _, container_dir, started = supervised.start("sh", "-c", "echo one; echo two >&2; printf 'no newline'; exit 4")
    assert started.stdin is None
    status = wait(container_dir, timeout=30)
    assert status.exit_code == 4
    entries = logs(container_dir)  # two pipes: the order between streams is not defined, within one it is
    assert [log for stream, log in entries if stream == "stdout"] == ["one\n", "no newline"]
    assert [log for stream, log in entries if stream == "stderr"] == ["two\n"]
    for line in (container_dir / LOG_NAME).read_text().splitlines():
        entry = json.loads(line)
        assert set(entry) == {"log", "stream", "time"}
        assert RFC3339_NANO.match(entry["time"])


def test_state_json_through_the_lifecycle(supervised: Supervised) -> None:
    cid, container_dir, started = supervised.start("sleep", "60")
    running = started.status
    assert running.status == "running"
    assert running.pid > 0
    assert Path(f"/proc/{running.pid}").exists()
    assert RFC3339_NANO.match(running.started_at or "")
    assert running.exit_code is None
    assert supervisor_alive(container_dir, running.supervisor_pid)
    state = read_state(container_dir)
    assert (state["runtime"], state["runtime_id"]) == ("runc", cid)
    send_signal(container_dir, signal.SIGKILL)
    final = wait(container_dir, timeout=30)
    assert (final.status, final.exit_code, final.oom_killed, final.error, final.pid) == ("exited", 137, False, None, 0)
    assert RFC3339_NANO.match(final.finished_at or "")
    assert (final.finished_at or "") >= (final.started_at or "")
    with pytest.raises(OciRuntimeError):  # the supervisor deleted runc's container
        supervised.box.runc.state(cid)


def test_sigterm_to_the_supervisor_reaches_the_container(supervised: Supervised) -> None:
    script = 'trap "echo got TERM; exit 143" TERM; echo ready; while true; do sleep 0.1; done'
    _, container_dir, started = supervised.start("sh", "-c", script)
    wait_for_log(container_dir, "ready")
    os.kill(started.status.supervisor_pid, signal.SIGTERM)
    assert wait(container_dir, timeout=30).exit_code == 143
    assert ("stdout", "got TERM\n") in logs(container_dir)


def test_oom_kill_is_recorded(supervised: Supervised) -> None:
    _, container_dir, _ = supervised.start("sh", "-c", "x=a; while true; do x=$x$x; done", memory=16 * MiB)
    final = wait(container_dir, timeout=60)
    assert (final.exit_code, final.oom_killed) == (137, True)


def test_attached_mode_streams_until_the_end(supervised: Supervised) -> None:
    _, container_dir, _ = supervised.start("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done; exit 2")
    streamed = [entry.log for entry in read_logs(container_dir, follow=True)]
    assert streamed == ["1\n", "2\n", "3\n"]
    assert wait(container_dir, timeout=5).exit_code == 2


def test_interactive_stdin(supervised: Supervised) -> None:
    _, container_dir, started = supervised.start("sh", "-c", "read line; echo got $line; cat", interactive=True)
    assert started.stdin is not None
    started.stdin.write(b"hello\nrest\n")
    started.stdin.close()
    assert wait(container_dir, timeout=30).exit_code == 0
    assert logs(container_dir) == [("stdout", "got hello\n"), ("stdout", "rest\n")]


def test_tty_output_is_stdout(supervised: Supervised) -> None:
    _, container_dir, _ = supervised.start("sh", "-c", "test -t 1 && echo tty; echo $TERM >&2", tty=True)
    assert wait(container_dir, timeout=30).exit_code == 0
    assert logs(container_dir) == [("stdout", "tty\r\n"), ("stdout", "xterm\r\n")]


def test_interactive_tty_echoes_and_ends_at_eof(supervised: Supervised) -> None:
    _, container_dir, started = supervised.start("sh", "-c", "read x; echo got $x; cat", tty=True, interactive=True)
    assert started.stdin is not None
    started.stdin.write(b"hello\nmore\n")
    wait_for_log(container_dir, "got hello")
    started.stdin.close()  # becomes ^D on the terminal: cat ends
    assert wait(container_dir, timeout=30).exit_code == 0
    text = "".join(log for _, log in logs(container_dir))
    assert text.count("more\r\n") == 2  # the terminal's echo, then cat's copy
    assert {stream for stream, _ in logs(container_dir)} == {"stdout"}


def test_failed_start_is_recorded(supervised: Supervised) -> None:
    _, container_dir, started = supervised.start("no-such-command")
    final = wait(container_dir, timeout=30)
    assert final.exit_code == 127
    assert final.started_at is None
    assert "executable file not found" in (final.error or "")
    assert started.status.status in ("running", "exited")


def test_exec_into_a_supervised_container(supervised: Supervised) -> None:
    cid, container_dir, _ = supervised.start("sleep", "60", env=("WHO=container",))
    spec = json.loads((container_dir / "config.json").read_text())
    out = container_dir / "exec-out"
    with open(out, "wb") as stdout:
        code = supervised.box.runc.exec(
            cid, exec_process(spec, ["sh", "-c", "echo $WHO; cat /proc/1/cmdline"]), stdio=Stdio(None, stdout, None)
        )
    assert code == 0
    assert out.read_bytes() == b"container\nsleep\x0060\x00"


def test_a_running_container_cannot_be_supervised_twice(supervised: Supervised) -> None:
    cid, container_dir, _ = supervised.start("sleep", "60")
    with pytest.raises(SupervisorError, match="already running"):
        supervise(container_dir, cid, supervised.box.runc)


def test_stopped_container_starts_again_and_appends_to_its_log(supervised: Supervised) -> None:
    cid, container_dir, _ = supervised.start("echo", "again")
    assert wait(container_dir, timeout=30).exit_code == 0
    supervise(container_dir, cid, supervised.box.runc)
    assert wait(container_dir, timeout=30).exit_code == 0
    assert logs(container_dir) == [("stdout", "again\n"), ("stdout", "again\n")]


def test_a_killed_supervisor_is_noticed(supervised: Supervised) -> None:
    cid, container_dir, started = supervised.start("sh", "-c", "echo up; sleep 60")
    wait_for_log(container_dir, "up")
    os.kill(started.status.supervisor_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while supervisor_alive(container_dir, started.status.supervisor_pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(SupervisorError, match="no supervisor"):
        wait(container_dir, timeout=10)
    assert [entry.log for entry in read_logs(container_dir, follow=True)] == ["up\n"]  # follow ends too
    supervised.box.runc.delete(cid, force=True)  # the orphaned container is still runc's to remove


def test_a_missing_runtime_binary_is_recorded(supervised: Supervised, tmp_path: Path) -> None:
    cid, container_dir = supervised.box.bundle(RunOptions(command=("true",), network="none"))
    supervised.dirs.append(container_dir)
    runtime = Runc(tmp_path / "runc-state", binary=str(tmp_path / "no-such-runc"))
    supervise(container_dir, cid, runtime)
    final = wait(container_dir, timeout=30)
    assert (final.exit_code, final.started_at) == (125, None)
    assert "no-such-runc" in (final.error or "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bundle", "/b", "--id", "x", "--runtime-root", "/r"], "missing: container_dir"),
        (["--container-dir", "/c", "--bundle", "/b", "--id", "x", "--runtime-root", "/r", "--bogus"], "--bogus"),
        (["--container-dir"], "unexpected argument: --container-dir"),
    ],
)
def test_supervisor_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_arguments(argv)
    parsed = parse_arguments(["--container-dir", "/c", "--bundle", "/b", "--id", "x", "--runtime-root", "/r", "--tty"])
    assert (parsed.container_dir, parsed.runtime, parsed.runtime_binary, parsed.tty) == (Path("/c"), "runc", None, True)


def test_wait_without_a_supervisor(tmp_path: Path) -> None:
    with pytest.raises(SupervisorError, match="no supervisor"):
        wait(tmp_path, timeout=1)


def test_wait_times_out(supervised: Supervised) -> None:
    _, container_dir, _ = supervised.start("sleep", "60")
    with pytest.raises(TimeoutError):
        wait(container_dir, timeout=0.2)


# -- pieces without containers -------------------------------------------------------------------


def test_log_writer_splits_lines_like_docker(tmp_path: Path) -> None:
    writer = JsonLogWriter(tmp_path / LOG_NAME)
    writer.write("stdout", b"a\nb")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"c\n" + b"x" * (16 * 1024 + 5))
    writer.close()
    entries = [(e.stream, e.log) for e in read_logs(tmp_path)]
    assert entries == [
        ("stdout", "a\n"),
        ("stderr", "err\n"),
        ("stdout", "bc\n"),
        ("stdout", "x" * 16 * 1024),
        ("stdout", "xxxxx"),
    ]
    assert [e.log for e in read_logs(tmp_path, tail=2)] == ["x" * 16 * 1024, "xxxxx"]
    assert list(read_logs(tmp_path, tail=0)) == []


def test_log_writer_replaces_invalid_utf8(tmp_path: Path) -> None:
    writer = JsonLogWriter(tmp_path / LOG_NAME)
    writer.write("stdout", "héllo \xff\n".encode("latin-1"))
    writer.close()
    assert [e.log for e in read_logs(tmp_path)] == ["h\ufffdllo \ufffd\n"]


def test_rfc3339_nano() -> None:
    assert rfc3339_nano(0) == "1970-01-01T00:00:00.000000000Z"
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


def test_update_state_keeps_other_keys(tmp_path: Path) -> None:
    update_state(tmp_path, name="web", image="busybox")
    update_state(tmp_path, status="running", pid=42)
    assert read_state(tmp_path) == {"name": "web", "image": "busybox", "status": "running", "pid": 42}
    assert read_status(tmp_path).pid == 42
    assert not list(tmp_path.glob("*.tmp"))


def test_memory_cgroup_dir(tmp_path: Path) -> None:
    v1 = tmp_path / "mountinfo-v1"
    v1.write_text(
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "35 25 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
    )
    assert memory_cgroup_dir("/dockyard/abc", v1) == Path("/sys/fs/cgroup/memory/dockyard/abc")
    assert memory_cgroup_dir("/x", tmp_path / "mountinfo-v1") is not None
    none = tmp_path / "mountinfo-none"
    none.write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    assert memory_cgroup_dir("/x", none) is None


@pytest.mark.parametrize(
    ("files", "code", "expected"),
    [
        ({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "memory.failcnt": "9"}, 137, True),
        ({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.failcnt": "9"}, 137, False),
        ({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n", "memory.failcnt": "9"}, 137, True),
        ({"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n", "memory.failcnt": "9"}, 0, False),
        ({"memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"}, 137, True),
        ({"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"}, 137, False),
    ],
)
def test_oom_detection(tmp_path: Path, files: dict[str, str], code: int, expected: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert oom_killed(tmp_path, code) is expected
    assert oom_killed(None, code) is False


def test_supervisor_runs_from_any_directory(tmp_path: Path) -> None:
    """The supervisor is ``python -m runtime.supervisor``: it must import from anywhere."""
    import sys

    from runtime import supervisor

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(supervisor.__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-S", "-m", "runtime.supervisor", "--help"], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 0
    assert b"--container-dir" in done.stdout

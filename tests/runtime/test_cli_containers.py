"""The container commands end to end: ``python -m dockyard --root TMP ...`` running real runc containers.

Images come from :class:`tests.support.images.ImageFactory` (busybox-static), imported straight into the test's
image store, or pushed with skopeo to a live dockyard registry for the pull-if-missing path. Every container is
force-removed at teardown and no mount under the test's root may remain.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.containers import ContainerStore
from runtime.imagestore import ImageStore
from tests.support.clients import Skopeo, ToolHome
from tests.support.images import Image, ImageFactory
from tests.support.server import live_registry
from tests.support.tools import require_root, require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def factory(tmp_path_factory: pytest.TempPathFactory) -> ImageFactory:
    """Test images (the busybox layer is compressed once per worker)."""
    return ImageFactory(tmp_path_factory.mktemp("container-images"))


def import_image(root: Path, factory: ImageFactory, image: Image, name: str) -> None:
    """Put ``image`` into the image store under ``root`` as ``name`` (what a pull would leave)."""
    store = ImageStore(root)
    for digest in image.blob_digests:
        store.write_blob(factory.layout.read_blob(digest), digest)
    store.add_image(name, image.manifest)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``."""
    prefix = str(path)
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if prefix in line]


@dataclass
class Dockyard:
    """Runs the CLI with a private root, HOME and DOCKER_CONFIG."""

    root: Path
    home: Path

    def run(self, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home), "DOCKER_CONFIG": str(self.home / ".docker")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "--root", str(self.root), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=REPO_ROOT,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, f"{args}: exit {done.returncode}: {done.stderr}"
        return done.stdout

    def cleanup(self) -> None:
        store = ContainerStore(self.root)
        for container in store.all():
            with contextlib.suppress(Exception):
                store.remove(container, force=True, volumes=True)
        assert mounts_under(self.root) == []


@pytest.fixture
def dy(tmp_path: Path) -> Iterator[Dockyard]:
    require_root()
    require_tool("runc")
    (tmp_path / "home" / ".docker").mkdir(parents=True)
    cli = Dockyard(tmp_path / "root", tmp_path / "home")
    try:
        yield cli
    finally:
        cli.cleanup()


@pytest.fixture
def image(dy: Dockyard, factory: ImageFactory) -> str:
    """A local image (busybox + /hello.txt) named ``localhost/test/img:1``."""
    name = "localhost/test/img:1"
    import_image(dy.root, factory, factory.image("img", hello=b"hello from the image\n"), name)
    return name


def test_run_prints_and_exits_with_the_container_code(dy: Dockyard, image: str) -> None:
    done = dy.run("run", "--rm", image, "echo", "hi")
    assert (done.returncode, done.stdout, done.stderr) == (0, "hi\n", "")
    assert dy.run("run", "--rm", image, "sh", "-c", "exit 3").returncode == 3
    err = dy.run("run", "--rm", image, "sh", "-c", "echo oops >&2")
    assert (err.stdout, err.stderr) == ("", "oops\n")
    assert dy.ok("ps", "-a", "-q") == ""


def test_entrypoint_cmd_env_workdir_user(dy: Dockyard, image: str, tmp_path: Path) -> None:
    assert dy.ok("run", "--rm", image, "cat", "/hello.txt") == "hello from the image\n"
    assert dy.ok("run", "--rm", "--entrypoint", "echo", image, "a", "b") == "a b\n"
    assert dy.ok("run", "--rm", "-e", "FOO=bar", image, "sh", "-c", "echo $FOO") == "bar\n"
    (tmp_path / "env").write_text("# comment\nA=1\nB=2\n")
    out = dy.ok("run", "--rm", "--env-file", str(tmp_path / "env"), "-e", "B=3", image, "sh", "-c", "echo $A$B")
    assert out == "13\n"
    assert dy.ok("run", "--rm", "-w", "/tmp/new", image, "sh", "-c", "pwd") == "/tmp/new\n"
    status = dy.ok("run", "--rm", "-u", "1000:1000", image, "cat", "/proc/self/status")
    assert any(line.split()[:2] == ["Uid:", "1000"] for line in status.splitlines())
    assert dy.ok("run", "--rm", "--hostname", "box", image, "cat", "/etc/hostname") == "box\n"
    missing = dy.run("run", "--rm", image, "/nonexistent")
    assert missing.returncode == 127
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def test_detached_lifecycle(dy: Dockyard, image: str) -> None:
    script = 'trap "exit 143" TERM; echo started; sleep 1000 & wait'
    cid = dy.ok("run", "-d", "--name", "web", image, "sh", "-c", script).strip()
    assert len(cid) == 64
    listing = dy.ok("ps")
    assert "web" in listing
    assert cid[:12] in listing
    wait_until(lambda: "started" in dy.ok("logs", "web"))
    assert dy.ok("exec", "web", "cat", "/hello.txt") == "hello from the image\n"
    assert dy.run("exec", "web", "sh", "-c", "exit 5").returncode == 5
    assert dy.run("rm", "web").returncode == 1  # running
    assert dy.ok("stop", "-t", "5", "web") == "web\n"
    assert "Exited (143)" in dy.ok("ps", "-a")
    assert "web" not in dy.ok("ps")
    dy.ok("start", "web")
    wait_until(lambda: dy.ok("logs", "web").count("started") == 2)
    dy.ok("kill", "web")
    wait_until(lambda: "Exited (137)" in dy.ok("ps", "-a"))
    assert dy.ok("logs", "--tail", "1", "web") == "started\n"
    dy.ok("rm", "web")
    assert dy.ok("ps", "-a", "-q") == ""
    assert mounts_under(dy.root) == []
    assert not (dy.root / "containers" / cid).exists()


def test_memory_limit_oom_kill(dy: Dockyard, image: str) -> None:
    done = dy.run("run", "--rm", "--memory", "16m", image, "sh", "-c", "x=a; while true; do x=$x$x; done")
    assert done.returncode == 137


def test_named_volume_survives_rm_and_bind_ro(dy: Dockyard, image: str, tmp_path: Path) -> None:
    dy.ok("run", "--name", "writer", "-v", "data:/data", image, "sh", "-c", "echo kept > /data/f")
    assert dy.run("volume", "rm", "data").returncode == 1  # in use
    dy.ok("rm", "writer")
    assert "data" in dy.ok("volume", "ls", "-q").split()
    assert dy.ok("run", "--rm", "-v", "data:/other", image, "cat", "/other/f") == "kept\n"
    info = json.loads(dy.ok("volume", "inspect", "data"))
    assert Path(info[0]["Mountpoint"], "f").read_text() == "kept\n"
    host = tmp_path / "host" / "dir"  # created, as docker does
    dy.ok("run", "--rm", "-v", f"{host}:/h", image, "sh", "-c", "echo w > /h/x")
    assert (host / "x").read_text() == "w\n"
    ro = dy.run("run", "--rm", "-v", f"{host}:/h:ro", image, "sh", "-c", "echo no > /h/y")
    assert ro.returncode != 0
    assert not (host / "y").exists()
    dy.ok("volume", "rm", "data")
    assert dy.ok("volume", "ls", "-q") == ""


def test_commit_round_trip(dy: Dockyard, image: str) -> None:
    script = "echo committed > /hello.txt && rm /bin/true"
    dy.ok("run", "--name", "changer", image, "sh", "-c", script)
    first = dy.ok("commit", "-m", "msg", "-c", 'CMD ["cat", "/hello.txt"]', "changer", "localhost/test/committed:1")
    dy.ok("commit", "changer", "localhost/test/committed:2")
    assert first.startswith("sha256:")
    assert dy.ok("run", "--rm", "localhost/test/committed:1") == "committed\n"
    gone = dy.run("run", "--rm", "localhost/test/committed:1", "ls", "/bin/true")
    assert gone.returncode != 0
    store = ImageStore(dy.root)
    one, two = (store.manifest(f"localhost/test/committed:{n}").layers[-1] for n in (1, 2))
    assert one.digest == two.digest
    config = store.image_config("localhost/test/committed:1")
    assert config["config"]["Cmd"] == ["cat", "/hello.txt"]
    assert config["history"][-1]["comment"] == "msg"
    assert len(config["rootfs"]["diff_ids"]) == len(store.layers(image)) + 1


def test_errors_are_one_line(dy: Dockyard, image: str) -> None:
    cases = [
        (("logs", "nosuch"), 1),
        (("rm", "nosuch"), 1),
        (("run", "--rm", "-v", "relative/dir:/x", image, "true"), 1),
        (("run", "--rm", "-v", "/abs:relative", image, "true"), 1),
        (("run", "--rm", "-p", "8080:80/udp", image, "true"), 1),
        (("run", "--rm", "--memory", "lots", image, "true"), 1),
        (("run", "--rm", "-u", "nobody", image, "true"), 1),
        (("run", "--rm", "--entrypoint", "", image), 1),
        (("commit", "nosuch", "localhost/x:1"), 1),
    ]
    for args, code in cases:
        done = dy.run(*args)
        assert done.returncode == code, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    dy.ok("run", "--name", "taken", image, "true")
    dup = dy.run("run", "--name", "taken", image, "true")
    assert dup.returncode == 1
    assert "already in use" in dup.stderr


def test_run_pulls_a_missing_image(dy: Dockyard, factory: ImageFactory, tmp_path: Path) -> None:
    image = factory.image("pullme", hello=b"pulled\n")
    home = ToolHome(tmp_path / "tools")
    (tmp_path / "registry").mkdir()
    try:
        with live_registry(tmp_path / "registry") as registry:
            Skopeo(home, registry).copy(image.oci_ref, f"docker://{registry.host}/test/pullme:1")
            done = dy.run("run", "--rm", f"{registry.host}/test/pullme:1", "cat", "/hello.txt")
            assert (done.returncode, done.stdout) == (0, "pulled\n"), done.stderr
            missing = dy.run("run", "--rm", f"{registry.host}/test/nothing:1", "true")
            assert missing.returncode == 1
            lines = [line for line in missing.stderr.splitlines() if line.strip()]
            assert len(lines) == 2, missing.stderr  # the notice, then one error line
    finally:
        home.cleanup()

"""The image commands of ``dockyard`` as real processes (``python -m dockyard --root DIR ...``) against live
registries: a dockyard in open and token mode and CNCF Distribution (Debian's ``docker-registry``). Images are built
from busybox-static and pushed with skopeo; every user mistake must be one ``Error:`` line and exit 1."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.cli_images import EXIT_INTERNAL, created_ago, handled, human_duration, human_size, insecure_registries
from tests.support.clients import Skopeo
from tests.support.images import Image, ImageFactory
from tests.support.registries import ALICE, Registry, push_image, token_dockyard
from tests.support.server import free_port, live_registry

pytestmark = pytest.mark.interop

TIMEOUT = 120


# -- running the command -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dockyard:
    """``python -m dockyard --root ROOT`` with a private docker config dir and HOME."""

    root: Path
    home: Path

    @property
    def config_json(self) -> Path:
        return self.home / "docker-config" / "config.json"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKYARD_ROOT", "DOCKYARD_INSECURE_REGISTRIES")}
        return {**env, "HOME": str(self.home), "DOCKER_CONFIG": str(self.config_json.parent)}

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run one command; stdin is a pipe (never a terminal), as in a script."""
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "--root", str(self.root), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.env(),
            check=False,
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        """Run a command that must succeed; returns its stdout."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def fails(self, *args: str, stdin: str = "") -> str:
        """Run a command that must fail as a user mistake: exit 1, one ``Error:`` line, no traceback."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 1, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Error: ")
        assert "Traceback" not in result.stderr
        return lines[0]

    def inspect(self, name: str) -> dict[str, Any]:
        docs = json.loads(self.ok("inspect", name))
        assert isinstance(docs, list)
        assert len(docs) == 1
        doc: dict[str, Any] = docs[0]
        return doc

    def image_rows(self) -> list[list[str]]:
        """The ``images`` table, split on runs of 3+ spaces, header dropped."""
        lines = self.ok("images").splitlines()
        assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
        return [[cell.strip() for cell in line.split("   ") if cell.strip()] for line in lines[1:]]


@pytest.fixture
def dockyard(tmp_path: Path) -> Dockyard:
    (tmp_path / "home" / "docker-config").mkdir(parents=True)
    return Dockyard(tmp_path / "root", tmp_path / "home")


# -- the whole journey against each registry ------------------------------------------------------------


def check_pulled(dockyard: Dockyard, image: Image, name: str) -> None:
    """``images`` lists ``name`` with the config digest as its id; ``inspect`` shows docker's fields."""
    repository, _, tag = name.rpartition(":")
    rows = dockyard.image_rows()
    assert [repository, tag, image.config_digest[7:19]] in [row[:3] for row in rows]
    doc = dockyard.inspect(name)
    assert doc["Id"] == image.config_digest
    assert name in doc["RepoTags"]
    assert f"{repository}@{image.digest}" in doc["RepoDigests"]
    assert (doc["Os"], doc["Architecture"]) == ("linux", "amd64")
    assert doc["RootFS"] == {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]}
    assert isinstance(doc["Config"], dict)
    assert doc["Size"] == len(image.config) + sum(len(layer.blob) for layer in image.layers)


def test_pull_tag_push_save_load_rmi(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, dockyard: Dockyard, tmp_path: Path
) -> None:
    image = factory.image("journey")
    source = f"{registry.host}/ns/app:1.0"
    push_image(skopeo, image, registry.host, "ns/app:1.0")

    out = dockyard.ok("pull", source).splitlines()
    assert out[0] == "1.0: Pulling from ns/app"
    assert f"Digest: {image.digest}" in out
    assert f"Status: Downloaded newer image for {source}" in out
    assert out[-1] == source
    assert dockyard.ok("pull", "-q", source) == f"{source}\n"
    assert f"Status: Image is up to date for {source}" in dockyard.ok("pull", source)
    check_pulled(dockyard, image, source)

    copy = f"{registry.host}/team/copy:2.0"
    assert dockyard.ok("tag", source, copy) == ""
    pushed = dockyard.ok("push", copy).splitlines()
    assert pushed[0] == f"The push refers to repository [{registry.host}/team/copy]"
    assert pushed[-1] == f"2.0: digest: {image.digest} size: {len(image.manifest)}"
    inspected = skopeo.inspect(f"docker://{copy}")
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]

    archive = tmp_path / "out" / "images.tar"
    dockyard.ok("save", source, copy, "-o", str(archive))
    fresh = Dockyard(tmp_path / "fresh-root", dockyard.home)
    loaded = fresh.ok("load", "-i", str(archive)).splitlines()
    assert sorted(loaded) == sorted([f"Loaded image: {source}", f"Loaded image: {copy}"])
    check_pulled(fresh, image, copy)
    assert sorted(fresh.inspect(source)["RepoTags"]) == sorted([source, copy])

    assert dockyard.ok("rmi", copy) == f"Untagged: {copy}\n"
    removed = dockyard.ok("rmi", source).splitlines()
    assert removed[0] == f"Untagged: {source}"
    assert {f"Deleted: {digest}" for digest in [image.digest, *image.blob_digests]} <= set(removed)
    assert dockyard.image_rows() == []
    dockyard.fails("inspect", source)


def test_rmi_by_id_needs_force_when_the_image_has_several_names(
    factory: ImageFactory, skopeo: Skopeo, dockyard: Dockyard, tmp_path: Path
) -> None:
    image = factory.image("rmi-id")
    (tmp_path / "reg").mkdir()
    with live_registry(tmp_path / "reg") as live:
        push_image(skopeo, image, live.host, "ns/one:1")
        dockyard.ok("pull", "-q", f"{live.host}/ns/one:1")
    dockyard.ok("tag", f"{live.host}/ns/one:1", "local/two:2")
    assert "several names" in dockyard.fails("rmi", image.config_digest[7:19])
    assert dockyard.ok("images", "-q") == f"{image.config_digest[7:19]}\n"
    removed = dockyard.ok("rmi", "-f", image.config_digest[7:19]).splitlines()
    assert {f"Untagged: {live.host}/ns/one:1", "Untagged: local/two:2"} <= set(removed)
    assert dockyard.image_rows() == []


# -- token mode: login, logout, pushing to one's own namespace -----------------------------------------


def test_login_then_push_to_own_namespace(
    factory: ImageFactory, skopeo: Skopeo, dockyard: Dockyard, tmp_path: Path
) -> None:
    image = factory.image("login")
    with token_dockyard(tmp_path) as live:
        host = live.host
        push_image(skopeo, image, host, "alice/base:1", "--dest-creds", f"{ALICE[0]}:{ALICE[1]}")
        dockyard.ok("pull", "-q", f"{host}/alice/base:1")
        dockyard.ok("tag", f"{host}/alice/base:1", f"{host}/alice/app:2")
        assert "unauthorized" in dockyard.fails("push", f"{host}/alice/app:2")

        wrong = dockyard.fails("login", host, "-u", ALICE[0], "--password-stdin", stdin="not-her-password\n")
        assert "unauthorized" in wrong or "denied" in wrong
        assert not dockyard.config_json.exists(), "a refused login stores nothing"

        assert dockyard.ok("login", host, "-u", ALICE[0], "--password-stdin", stdin=ALICE[1] + "\n") == (
            "Login Succeeded\n"
        )
        entry = json.loads(dockyard.config_json.read_text())["auths"][host]
        assert base64.b64decode(entry["auth"]).decode().startswith(f"{ALICE[0]}:")
        assert entry.get("identitytoken")

        assert dockyard.ok("push", f"{host}/alice/app:2").splitlines()[-1].startswith(f"2: digest: {image.digest}")
        inspected = skopeo.inspect(f"docker://{host}/alice/app:2", "--authfile", str(dockyard.config_json))
        assert inspected["Digest"] == image.digest

        assert dockyard.ok("logout", host) == f"Removing login credentials for {host}\n"
        assert host not in json.loads(dockyard.config_json.read_text()).get("auths", {})
        assert dockyard.ok("logout", host) == f"Not logged in to {host}\n"


def test_login_flags_are_checked(dockyard: Dockyard) -> None:
    host = f"127.0.0.1:{free_port()}"
    assert "--username" in dockyard.fails("login", host, "--password-stdin", stdin="secret\n")
    assert "mutually exclusive" in dockyard.fails("login", host, "-u", "a", "-p", "x", "--password-stdin")
    assert "non TTY" in dockyard.fails("login", host, "-u", "a")
    assert "cannot reach registry" in dockyard.fails("login", host, "-u", "a", "--password-stdin", stdin="x\n")


# -- user mistakes -------------------------------------------------------------------------------------


def test_user_mistakes_are_one_line_errors(dockyard: Dockyard, tmp_path: Path) -> None:
    assert "lowercase" in dockyard.fails("pull", "UPPER/Case")
    assert "invalid reference" in dockyard.fails("tag", "nothing-here", "UPPER/Case")
    assert "no such image" in dockyard.fails("tag", "nothing-here", "ns/x:1")
    assert "no such image" in dockyard.fails("rmi", "127.0.0.1:5000/no/such:image")
    assert "no such image" in dockyard.fails("inspect", "nothing-here")
    assert "no such image" in dockyard.fails("push", "127.0.0.1:5000/no/such:image")
    assert "no such image" in dockyard.fails("save", "nothing-here", "-o", str(tmp_path / "x.tar"))
    assert "no such file" in dockyard.fails("load", "-i", str(tmp_path / "missing.tar"))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    assert "not a readable tar" in dockyard.fails("load", "-i", str(tmp_path / "junk.tar"))
    assert "os/arch" in dockyard.fails("pull", "--platform", "nonsense", "127.0.0.1:5000/a/b")
    unreachable = dockyard.fails("pull", f"127.0.0.1:{free_port()}/ns/app:1")
    assert "cannot reach registry" in unreachable


def test_unknown_tag_and_corrupted_layer(
    factory: ImageFactory, skopeo: Skopeo, dockyard: Dockyard, tmp_path: Path
) -> None:
    """A missing tag is a one-line error; a layer whose bytes do not match its digest fails the pull, keeping
    no image."""
    big = factory.random_layer(1 << 20, f"cli-bad-{tmp_path.name}")
    image = factory.image("cli-bad", extra_layers=[big])
    (tmp_path / "reg").mkdir()
    with live_registry(tmp_path / "reg") as live:
        push_image(skopeo, image, live.host, "ns/bad:1.0")
        assert "not found" in dockyard.fails("pull", f"{live.host}/ns/bad:nope")
        hex_part = big.digest.partition(":")[2]
        stored = live.data / "v1" / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"
        damaged = bytearray(stored.read_bytes())
        damaged[100] ^= 0x01
        stored.write_bytes(bytes(damaged))
        assert big.digest in dockyard.fails("pull", f"{live.host}/ns/bad:1.0")
    assert dockyard.image_rows() == []


def test_ctrl_c_exits_130_without_a_traceback(dockyard: Dockyard) -> None:
    """A pull stuck on a registry that accepts connections but never answers is interrupted with SIGINT."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        command = [sys.executable, "-m", "dockyard", "--root", str(dockyard.root), "pull", f"{host}/ns/app:1"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dockyard.env()
        )
        try:
            silent.settimeout(120)
            connection, _ = silent.accept()  # the pull now waits on the registry: interrupt it there
            with connection:
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_unexpected_failures_exit_125_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    @handled
    def broken() -> None:
        raise RuntimeError("something inside dockyard broke\nsecond line")

    with pytest.raises(SystemExit) as exited:
        broken()
    assert exited.value.code == EXIT_INTERNAL
    expected = "Error: unexpected failure (RuntimeError): something inside dockyard broke second line\n"
    assert capsys.readouterr().err == expected


# -- formatting helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_264_000, "4.26MB"), (855_300, "855kB"), (1_500_000_000, "1.5GB")],
)
def test_human_size_is_dockers(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (30, "30 seconds"),
        (90, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration_is_dockers(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_created_ago() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert created_ago((now - timedelta(days=3)).isoformat().replace("+00:00", "Z"), now) == "3 days ago"
    assert created_ago(None, now) == "N/A"
    assert created_ago("yesterday", now) == "N/A"


def test_insecure_registries_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", " reg.example:5000, ,10.231.0.0/16 ")
    assert insecure_registries(["other.example"]) == ["other.example", "reg.example:5000", "10.231.0.0/16"]
    monkeypatch.delenv("DOCKYARD_INSECURE_REGISTRIES")
    assert insecure_registries([]) == []

"""The deployment kit on this machine, as an operator runs it: ``install.sh`` into private paths (a fresh venv
from this source tree, a system user of the test's own), the installed server answering, the systemd units
accepted by ``systemd-analyze verify``, a second run keeping the config, and ``--uninstall``/``--purge``.
"""

from __future__ import annotations

import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.server import free_port, stop_process, wait_http
from tests.support.tools import require_root, require_tool

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("deploy-kit")]

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL = REPO_ROOT / "Dockerfile-free-deploy" / "install.sh"
UNITS = ("dockyard.service", "dockyard-gc.service", "dockyard-gc.timer")


@dataclass(frozen=True)
class Install:
    root: Path
    user: str

    @property
    def prefix(self) -> Path:
        return self.root / "opt"

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    @property
    def unit_dir(self) -> Path:
        return self.root / "units"

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        args = [
            "--prefix", str(self.prefix), "--config-dir", str(self.config_dir), "--data-dir", str(self.data_dir),
            "--unit-dir", str(self.unit_dir), "--user", self.user, "--no-systemd", *extra,
        ]  # fmt: skip
        return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=900, check=False)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def kit_install() -> Iterator[Install]:
    """An ``Install`` under a new directory of /tmp that the service user can traverse (pytest's own temp root is
    0700 and re-locked by every pytest session that starts); the user and the directory are removed at the end."""
    require_root()
    root = Path(tempfile.mkdtemp(prefix="dockyard-kit-", dir="/tmp"))
    root.chmod(0o755)
    install = Install(root, f"dyk{secrets.token_hex(3)}")
    try:
        yield install
    finally:
        install.run("--uninstall", "--purge")
        if user_exists(install.user):  # never leave a user behind, even if --uninstall broke
            subprocess.run(["userdel", install.user], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed() -> Iterator[Install]:
    with kit_install() as install:
        result = install.run()
        assert result.returncode == 0, result.stderr + result.stdout
        yield install


def test_installed_server_answers_as_the_service_user(installed: Install) -> None:
    config = (installed.config_dir / "config.yml").read_text()
    assert str(installed.data_dir) in config
    port = free_port()
    server = subprocess.Popen(
        [
            "runuser", "-u", installed.user, "--", str(installed.prefix / "venv" / "bin" / "dockyard"), "serve",
            "--config", str(installed.config_dir / "config.yml"), "--listen", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(installed.root / "serve.log").open("wb"),
    )  # fmt: skip
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/", timeout=60, process=server)
        except RuntimeError:
            raise AssertionError((installed.root / "serve.log").read_text()) from None
        resp = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
        assert resp.status_code == 401  # the shipped config turns accounts on
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    finally:
        stop_process(server)
    owned = {p.owner() for p in installed.data_dir.rglob("*")}
    assert owned == {installed.user}, f"files in the data dir not owned by the service user: {owned}"


def test_units_pass_systemd_analyze(installed: Install) -> None:
    analyze = require_tool("systemd-analyze")
    for unit in UNITS:
        text = (installed.unit_dir / unit).read_text()
        assert "/opt/dockyard" not in text
        assert f"User={installed.user}" in text or unit.endswith(".timer")
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(installed.unit_dir / u) for u in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if "dockyard" in line]
    assert result.returncode == 0, result.stderr
    assert not problems, result.stderr
    service = (installed.unit_dir / "dockyard.service").read_text()
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"):
        assert hardening in service
    assert f"ReadWritePaths={installed.data_dir}" in service
    assert "Restart=on-failure" in service


def test_second_run_keeps_config_and_upgrades(installed: Install) -> None:
    config = installed.config_dir / "config.yml"
    config.write_text(config.read_text() + "# edited by the operator\n")
    result = installed.run()
    assert result.returncode == 0, result.stderr
    assert config.read_text().endswith("# edited by the operator\n")
    assert (installed.prefix / "venv" / "bin" / "dockyard").exists()


def test_bad_options_are_one_line() -> None:
    result = subprocess.run(["bash", str(INSTALL), "--prefix", "relative/path"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "absolute" in result.stderr or "root" in result.stderr
    result = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "unknown option" in result.stderr


def test_uninstall_keeps_data_unless_purged() -> None:
    with kit_install() as install:
        assert install.run().returncode == 0
        (install.data_dir / "keep.txt").write_text("images")
        removed = install.run("--uninstall")
        assert removed.returncode == 0, removed.stderr
        assert not install.prefix.exists()
        assert not user_exists(install.user)
        assert (install.data_dir / "keep.txt").exists()
        assert (install.config_dir / "config.yml").exists()
        for unit in UNITS:
            assert not (install.unit_dir / unit).exists()
        assert install.run("--uninstall", "--purge").returncode == 0
        assert not install.data_dir.exists()
        assert not install.config_dir.exists()

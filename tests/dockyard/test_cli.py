"""The ``dockyard`` command as a user runs it: a real process, real errors, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.s3 import S3Server
from tests.support.server import LiveRegistry, free_port, live_registry, run_dockyard


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_dockyard(*args, cwd=cwd, timeout=30)


def test_version_and_help() -> None:
    assert "dockyard" in run("--version").stdout
    assert "serve" in run("--help").stdout


def test_bad_config_is_one_readable_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("storage:\n  type: floppy\n")
    result = run("serve", "--config", str(config))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "storage" in result.stderr
    result = run("serve", "--listen", "nonsense")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "listen" in result.stderr


def test_port_in_use_is_one_line(registry_process: LiveRegistry) -> None:
    result = run("serve", "--listen", registry_process.host, "--data", str(registry_process.data))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot listen" in result.stderr


def test_serve_health_and_structured_log(registry_process: LiveRegistry) -> None:
    assert requests.get(f"{registry_process.url}/healthz", timeout=5).json() == {"status": "ok"}
    resp = requests.get(f"{registry_process.url}/v2/", headers={"X-Request-Id": "abc-123"}, timeout=5)
    assert resp.headers["X-Request-Id"] == "abc-123"
    deadline = time.monotonic() + 10  # the access log line is written just after the response is sent
    while '"request_id": "abc-123"' not in registry_process.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(x for x in registry_process.log.read_text().splitlines() if '"request_id": "abc-123"' in x)
    record = json.loads(line)
    assert (record["method"], record["path"], record["status"]) == ("GET", "/v2/", 200)
    assert record["duration_ms"] >= 0


def test_non_loopback_warning(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "serve", "--listen", f"0.0.0.0:{port}", "--data", str(tmp_path / "d")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "no authentication" in first
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["filesystem", "s3"])
def any_storage_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveRegistry]:
    """A live registry on the filesystem (blobs copied from their file) or on S3 (streamed)."""
    env = None
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        env = server.registry_env(server.new_bucket(), prefix="log")
    with live_registry(tmp_path, env=env) as registry:
        yield registry


def test_access_log_counts_body_bytes_once(any_storage_registry: LiveRegistry) -> None:
    data = b"q" * 300_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = any_storage_registry.url
    assert requests.post(f"{url}/v2/log/test/blobs/uploads/?digest={digest}", data=data, timeout=10).status_code == 201
    assert len(requests.get(f"{url}/v2/log/test/blobs/{digest}", timeout=10).content) == len(data)
    deadline = time.monotonic() + 10
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        lines = any_storage_registry.log.read_text().splitlines()
        records = [json.loads(x) for x in lines if x.startswith("{") and f"/blobs/{digest}" in x]
        if records:
            break
        time.sleep(0.05)
    assert records, "no access log line for the blob GET"
    logged = int(records[0]["bytes"])  # type: ignore[call-overload]
    assert len(data) <= logged < len(data) + 2048  # the body once, plus the headers


def test_gc_and_repo_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    result = run("gc", "--data", data, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("gc would delete 0 manifests, 0 blobs")
    result = run("gc", "--data", data, "--grace", "soon")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not a duration" in result.stderr
    result = run("repo", "rm", "library/nothing", "--data", data)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: repository library/nothing is not known"
    result = run("repo", "rm", "Bad..Name", "--data", data)
    assert result.returncode == 1
    assert "invalid repository name" in result.stderr
    assert "Traceback" not in result.stderr
    assert run("repo", "ls", "--data", data).stdout == ""


def test_repo_rm_then_gc_frees_everything(registry_process: LiveRegistry) -> None:
    url, data = registry_process.url, str(registry_process.data)
    blob = b"layer of a repository about to go"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert (
        requests.post(f"{url}/v2/doomed/app/blobs/uploads/?digest={digest}", data=blob, timeout=10).status_code == 201
    )
    assert run("repo", "rm", "doomed/app", "--data", data).returncode == 0
    assert requests.head(f"{url}/v2/doomed/app/blobs/{digest}", timeout=10).status_code == 404
    time.sleep(3)  # older than the grace period of 0 plus gc's clock slack
    result = run("gc", "--data", data, "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert "1 blobs (33 bytes)" in result.stdout
    stored = [p for p in Path(data).rglob("*") if p.is_file() and not p.name.startswith("accounts.db")]
    assert stored == []  # (the account database, with the metadata index, lives in the data directory)

"""The ``dockyard`` command as a user runs it: a real process, real errors, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.server import LiveRegistry, free_port


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, timeout=30, cwd=cwd
    )


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


def test_access_log_counts_sendfile_bytes(registry_process: LiveRegistry) -> None:
    data = b"q" * 300_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = registry_process.url
    assert requests.post(f"{url}/v2/log/test/blobs/uploads/?digest={digest}", data=data, timeout=10).status_code == 201
    assert len(requests.get(f"{url}/v2/log/test/blobs/{digest}", timeout=10).content) == len(data)
    deadline = time.monotonic() + 10
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        lines = registry_process.log.read_text().splitlines()
        records = [json.loads(x) for x in lines if x.startswith("{") and f"/blobs/{digest}" in x]
        if records:
            break
        time.sleep(0.05)
    assert records, "no access log line for the blob GET"
    assert int(records[0]["bytes"]) >= len(data)  # type: ignore[call-overload]

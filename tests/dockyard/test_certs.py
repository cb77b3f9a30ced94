"""``dockyard certs selfsigned``: a usable certificate and a private key no one else can read."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509

from dockyard.certs import certs
from registry.blobresponse import COPY_BUFFER
from tests.support.server import free_port, run_dockyard, stop_process


def test_selfsigned_writes_a_loadable_pair(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = CliRunner().invoke(
        certs, ["selfsigned", "--host", "registry.test", "--host", "127.0.0.1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(out / "cert.pem", out / "key.pem")
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["registry.test"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert "tls:" in result.output


def test_selfsigned_refuses_to_overwrite(tmp_path: Path) -> None:
    args = ["selfsigned", "--host", "registry.test", "--out", str(tmp_path)]
    assert CliRunner().invoke(certs, args).exit_code == 0
    before = (tmp_path / "key.pem").read_bytes()
    result = CliRunner().invoke(certs, args)
    assert result.exit_code == 1
    assert "exists (use --force" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "key.pem").read_bytes() == before
    assert CliRunner().invoke(certs, [*args, "--force"]).exit_code == 0
    assert (tmp_path / "key.pem").read_bytes() != before


def wait_https(url: str, ca: Path, process: subprocess.Popen[bytes], timeout: float = 30.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"dockyard serve exited with {process.returncode}")
        try:
            return requests.get(url, verify=ca, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _blob_round_trip(url: str, ca: Path) -> None:
    """A blob of several copy pieces (registry.blobresponse) comes back whole, and a range of it, over TLS."""
    data = os.urandom(2 * COPY_BUFFER + 12345)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pushed = requests.post(f"{url}/v2/tls/blob/blobs/uploads/?digest={digest}", data=data, verify=ca, timeout=30)
    assert pushed.status_code == 201
    assert requests.get(f"{url}/v2/tls/blob/blobs/{digest}", verify=ca, timeout=30).content == data
    span = {"Range": f"bytes={COPY_BUFFER - 2}-{COPY_BUFFER + 2}"}
    ranged = requests.get(f"{url}/v2/tls/blob/blobs/{digest}", headers=span, verify=ca, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == data[COPY_BUFFER - 2 : COPY_BUFFER + 3]


def test_serve_speaks_tls_with_the_generated_pair(tmp_path: Path) -> None:
    made = run_dockyard("certs", "selfsigned", "--host", "127.0.0.1", "--out", str(tmp_path / "tls"))
    assert made.returncode == 0, made.stderr
    port = free_port()
    env = {
        **os.environ,
        "DOCKYARD_TLS__CERT": str(tmp_path / "tls" / "cert.pem"),
        "DOCKYARD_TLS__KEY": str(tmp_path / "tls" / "key.pem"),
    }
    command = [
        sys.executable,
        "-m",
        "dockyard",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(tmp_path / "d"),
    ]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = tmp_path / "tls" / "cert.pem"
        resp = wait_https(f"https://127.0.0.1:{port}/v2/", ca, process)
        assert resp.status_code == 200
        _blob_round_trip(f"https://127.0.0.1:{port}", ca)
        with pytest.raises(requests.exceptions.SSLError):  # not trusted without the certificate
            requests.get(f"https://127.0.0.1:{port}/v2/", timeout=5)
    finally:
        stop_process(process)
    assert "listening on https://" in (tmp_path / "serve.log").read_text()


def test_serve_with_a_missing_key_is_one_line(tmp_path: Path) -> None:
    env = {"DOCKYARD_TLS__CERT": str(tmp_path / "cert.pem"), "DOCKYARD_TLS__KEY": str(tmp_path / "key.pem")}
    result = run_dockyard("serve", "--listen", f"127.0.0.1:{free_port()}", "--data", str(tmp_path / "d"), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"dockyard: tls: no such file: {tmp_path / 'cert.pem'}"
    assert "Traceback" not in result.stderr

"""A live server's memory stays flat while it receives and sends a large blob (bytes never pile up in Python)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import requests

from tests.support.server import LiveRegistry

SIZE = 1 << 30  # 1 GiB
BLOCK = os.urandom(1 << 20)
LIMIT = 24 << 20  # peak RSS may grow by less than this


def vm(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory field, in bytes."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def body() -> Iterator[bytes]:
    for _ in range(SIZE // len(BLOCK)):
        yield BLOCK


def test_one_gib_upload_and_download_keep_rss_flat(registry_process: LiveRegistry) -> None:
    pid = registry_process.process.pid
    url = registry_process.url
    requests.get(f"{url}/v2/", timeout=5)
    digest = hashlib.sha256()
    for chunk in body():
        digest.update(chunk)
    ref = f"sha256:{digest.hexdigest()}"
    baseline = vm(pid, "VmRSS")

    start = requests.post(f"{url}/v2/big/blob/blobs/uploads/", timeout=10)
    location = start.headers["Location"]
    patch = requests.patch(f"{url}{location}", data=body(), timeout=300)
    assert patch.status_code == 202, patch.text
    done = requests.put(f"{url}{patch.headers['Location']}?digest={ref}", timeout=60)
    assert done.status_code == 201, done.text
    after_upload = vm(pid, "VmHWM")

    received = 0
    check = hashlib.sha256()
    with requests.get(f"{url}/v2/big/blob/blobs/{ref}", stream=True, timeout=300) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_content(1 << 20):
            received += len(chunk)
            check.update(chunk)
    assert received == SIZE
    assert check.hexdigest() == digest.hexdigest()
    peak = vm(pid, "VmHWM")
    assert after_upload - baseline < LIMIT, f"upload grew peak RSS by {(after_upload - baseline) >> 20} MiB"
    assert peak - baseline < LIMIT, f"download grew peak RSS by {(peak - baseline) >> 20} MiB"

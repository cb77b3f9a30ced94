"""``dockyard gc`` as users run it: a separate process, and ``gc.interval`` inside ``dockyard serve``, both
collecting while clients keep pushing; afterwards every image that was pushed pulls back whole."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.oci import OCI_MANIFEST, descriptor
from tests.support.s3 import S3Server
from tests.support.server import LiveRegistry, live_registry, run_dockyard

TIMEOUT = 30


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(registry: LiveRegistry, name: str, data: bytes) -> None:
    """Push a blob the way docker does: HEAD, else cross-mount from lib/old, else a monolithic upload."""
    blob = sha256(data)
    base = f"{registry.url}/v2/{name}/blobs"
    if requests.head(f"{base}/{blob}", timeout=TIMEOUT).status_code == 200:
        return
    resp = requests.post(f"{base}/uploads/?mount={blob}&from=lib/old", timeout=TIMEOUT)
    if resp.status_code == 201:
        return
    assert resp.status_code == 202, resp.text
    location = requests.compat.urljoin(registry.url, resp.headers["Location"])
    resp = requests.put(f"{location}{'&' if '?' in location else '?'}digest={blob}", data=data, timeout=TIMEOUT)
    assert resp.status_code == 201, resp.text


def push_image(registry: LiveRegistry, name: str, tag: str, layers: list[bytes]) -> bool:
    """Push an image; False when the registry refused the manifest because a blob vanished meanwhile."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": f"{name}:{tag}"}).encode()
    for blob in [config, *layers]:
        upload(registry, name, blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
    }
    resp = requests.put(
        f"{registry.url}/v2/{name}/manifests/{tag}",
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": OCI_MANIFEST},
        timeout=TIMEOUT,
    )
    if resp.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in resp.text:
        return False
    assert resp.status_code == 201, resp.text
    return True


def pull_whole(registry: LiveRegistry, name: str, tag: str) -> None:
    resp = requests.get(f"{registry.url}/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=TIMEOUT)
    assert resp.status_code == 200, f"{name}:{tag}: {resp.text}"
    manifest = resp.json()
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = requests.get(f"{registry.url}/v2/{name}/blobs/{desc['digest']}", timeout=TIMEOUT)
        assert blob.status_code == 200, f"{name}:{tag} lost {desc['digest']}"
        assert sha256(blob.content) == desc["digest"]


@dataclass
class Pushers:
    """Threads pushing images until stopped; each reuses old garbage blobs and adds a new layer."""

    registry: LiveRegistry
    garbage: list[bytes]
    stop: threading.Event = field(default_factory=threading.Event)
    landed: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def run(self, worker: int) -> None:
        try:
            rounds = 0
            while not self.stop.is_set():
                reused = self.garbage[(worker * 7 + rounds) % 8]  # only the first 8 are ever reused
                layers = [reused, random.randbytes(32 << 10)]
                name, tag = f"lib/busy{worker}", f"r{rounds}"
                if push_image(self.registry, name, tag, layers):
                    self.landed.append((name, tag))
                else:
                    self.refused += 1
                rounds += 1
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    @classmethod
    def started(
        cls, registry: LiveRegistry, garbage: list[bytes], workers: int
    ) -> tuple[Pushers, list[threading.Thread]]:
        pushers = cls(registry, garbage)
        threads = [threading.Thread(target=pushers.run, args=(w,), daemon=True) for w in range(workers)]
        for thread in threads:
            thread.start()
        return pushers, threads


@dataclass
class Online:
    """A live registry that collects every second itself, and how a separate ``dockyard gc`` reaches its storage."""

    registry: LiveRegistry
    storage_env: dict[str, str]
    storage_flags: list[str]

    def gc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_dockyard("gc", *self.storage_flags, *args, env=self.storage_env, timeout=120)


@pytest.fixture(params=["filesystem", "s3"])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Online]:
    storage: dict[str, str] = {}
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        storage = server.registry_env(server.new_bucket(), prefix="online")
    # the server's own collector runs every 2 s; with a grace longer than the test it leaves the old
    # garbage to the `dockyard gc --grace 2s` runs, so pushes reuse it while those sweep it
    env = {"DOCKYARD_GC__INTERVAL": "2", "DOCKYARD_GC__GRACE": "5m", "DOCKYARD_GC__DELETE_UNTAGGED": "true", **storage}
    with live_registry(tmp_path, env=env) as registry:
        yield Online(registry, storage, [] if storage else ["--data", str(registry.data)])


def test_gc_online_under_concurrent_pushes(online: Online) -> None:
    registry = online.registry
    garbage = [f"old layer {i} ".encode() * 100 for i in range(12)]
    for blob in garbage:
        upload(registry, "lib/old", blob)
    time.sleep(4)  # the garbage ages past the grace period
    pushers, threads = Pushers.started(registry, garbage, workers=3)
    try:
        runs = [online.gc("--grace", "2s", "--delete-untagged") for _ in range(3)]
    finally:
        time.sleep(2)
        pushers.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not pushers.errors, pushers.errors
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "blobs" in result.stdout
    assert len(pushers.landed) >= 10, (len(pushers.landed), pushers.refused)
    for name, tag in pushers.landed:
        pull_whole(registry, name, tag)
    time.sleep(4)  # the in-server collector has run since, too
    for never_reused in garbage[8:]:
        resp = requests.head(f"{registry.url}/v2/lib/old/blobs/{sha256(never_reused)}", timeout=TIMEOUT)
        assert resp.status_code == 404

"""Path traversal wherever a name reaches storage or the filesystem.

Registry: a live ``dockyard serve`` on the filesystem driver gets repository names, tags, digests and upload ids
made of ``..``, ``%2e%2e``, ``%2F``, backslashes, NUL and absolute paths, sent verbatim over a raw socket
(``http.client.putrequest``: no client-side normalisation). Every answer must be a 4xx with
the spec's JSON error (or a 404/405 of the router), never a 2xx or 5xx; no response carries the canary's bytes; the
canary directory next to the data dir and the data dir's own file list are unchanged.

Runtime: container names, volume names, ``-v`` sources and image references with the same tricks through the CLI
with ``--root`` under tmp: each refused (non-zero exit, one line), nothing created outside the root.
"""

from __future__ import annotations

import http.client
import os
import subprocess
from pathlib import Path

import requests

from tests.reliability.attack_layers import canary, push_layer, snapshot
from tests.reliability.tally import Tally
from tests.runtime.tarfactory import TarBuilder
from tests.support.oci import digest
from tests.support.server import LiveRegistry, live_registry, run_dockyard
from tests.support.tools import require_root

SECTION = "Hostile input"
SECRET = b"host secret"  # what attack_layers.canary writes into canary/sub/secret
DIGEST = digest(b"x")
TRAVERSALS = (
    "..",
    "../..",
    "%2e%2e",
    "%2E%2E/%2e%2e",
    "..%2F..%2Fcanary",
    "%2F..%2F..%2Fcanary",
    "..\\..\\canary",
    "%5c..%5c..%5ccanary",
    "a%00b",
    "/tmp/canary",
    "%2Ftmp%2Fcanary",
    "canary/sub/secret/..",
    "....//....//canary",
    "lib/../../../canary",
    ".%2e/.%2e/canary",
)


def registry_paths(repo: str, upload: str) -> list[tuple[str, str]]:
    """(method, path) pairs with each traversal in the name, the tag, the digest and the upload id."""
    paths: list[tuple[str, str]] = []
    for bad in TRAVERSALS:
        paths += [
            ("GET", f"/v2/{bad}/tags/list"),
            ("GET", f"/v2/{bad}/manifests/latest"),
            ("PUT", f"/v2/{bad}/manifests/latest"),
            ("POST", f"/v2/{bad}/blobs/uploads/"),
            ("GET", f"/v2/{bad}/blobs/{DIGEST}"),
            ("GET", f"/v2/{repo}/manifests/{bad}"),
            ("PUT", f"/v2/{repo}/manifests/{bad}"),
            ("DELETE", f"/v2/{repo}/manifests/{bad}"),
            ("GET", f"/v2/{repo}/blobs/sha256:{bad}"),
            ("GET", f"/v2/{repo}/blobs/{bad}"),
            ("DELETE", f"/v2/{repo}/blobs/sha256:{bad}"),
            ("GET", f"/v2/{repo}/blobs/uploads/{bad}"),
            ("PATCH", f"/v2/{repo}/blobs/uploads/{bad}"),
            ("PUT", f"/v2/{repo}/blobs/uploads/{bad}?digest={DIGEST}"),
            ("DELETE", f"/v2/{repo}/blobs/uploads/{bad}"),
            ("PUT", f"/v2/{repo}/blobs/uploads/{upload}?digest=sha256:{bad}"),
            ("POST", f"/v2/{repo}/blobs/uploads/?mount=sha256:{bad}&from={bad}"),
            ("GET", f"/v2/{repo}/referrers/sha256:{bad}"),
        ]
    return paths


def raw_request(registry: LiveRegistry, method: str, path: str) -> tuple[int, bytes]:
    """Send ``path`` byte for byte (no normalisation by the client); the status and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Content-Length", "1" if method in ("PUT", "PATCH") else "0")
        connection.endheaders(b"x" if method in ("PUT", "PATCH") else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def files_under(top: Path) -> set[str]:
    return {str(Path(d, f).relative_to(top)) for d, _, fs in os.walk(top) for f in fs}


def test_registry_names_tags_digests_and_upload_ids(tmp_path: Path, tally: Tally) -> None:
    host = canary(tmp_path / "canary")
    before = snapshot(host)
    with live_registry(tmp_path) as registry:
        opened = requests.post(f"{registry.url}/v2/lib/app/blobs/uploads/", timeout=30)
        assert opened.status_code == 202
        upload = opened.headers["Docker-Upload-UUID"]
        data_before = files_under(registry.data)
        statuses: list[int] = []
        leaked = 0
        for method, path in registry_paths("lib/app", upload):
            status, body = raw_request(registry, method, path)
            statuses.append(status)
            leaked += SECRET in body
        data_after = files_under(registry.data)
    accepted = sum(200 <= s < 300 for s in statuses)
    server_errors = sum(s >= 500 for s in statuses)
    tally.record(
        SECTION,
        "path traversal in /v2 names, tags, digests, upload ids (raw HTTP, filesystem driver)",
        tried=len(statuses),
        accepted=accepted,
        server_errors=server_errors,
        escaped=int(snapshot(host) != before) + leaked + len(data_after - data_before),
    )
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    assert leaked == 0
    assert data_after == data_before
    assert snapshot(host) == before


RUNTIME_NAMES = ("..", "../../canary", "a/../../canary", "/tmp/canary", "a\\..\\..", "x\x00y", ".", "a/b")


def unmount_under(top: Path) -> int:
    """Unmount whatever is mounted under ``top`` (deepest first); how many there were."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    found = sorted((m for m in mounts if m.startswith(f"{top}/")), key=len, reverse=True)
    for mount in found:
        subprocess.run(["umount", mount], check=True)
    return len(found)


def runtime_commands(image: str, bad: str) -> list[list[str]]:
    """Commands with ``bad`` where a name goes; ``image`` is a pulled local image (so names are what is judged).
    An absolute ``-v`` source is no name but a host bind, a feature (docker creates a missing source directory):
    it is left out, so the test never touches the host outside its temp dir."""
    bind = [] if bad.startswith("/") else [["run", "-v", f"{bad}:/data", "--network", "none", image, "/bin/true"]]
    return [
        ["volume", "create", bad],
        ["volume", "rm", bad],
        ["volume", "inspect", bad],
        ["run", "--name", bad, "--network", "none", image, "/bin/true"],
        *bind,
        ["rm", bad],
        ["logs", bad],
        ["inspect", bad],
        ["rmi", bad],
        ["tag", bad, "ok:v1"],
        ["pull", f"127.0.0.1:1/{bad}:v1"],
        ["pull", f"127.0.0.1:1/lib/app:{bad}"],
    ]


def test_runtime_names_through_the_cli(tmp_path: Path, tally: Tally) -> None:
    require_root()
    host = canary(tmp_path / "canary")
    before = snapshot(host)
    root = tmp_path / "runtime"
    tried = accepted = multi_line = 0
    (tmp_path / "server").mkdir()
    with live_registry(tmp_path / "server") as registry:
        image = push_layer(registry.url, "lib/app", "v1", TarBuilder().file("hello", b"hi").build())
        assert run_dockyard("--root", str(root), "pull", image).returncode == 0
        for bad in RUNTIME_NAMES:
            if "\x00" in bad:
                continue  # an argv cannot carry NUL: the kernel cuts it there
            for command in runtime_commands(image, bad):
                result = run_dockyard("--root", str(root), *command, timeout=60)
                tried += 1
                accepted += result.returncode == 0
                multi_line += len(result.stderr.strip().splitlines()) != 1
                assert result.returncode != 0, (command, result.stdout)
                assert len(result.stderr.strip().splitlines()) == 1, (command, result.stderr)
    leaked_mounts = unmount_under(tmp_path)  # counted, then cleaned: a container that is not running holds no mount
    outside = sorted(set(os.listdir(tmp_path)) - {"canary", "runtime", "server"})
    tally.record(
        SECTION,
        "path traversal in container/volume names, `-v` sources, image references (CLI, --root under tmp)",
        tried=tried,
        accepted=accepted,
        escaped=int(snapshot(host) != before) + len(outside),
        unclear_errors=multi_line,
        leaked_mounts=leaked_mounts,
    )
    assert leaked_mounts == 0
    assert outside == []
    assert snapshot(host) == before

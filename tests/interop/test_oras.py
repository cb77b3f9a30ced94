"""oras-py against a live dockyard: artifacts, the referrers API (``subject``), chunked uploads."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest
import requests

from tests.support.accesslog import failures, matching, records
from tests.support.api import describe, get_manifest, sha256_of
from tests.support.images import OCI_INDEX, OCI_MANIFEST, canonical_json
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop

SBOM_CONFIG = "application/vnd.example.sbom.config.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


@pytest.fixture
def oras_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty docker config file for oras (passed as ``config_path``), with HOME pointed into the test dir."""
    home = tmp_path / "oras-home"
    (home / ".docker").mkdir(parents=True)
    config = home / "docker-config.json"
    config.write_text(json.dumps({"auths": {}}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    yield str(config)
    assert not (home / ".docker" / "config.json").exists(), "oras wrote a docker config although given config_path"


def client_for(registry: LiveRegistry) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=registry.host, insecure=True)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def manifest_descriptor(registry: LiveRegistry, name: str, reference: str) -> dict[str, Any]:
    """The descriptor of a stored manifest, from a HEAD (digest, size and media type as the registry says)."""
    head = get_manifest(registry, name, reference, method="HEAD")
    assert head.status_code == 200, describe(head, registry)
    return {
        "mediaType": head.headers["Content-Type"].split(";")[0],
        "digest": head.headers["Docker-Content-Digest"],
        "size": int(head.headers["Content-Length"]),
    }


def upload_blob(registry: LiveRegistry, name: str, data: bytes) -> str:
    """A monolithic upload (POST, then PUT ?digest= with the bytes); returns the digest."""
    digest = sha256_of(data)
    start = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", timeout=30)
    assert start.status_code == 202, describe(start, registry)
    location = requests.compat.urljoin(registry.url, start.headers["Location"])
    finish = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert finish.status_code == 201, describe(finish, registry)
    assert finish.headers["Docker-Content-Digest"] == digest
    return digest


def test_push_and_pull_an_artifact(registry_process: LiveRegistry, oras_config: str, tmp_path: Path) -> None:
    """An oras artifact (one file, a custom config type) comes back byte for byte."""
    client = client_for(registry_process)
    payload = write(tmp_path / "notes.txt", f"artifact of {tmp_path.name}\n".encode() * 50)
    config = write(tmp_path / "config.json", b'{"kind":"notes"}')
    target = f"{registry_process.host}/ns/artifact:v1"

    response = client.push(
        target,
        config_path=oras_config,
        files=[str(payload)],
        manifest_config=f"{config}:{SBOM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )

    assert response.status_code == 201, describe(response, registry_process)
    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == SBOM_CONFIG
    assert manifest["layers"][0]["digest"] == sha256_of(payload.read_bytes())
    out = tmp_path / "pulled"
    files = client.pull(target, config_path=oras_config, outdir=str(out))
    assert [Path(f).name for f in files] == ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == payload.read_bytes()
    assert failures(registry_process) == []


def test_referrers_list_artifacts_with_a_subject(
    registry_process: LiveRegistry, oras_config: str, tmp_path: Path
) -> None:
    """Two artifacts refer to a first one (oras ``subject`` and a hand-made manifest with ``artifactType``);
    GET /v2/<name>/referrers/<digest> lists both, with their artifactType and annotations, and filters."""
    client = client_for(registry_process)
    name = "ns/referred"
    subject_file = write(tmp_path / "subject.txt", f"subject {tmp_path.name}\n".encode())
    client.push(
        f"{registry_process.host}/{name}:v1",
        config_path=oras_config,
        files=[str(subject_file)],
        disable_path_validation=True,
        quiet=True,
    )
    subject = manifest_descriptor(registry_process, name, "v1")

    empty = requests.get(f"{registry_process.url}/v2/{name}/referrers/{subject['digest']}", timeout=30)
    assert empty.status_code == 200, describe(empty, registry_process)
    assert empty.json()["manifests"] == []

    sbom_file = write(tmp_path / "sbom.json", b'{"packages": ["busybox"]}')
    sbom_config = write(tmp_path / "sbom-config.json", b'{"format":"example"}')
    sbom_annotations = {"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    sbom_push = client.push(
        f"{registry_process.host}/{name}:sbom",
        config_path=oras_config,
        files=[str(sbom_file)],
        manifest_config=f"{sbom_config}:{SBOM_CONFIG}",
        manifest_annotations=sbom_annotations,
        subject=oras.oci.Subject(subject["mediaType"], subject["digest"], subject["size"]),
        disable_path_validation=True,
        quiet=True,
    )
    assert sbom_push.status_code == 201, describe(sbom_push, registry_process)
    assert sbom_push.headers.get("OCI-Subject") == subject["digest"], describe(sbom_push, registry_process)
    sbom = manifest_descriptor(registry_process, name, "sbom")
    assert sbom_push.headers["Docker-Content-Digest"] == sbom["digest"]

    signature = b"signature of " + subject["digest"].encode()
    signature_blob = upload_blob(registry_process, name, signature)
    upload_blob(registry_process, name, EMPTY_JSON)
    signature_annotations = {"org.example.signer": "interop-suite"}
    signature_body = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_TYPE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": sha256_of(EMPTY_JSON), "size": len(EMPTY_JSON)},
            "layers": [{"mediaType": "application/octet-stream", "digest": signature_blob, "size": len(signature)}],
            "subject": subject,
            "annotations": signature_annotations,
        }
    )
    signature_digest = sha256_of(signature_body)
    put = requests.put(
        f"{registry_process.url}/v2/{name}/manifests/{signature_digest}",
        data=signature_body,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert put.status_code == 201, describe(put, registry_process)
    assert put.headers.get("OCI-Subject") == subject["digest"], describe(put, registry_process)

    listing = requests.get(f"{registry_process.url}/v2/{name}/referrers/{subject['digest']}", timeout=30)

    assert listing.status_code == 200, describe(listing, registry_process)
    assert listing.headers["Content-Type"].split(";")[0] == OCI_INDEX
    index = listing.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in index["manifests"]}
    assert set(by_digest) == {sbom["digest"], signature_digest}
    assert by_digest[sbom["digest"]] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom["digest"],
        "size": sbom["size"],
        "artifactType": SBOM_CONFIG,  # no artifactType field: the config's media type stands in
        "annotations": sbom_annotations,
    }
    assert by_digest[signature_digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": signature_digest,
        "size": len(signature_body),
        "artifactType": SIGNATURE_TYPE,
        "annotations": signature_annotations,
    }

    filtered = requests.get(
        f"{registry_process.url}/v2/{name}/referrers/{subject['digest']}",
        params={"artifactType": SIGNATURE_TYPE},
        timeout=30,
    )
    assert filtered.status_code == 200, describe(filtered, registry_process)
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [signature_digest]
    assert "artifactType" in filtered.headers.get("OCI-Filters-Applied", "")
    assert failures(registry_process) == []


def test_chunked_push(registry_process: LiveRegistry, oras_config: str, tmp_path: Path) -> None:
    """oras's chunked upload (POST, PATCH with Content-Range per chunk, PUT) of a 1.5 MiB file round-trips."""
    client = client_for(registry_process)
    data = random.Random(tmp_path.name).randbytes(1536 * 1024 + 123)
    payload = write(tmp_path / "big.bin", data)
    target = f"{registry_process.host}/ns/chunked:v1"
    before = len(records(registry_process))

    response = client.push(
        target,
        config_path=oras_config,
        files=[str(payload)],
        do_chunked=True,
        chunk_size=256 * 1024,
        disable_path_validation=True,
        quiet=True,
    )

    assert response.status_code == 201, describe(response, registry_process)
    patches = matching(registry_process, "PATCH", r"/v2/ns/chunked/blobs/uploads/.+", since=before)
    assert len(patches) >= 7, f"expected one PATCH per 256 KiB chunk, got {[str(p) for p in patches]}"
    assert all(p.status == 202 for p in patches)
    out = tmp_path / "pulled"
    client.pull(target, config_path=oras_config, outdir=str(out))
    assert (out / "big.bin").read_bytes() == data
    assert failures(registry_process) == []

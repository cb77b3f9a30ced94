"""buildah against a live dockyard: ``from`` a pushed image, add a layer, ``commit`` and ``push`` it back."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.support.accesslog import failures
from tests.support.api import describe, get_blob, sha256_of
from tests.support.clients import Buildah, Skopeo
from tests.support.images import ImageFactory
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop


def test_from_commit_push(
    skopeo: Skopeo, buildah: Buildah, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """A buildah-made image on top of a pushed one: base layers kept, new layer and label readable."""
    base = image_factory.image("buildah-base")
    base_ref = f"{registry_process.host}/ns/buildah-base:v1"
    skopeo.copy(base.oci_ref, f"docker://{base_ref}")
    added = tmp_path / "added.txt"
    added.write_bytes(b"added by buildah in " + tmp_path.name.encode() + b"\n")

    container = buildah.run("from", "--quiet", "--tls-verify=false", base_ref).stdout.strip()
    try:
        buildah.run("copy", container, str(added), "/added.txt")
        buildah.run("config", "--label", "org.example.built-by=buildah", "--env", "BUILT=yes", container)
        buildah.run("commit", "--quiet", container, "localhost/built:v1")
    finally:
        buildah.run("rm", container)
    digestfile = tmp_path / "digest"
    target = f"docker://{registry_process.host}/ns/built:v1"
    buildah.run("push", "--tls-verify=false", "--digestfile", str(digestfile), "localhost/built:v1", target)

    info = skopeo.inspect(target)
    raw = skopeo.inspect_raw(target)
    config = json.loads(skopeo.inspect_raw(target, "--config"))
    assert info["Digest"] == digestfile.read_text().strip() == sha256_of(raw)
    assert info["Labels"]["org.example.built-by"] == "buildah"
    assert "BUILT=yes" in info["Env"]
    assert len(info["Layers"]) == len(base.layers) + 1
    assert config["rootfs"]["diff_ids"][: len(base.layers)] == [layer.diff_id for layer in base.layers]

    new_layer = json.loads(raw)["layers"][-1]
    blob = get_blob(registry_process, "ns/built", new_layer["digest"])
    assert blob.status_code == 200, describe(blob, registry_process)
    assert sha256_of(blob.content) == new_layer["digest"]
    unpacked = gzip.decompress(blob.content) if blob.content[:2] == b"\x1f\x8b" else blob.content
    assert sha256_of(unpacked) == config["rootfs"]["diff_ids"][-1]
    with tarfile.open(fileobj=io.BytesIO(unpacked)) as tar:
        member = tar.extractfile("added.txt")
        assert member is not None
        assert member.read() == added.read_bytes()
    assert failures(registry_process) == []

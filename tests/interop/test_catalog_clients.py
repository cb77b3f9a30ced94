"""Issue 6's "done when", from the clients' side: images pushed by docker (its own schema 2 manifest) and skopeo
(OCI) appear in the catalog of a live ``dockyard serve`` — search, tag details with layers and history, the file
browser and the repository page — with the digests the clients reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.support.clients import Docker, Skopeo
from tests.support.images import ImageFactory, write_docker_archive
from tests.support.server import LiveRegistry

API = "/api/v1/catalog"


def get_json(registry: LiveRegistry, endpoint: str, **params: str) -> Any:
    resp = requests.get(registry.url + endpoint, params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def check_catalog_shows(registry: LiveRegistry, name: str, digest: str, layers: int) -> None:
    found = get_json(registry, f"{API}/search", q=name.rsplit("/", 1)[-1])
    assert name in [item["name"] for item in found["items"]]
    detail = get_json(registry, f"{API}/repositories/{name}/-/tags/v1")
    assert detail["tag"]["digest"] == digest
    (platform,) = detail["platforms"]
    assert platform["platform"]["os"] == "linux"
    assert platform["platform"]["architecture"] == "amd64"
    assert len(platform["layers"]) == layers
    assert all(layer["size"] > 0 for layer in platform["layers"])
    listing = get_json(registry, f"{API}/repositories/{name}/-/tags/v1/files", path="/bin")
    assert "busybox" in {entry["name"] for entry in listing["entries"]}
    page = requests.get(f"{registry.url}/r/{name}", timeout=10)
    assert page.status_code == 200
    assert f"docker pull {registry.host}/{name}:v1" in page.text


def test_docker_push_appears_in_the_catalog(
    docker: Docker, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    image = image_factory.image("catalog-docker")
    local, remote = "dockyard-test/catalog-docker:v1", f"{registry_process.host}/team/docker-webapp:v1"
    docker.run("load", "--input", str(write_docker_archive(image, tmp_path / "img.tar", [local])))
    docker.run("tag", local, remote)
    digest = docker.push(remote)
    check_catalog_shows(registry_process, "team/docker-webapp", digest, len(image.layers))


def test_skopeo_push_appears_in_the_catalog(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    image = image_factory.image("catalog-skopeo")
    skopeo.copy(image.oci_ref, f"docker://{registry_process.host}/team/skopeo-webapp:v1")
    check_catalog_shows(registry_process, "team/skopeo-webapp", image.digest, len(image.layers))

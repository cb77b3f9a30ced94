"""Per-registry TLS folders (docker's and podman's ``certs.d``): the lookup, and the registry client presenting the
client certificate of a registry's folder to a live TLS server that requires one."""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dockyard.certs import self_signed
from runtime.certsd import trust_for
from runtime.distribution import RegistryClient
from runtime.manifests import OCI_MANIFEST, DistributionError, RegistryUnreachableError
from runtime.references import parse

HOST = "registry.example:5000"


def folder(base: Path, host: str = HOST, **files: str) -> Path:
    """``base/host`` holding ``files`` (name → text; ``_`` stands for ``.`` in the names)."""
    where = base / host
    where.mkdir(parents=True)
    for name, text in files.items():
        (where / name.replace("_", ".")).write_text(text)
    return where


def test_no_folder_means_the_system_trust_store(tmp_path: Path) -> None:
    trust = trust_for(HOST, True, [tmp_path / "docker", tmp_path / "containers"])
    assert (trust.verify, trust.ca_files, trust.client_cert) == (True, (), None)


def test_the_first_folder_that_exists_wins(tmp_path: Path) -> None:
    folder(tmp_path / "containers", ca_crt="podman's")
    docker = folder(tmp_path / "docker", b_crt="b", a_crt="a", client_cert="c", client_key="k")
    trust = trust_for(HOST, True, [tmp_path / "docker", tmp_path / "containers"])
    assert trust.ca_files == (docker / "a.crt", docker / "b.crt")
    assert trust.client_cert == (docker / "client.cert", docker / "client.key")
    podman_only = trust_for(HOST, True, [tmp_path / "nowhere", tmp_path / "containers"])
    assert podman_only.ca_files == (tmp_path / "containers" / HOST / "ca.crt",)


def test_an_insecure_registry_keeps_its_client_certificate_but_no_ca(tmp_path: Path) -> None:
    docker = folder(tmp_path, ca_crt="a", client_cert="c", client_key="k")
    trust = trust_for(HOST, False, [tmp_path])
    assert (trust.verify, trust.ca_files, trust.client_cert) == (
        False,
        (),
        (docker / "client.cert", docker / "client.key"),
    )


@pytest.mark.parametrize(
    ("files", "message"), [({"client_cert": "c"}, "has no key"), ({"x_key": "k"}, "no certificate")]
)
def test_half_a_client_pair_is_a_one_line_error(tmp_path: Path, files: dict[str, str], message: str) -> None:
    folder(tmp_path, **files)
    with pytest.raises(DistributionError, match=message) as refused:
        trust_for(HOST, True, [tmp_path])
    assert "\n" not in str(refused.value)


EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": f"sha256:{'44136fa3' + '5' * 56}", "size": 2}
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY, "layers": []}).encode()


def registry_app() -> web.Application:
    """The two routes a manifest fetch needs: the ``/v2/`` probe (open) and one manifest."""

    async def probe(_request: web.Request) -> web.Response:
        return web.json_response({})

    async def manifest(_request: web.Request) -> web.Response:
        return web.Response(body=MANIFEST, content_type=OCI_MANIFEST)

    app = web.Application()
    app.router.add_get("/v2/", probe)
    app.router.add_get("/v2/ns/app/manifests/1", manifest)
    return app


async def test_the_client_certificate_of_the_registry_folder_is_presented(
    tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    cert, key = self_signed(["127.0.0.1"], days=1)
    client_cert, client_key = self_signed(["dockyard-client"], days=1, client=True)
    (tmp_path / "server.pem").write_bytes(cert)
    (tmp_path / "server.key").write_bytes(key)
    (tmp_path / "client-ca.pem").write_bytes(client_cert)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.load_verify_locations(cafile=tmp_path / "client-ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # a registry that admits only holders of that client certificate
    server = await aiohttp_server(registry_app(), ssl=context)
    ref = parse(f"127.0.0.1:{server.port}/ns/app:1")

    async with RegistryClient(credentials=lambda _host: None, certs_dirs=[tmp_path / "certs.d"]) as client:
        with pytest.raises(RegistryUnreachableError, match="cannot reach registry"):
            await client.get_manifest(ref)

    where = tmp_path / "certs.d" / ref.api_host
    where.mkdir(parents=True)
    (where / "client.cert").write_bytes(client_cert)
    (where / "client.key").write_bytes(client_key)
    async with RegistryClient(credentials=lambda _host: None, certs_dirs=[tmp_path / "certs.d"]) as client:
        manifest = await client.get_manifest(ref)
    assert manifest.body == MANIFEST

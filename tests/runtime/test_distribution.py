"""The registry client against real registries: a live dockyard (open and token mode) and a live CNCF Distribution
(Debian's ``docker-registry``, open and with htpasswd Basic auth). Images are built from busybox-static and pushed
with skopeo; the client's own requests are recorded through its ``on_response`` hook."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runtime.credentials import Credentials, CredentialStore
from runtime.distribution import Challenge, RegistryClient, parse_challenges, partial_path, pull_scopes
from runtime.manifests import (
    OCI_MANIFEST,
    AuthenticationError,
    BlobVerificationError,
    InvalidPlatformError,
    ManifestError,
    NotFoundError,
    Platform,
)
from runtime.references import parse
from tests.support.clients import Skopeo
from tests.support.images import ImageFactory
from tests.support.registries import ALICE, Registry, distribution_registry, htpasswd_file, push_image, token_dockyard
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop

# -- recording the client's requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]


@dataclass
class Recorder:
    """Every request the client sends, in order, with its response status; ``events`` gets "start METHOD PATH" as
    each answer's headers come in (before its body is read)."""

    exchanges: list[Exchange] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def record(
        self, method: str, url: str, status: int, request: Mapping[str, str], response: Mapping[str, str]
    ) -> None:
        path = urlsplit(url).path
        self.events.append(f"start {method} {path}")
        self.exchanges.append(Exchange(method, path, status, dict(request), dict(response)))

    def blob_gets(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "GET" and "/blobs/" in e.path]

    def client(self, **options: Any) -> RegistryClient:
        return RegistryClient(
            on_response=self.record, credentials=options.pop("credentials", no_credentials), **options
        )


def no_credentials(_host: str) -> Credentials | None:
    return None


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- manifests -----------------------------------------------------------------------------------------


async def test_resolve_a_single_platform_image(registry: Registry, factory: ImageFactory, skopeo: Skopeo) -> None:
    image = factory.image("single")
    ref = push_image(skopeo, image, registry.host, "ns/single:1.0")
    async with Recorder().client() as client:
        manifest = await client.resolve(ref)
    assert manifest.digest == image.digest
    assert manifest.body == image.manifest
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.index_digest is None
    assert [b.digest for b in manifest.blobs()] == image.blob_digests


async def test_resolve_an_index_picks_the_platform(registry: Registry, factory: ImageFactory, skopeo: Skopeo) -> None:
    multi = factory.multi_arch("multi")
    ref = push_image(skopeo, multi, registry.host, "ns/multi:1.0", "--all")
    amd64, arm64 = multi.children
    recorder = Recorder()
    async with recorder.client() as client:
        chosen = await client.resolve(ref, Platform.parse("linux/arm64"))
        assert chosen.digest == arm64.digest
        assert chosen.index_digest == multi.digest
        assert chosen.config.digest == arm64.config_digest
        assert (await client.resolve(ref, Platform.parse("linux/arm64/v8"))).digest == arm64.digest
        assert (await client.resolve(ref, Platform("linux", "amd64"))).digest == amd64.digest
        default = await client.resolve(ref)
        host = Platform.host()
        assert default.digest == {"amd64": amd64.digest, "arm64": arm64.digest}[host.architecture]
        with pytest.raises(ManifestError) as caught:
            await client.resolve(ref, Platform.parse("linux/s390x"))
    assert "no manifest for platform linux/s390x" in str(caught.value)
    assert "available: linux/amd64, linux/arm64/v8" in str(caught.value)
    accepts = {e.request_headers.get("Accept", "") for e in recorder.exchanges if "/manifests/" in e.path}
    for media_type in (OCI_MANIFEST, "application/vnd.oci.image.index.v1+json"):
        assert all(media_type in accept for accept in accepts)
    assert all("manifest.list.v2+json" in a and "manifest.v2+json" in a for a in accepts)


async def test_unknown_names_are_one_line_not_found_errors(registry: Registry) -> None:
    async with Recorder().client() as client:
        with pytest.raises(NotFoundError) as caught:
            await client.resolve(registry.ref("ns/nothing:1.0"))
    message = str(caught.value)
    assert "ns/nothing:1.0" in message
    assert "\n" not in message


# -- blob downloads ------------------------------------------------------------------------------------


async def test_pull_blob_streams_verifies_and_reports_progress(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    big = factory.random_layer(3 << 20, f"pull-{tmp_path.name}")
    image = factory.image("blobs", extra_layers=[big])
    ref = push_image(skopeo, image, registry.host, "ns/blobs:1.0")
    seen: list[tuple[int, int]] = []
    async with Recorder().client() as client:
        dest = tmp_path / "out" / big.digest.partition(":")[2]
        await client.pull_blob(ref, big.digest, dest, lambda done, total: seen.append((done, total)), len(big.blob))
    assert dest.read_bytes() == big.blob
    assert seen[-1] == (len(big.blob), len(big.blob))
    assert len(seen) > 2, "progress is reported while the blob streams"
    assert not partial_path(dest).exists()


async def test_pull_blob_resumes_a_partial_file_with_a_range_request(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    big = factory.random_layer(3 << 20, f"resume-{tmp_path.name}")
    image = factory.image("resume", extra_layers=[big])
    ref = push_image(skopeo, image, registry.host, "ns/resume:1.0")
    dest = tmp_path / "out" / "blob"
    dest.parent.mkdir()
    half = len(big.blob) // 2
    partial_path(dest).write_bytes(big.blob[:half])  # what an interrupted pull leaves behind
    recorder = Recorder()
    async with recorder.client() as client:
        await client.pull_blob(ref, big.digest, dest, size=len(big.blob))
    assert dest.read_bytes() == big.blob
    assert not partial_path(dest).exists()
    [get] = recorder.blob_gets()
    assert get.request_headers["Range"] == f"bytes={half}-"
    assert get.status == 206
    assert get.response_headers["Content-Range"].startswith(f"bytes {half}-{len(big.blob) - 1}/")
    assert int(get.response_headers["Content-Length"]) == len(big.blob) - half, "only the missing bytes move"


async def test_a_resumed_file_with_a_bad_prefix_is_downloaded_again(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    big = factory.random_layer(1 << 20, f"badprefix-{tmp_path.name}")
    image = factory.image("badprefix", extra_layers=[big])
    ref = push_image(skopeo, image, registry.host, "ns/badprefix:1.0")
    dest = tmp_path / "blob"
    partial_path(dest).write_bytes(b"\0" * 1000)
    recorder = Recorder()
    async with recorder.client() as client:
        await client.pull_blob(ref, big.digest, dest, size=len(big.blob))
    assert dest.read_bytes() == big.blob
    assert [e.status for e in recorder.blob_gets()] == [206, 200]


async def test_a_corrupted_blob_fails_clearly_and_keeps_nothing(
    registry_process: LiveRegistry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    """The bytes under dockyard's data dir are damaged (same size); the running registry serves them as they are."""
    big = factory.random_layer(1 << 20, f"corrupt-{tmp_path.name}")
    image = factory.image("corrupt", extra_layers=[big])
    ref = push_image(skopeo, image, registry_process.host, "ns/corrupt:1.0")
    hex_part = big.digest.partition(":")[2]
    stored = registry_process.data / "v1" / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    dest = tmp_path / "out" / hex_part

    for with_partial in (False, True):
        if with_partial:
            partial_path(dest).write_bytes(big.blob[:1000])  # even a correct prefix cannot save it
        async with Recorder().client() as client:
            with pytest.raises(BlobVerificationError) as caught:
                await client.pull_blob(ref, big.digest, dest, size=len(big.blob))
        message = str(caught.value)
        assert f"blob {big.digest} of {ref.name}" in message
        assert f"digest {sha256(bytes(damaged))}" in message
        assert "nothing was kept" in message
        assert "\n" not in message
        assert sorted(dest.parent.iterdir()) == []


# -- uploads -------------------------------------------------------------------------------------------


async def test_push_blobs_mount_and_manifest_then_skopeo_reads_it(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    """Config (monolithic upload), layers (a streamed PATCH for the big one), a cross-repository mount, then the
    manifest; skopeo sees exactly that image and the client pulls it back byte for byte."""
    big = factory.random_layer(3 << 20, f"push-{tmp_path.name}")
    image = factory.image("push", extra_layers=[big])
    blobs = {image.config_digest: image.config, **{layer.digest: layer.blob for layer in image.layers}}
    files = {}
    for digest, data in blobs.items():
        files[digest] = tmp_path / digest.partition(":")[2]
        files[digest].write_bytes(data)
    ref = registry.ref("ns/pushed:1.0")
    other = registry.ref("other/mounted:1.0")
    recorder = Recorder()
    async with recorder.client() as client:
        for digest, path in files.items():
            assert not await client.blob_exists(ref, digest)
            await client.push_blob(ref, path, digest)
            assert await client.blob_exists(ref, digest)
        assert await client.push_manifest(ref, image.manifest, OCI_MANIFEST) == image.digest
        for digest in files:
            assert await client.mount_blob(other, digest, "ns/pushed")
            assert await client.blob_exists(other, digest)
        assert not await client.mount_blob(other, sha256(b"never pushed"), "ns/pushed")
        assert await client.push_manifest(other, image.manifest, OCI_MANIFEST) == image.digest
        back = tmp_path / "back"
        await client.pull_blob(other, big.digest, back, size=len(big.blob))
    assert back.read_bytes() == big.blob
    patches = [e for e in recorder.exchanges if e.method == "PATCH"]
    assert len(patches) == 1, "only the blob above the monolithic limit streams through PATCH"
    assert int(patches[0].request_headers["Content-Length"]) == len(big.blob)
    for name in ("ns/pushed:1.0", "other/mounted:1.0"):
        inspected = skopeo.inspect(f"docker://{registry.host}/{name}")
        assert inspected["Digest"] == image.digest
        assert inspected["Layers"] == [layer.digest for layer in image.layers]


# -- authentication ------------------------------------------------------------------------------------


async def test_basic_auth_with_distribution_htpasswd(factory: ImageFactory, skopeo: Skopeo, tmp_path: Path) -> None:
    users = htpasswd_file(tmp_path / "htpasswd", "bob", "bob-password")
    image = factory.image("basic")
    with distribution_registry(tmp_path / "distribution", htpasswd=users) as registry:
        ref = push_image(skopeo, image, registry.host, "ns/basic:1.0", "--dest-creds", "bob:bob-password")
        recorder = Recorder()
        bob = Credentials("bob", "bob-password")
        async with recorder.client(credentials=lambda _host: bob) as client:
            assert (await client.resolve(ref)).digest == image.digest
            await client.pull_blob(ref, image.config_digest, tmp_path / "config", size=len(image.config))
            assert await client.login(registry.host, "bob", "bob-password") is None
            with pytest.raises(AuthenticationError):
                await client.login(registry.host, "bob", "wrong")
        assert (tmp_path / "config").read_bytes() == image.config
        assert all(e.request_headers.get("Authorization", "").startswith("Basic ") for e in recorder.exchanges[2:])
        async with Recorder().client() as anonymous:
            with pytest.raises(AuthenticationError) as caught:
                await anonymous.resolve(ref)
    assert f"log in with: dockyard login {registry.host}" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_token_login_returns_a_refresh_token_that_pushes(factory: ImageFactory, tmp_path: Path) -> None:
    """``login`` checks the password at the token service (``offline_token``) and hands back a refresh token;
    stored as ``identitytoken`` it buys push tokens through the OAuth2 refresh grant."""
    image = factory.image("token")
    with token_dockyard(tmp_path) as live:
        async with Recorder().client() as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.login(live.host, "alice", "wrong-password")
            refresh = await client.login(live.host, *ALICE)
        assert "incorrect username or password" in str(caught.value)
        assert refresh
        store = CredentialStore(tmp_path / "docker" / "config.json")
        store.login(live.host, "alice", "", identity_token=refresh)

        layer_file = tmp_path / "layer"
        layer_file.write_bytes(image.layers[1].blob)
        ref = parse(f"{live.host}/alice/app:1.0")
        recorder = Recorder()
        async with recorder.client(credentials=store.lookup) as client:
            await client.push_blob(ref, layer_file, image.layers[1].digest)
            assert await client.blob_exists(ref, image.layers[1].digest)
        token_requests = [e for e in recorder.exchanges if e.path == "/auth/token"]
        assert {e.method for e in token_requests} == {"POST"}, "the identity token is traded with the refresh grant"
        assert all(e.status == 200 for e in token_requests)


async def test_token_mode_anonymous_pull_of_public_and_refused_push(
    factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    image = factory.image("public")
    with token_dockyard(tmp_path) as live:
        ref = push_image(skopeo, image, live.host, "alice/public:1.0", "--dest-creds", ":".join(ALICE))
        async with Recorder().client() as anonymous:
            assert (await anonymous.resolve(ref)).digest == image.digest
            await anonymous.pull_blob(ref, image.config_digest, tmp_path / "config", size=len(image.config))
            with pytest.raises(AuthenticationError) as caught:
                await anonymous.push_manifest(ref, image.manifest, OCI_MANIFEST)
        assert (tmp_path / "config").read_bytes() == image.config
    message = str(caught.value)
    assert message.startswith("push of manifest")
    assert f"dockyard login {live.host}" in message
    assert "\n" not in message


async def test_insufficient_scope_fetches_a_token_for_the_new_scope_once(tmp_path: Path) -> None:
    """A request sent with a pull-only token for a push is refused (403 + ``insufficient_scope`` challenge); the
    client fetches a token for the challenge's scope and the same request then succeeds."""
    with token_dockyard(tmp_path) as live:
        recorder = Recorder()
        alice = Credentials(*ALICE)
        async with recorder.client(credentials=lambda _host: alice) as client:
            resp = await client._send("POST", live.host, "/v2/alice/scoped/blobs/uploads/", pull_scopes("alice/scoped"))
            resp.release()
        statuses = [(e.method, e.path, e.status) for e in recorder.exchanges if e.path != "/v2/"]
    assert statuses == [
        ("GET", "/auth/token", 200),
        ("POST", "/v2/alice/scoped/blobs/uploads/", 403),
        ("GET", "/auth/token", 200),
        ("POST", "/v2/alice/scoped/blobs/uploads/", 202),
    ]


def test_plain_http_only_for_loopback_and_listed_registries() -> None:
    client = RegistryClient(insecure_registries=["registry.example:5000", "lab.example"])
    assert client.is_insecure("127.0.0.1:5000")
    assert client.is_insecure("localhost:5000")
    assert client.is_insecure("registry.example:5000")
    assert client.is_insecure("lab.example:8443"), "a host listed without a port is insecure on every port"
    assert not client.is_insecure("registry.example:5001")
    assert not client.is_insecure("registry.example")
    assert not client.is_insecure("10.0.0.1:5000")


def test_insecure_cidr_ranges_cover_ip_addresses_only() -> None:
    client = RegistryClient(insecure_registries=["10.231.0.0/16"])
    assert client.is_insecure("10.231.4.1:5000")
    assert not client.is_insecure("10.232.0.1:5000")
    assert not client.is_insecure("registry.example:5000")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="http://127.0.0.1:5000/auth/token",service="dockyard",scope="repository:a/b:pull,push"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "http://127.0.0.1:5000/auth/token",
                        "service": "dockyard",
                        "scope": "repository:a/b:pull,push",
                    },
                )
            ],
        ),
        (
            'Bearer realm="r", error="insufficient_scope", scope="repository:x:push"',
            [Challenge("bearer", {"realm": "r", "error": "insufficient_scope", "scope": "repository:x:push"})],
        ),
        ('Basic realm="dockyard-test"', [Challenge("basic", {"realm": "dockyard-test"})]),
        (
            'basic realm="a", Bearer realm="b",service=s',
            [
                Challenge("basic", {"realm": "a"}),
                Challenge("bearer", {"realm": "b", "service": "s"}),
            ],
        ),
        ('Bearer realm="quoted \\"name\\""', [Challenge("bearer", {"realm": 'quoted "name"'})]),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges([header]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("Linux/ARM/v7", Platform("linux", "arm", "v7")),
    ],
)
def test_platform_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected
    assert Platform.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/extra", ""])
def test_bad_platforms_are_one_line_errors(text: str) -> None:
    with pytest.raises(InvalidPlatformError, match="expected os/architecture"):
        Platform.parse(text)


def test_platform_matching_uses_default_variants() -> None:
    assert Platform.parse("linux/arm64/v8").accepts(Platform("linux", "arm64"))
    assert Platform.parse("linux/arm64").accepts(Platform("linux", "arm64", "v8"))
    assert not Platform.parse("linux/arm/v6").accepts(Platform("linux", "arm", "v7"))
    assert not Platform.parse("linux/amd64").accepts(Platform("windows", "amd64"))

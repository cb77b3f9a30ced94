"""The local image store against real registries and real tools: pull from dockyard and CNCF Distribution, push
back (with cross-repository mounts), token mode with stored credentials, and ``save`` archives that real
``docker load`` and ``podman load`` accept (and ``load`` of what they and skopeo write)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from runtime.credentials import CredentialStore
from runtime.distribution import RegistryClient
from runtime.imagestore import (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    ArchiveError,
    ImageConflictError,
    ImageNotFoundError,
    ImageRecord,
    ImageStore,
    ImageStoreError,
)
from runtime.manifests import AuthenticationError, BlobVerificationError, NullProgress, Platform
from runtime.progress import RichProgress
from runtime.references import parse
from tests.runtime.test_distribution import Recorder
from tests.support.clients import Docker, Podman, Skopeo, ToolHome
from tests.support.dockerd import Dockerd, running_dockerd
from tests.support.images import Image, ImageFactory, TarEntry, make_tar, write_docker_archive
from tests.support.registries import ALICE, Registry, push_image, token_dockyard
from tests.support.server import live_registry

pytestmark = pytest.mark.interop


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    with running_dockerd() as daemon:
        yield daemon


@pytest.fixture
def docker(dockerd: Dockerd, tool_home: ToolHome) -> Iterator[Docker]:
    client = Docker(dockerd.host, dockerd.config_dir, tool_home)
    client.remove_all_images()
    try:
        yield client
    finally:
        client.remove_all_images()


def add_local(store: ImageStore, factory: ImageFactory, image: Image, name: str) -> ImageRecord:
    """Put ``image`` into the store without a registry (what ``commit`` does with the blobs it made)."""
    for digest in image.blob_digests:
        store.write_blob(factory.layout.read_blob(digest), digest)
    return store.add_image(name, image.manifest)


def blob_files(store: ImageStore) -> set[str]:
    """Digests of the blob files in the store (partial downloads excluded)."""
    folder = store.root / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in folder.iterdir() if not p.name.startswith(".")} if folder.exists() else set()


def registry_blob_gets(registry: Registry) -> int:
    """Blob GETs in the registry's own access log (dockyard's JSON lines; Distribution's combined log)."""
    text = registry.log.read_text(errors="replace")
    if registry.kind == "dockyard":
        return len(re.findall(r'"method": "GET", "path": "/v2/[^"]+/blobs/sha256:', text))
    return len(re.findall(r'"GET /v2/\S+/blobs/sha256:\S+ HTTP', text))


class Timeline(NullProgress):
    """Progress events merged into a recorder's request timeline."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.outcomes: dict[str, str] = {}

    def end(self, digest: str, outcome: str) -> None:
        self.outcomes[digest] = outcome
        self.recorder.events.append(f"end {outcome} {digest}")


# -- pull ----------------------------------------------------------------------------------------------


async def test_pull_records_a_verified_image_and_a_second_pull_moves_nothing(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, store: ImageStore, tmp_path: Path
) -> None:
    big = factory.random_layer(2 << 20, f"pull-{tmp_path.name}")
    image = factory.image("pull", extra_layers=[big])
    ref = push_image(skopeo, image, registry.host, "ns/app:1.0")
    recorder = Recorder()
    timeline = Timeline(recorder)
    async with recorder.client() as client:
        record = await store.pull(ref, client, progress=timeline)
        first_gets = len(recorder.blob_gets())
        logged = registry_blob_gets(registry)
        again = await store.pull(ref, client, progress=timeline)

    assert record == again
    assert record.name == f"{registry.host}/ns/app:1.0"
    assert record.id == image.config_digest
    assert record.manifest_digest == image.digest
    assert record.created == "2023-11-14T22:13:20Z"
    assert record.size == len(image.config) + sum(len(layer.blob) for layer in image.layers)
    assert store.images() == [record]
    assert first_gets == len(image.blob_digests)
    assert len(recorder.blob_gets()) == first_gets, "the second pull must not download any blob"
    assert registry_blob_gets(registry) == logged, "nor may the registry have served one"
    assert set(timeline.outcomes.values()) == {"exists"}
    for digest in blob_files(store):
        assert "sha256:" + hashlib.sha256(store.blob_path(digest).read_bytes()).hexdigest() == digest
    assert blob_files(store) == {image.digest, *image.blob_digests}
    layers = store.layers(record.name)
    assert [(i.digest, i.diff_id, i.media_type) for i in layers] == [
        (layer.digest, layer.diff_id, OCI_LAYER_GZIP) for layer in image.layers
    ]
    assert all(info.path.read_bytes() == layer.blob for info, layer in zip(layers, image.layers, strict=True))
    assert store.image_config(f"{registry.host}/ns/app:1.0")["rootfs"]["diff_ids"] == [
        layer.diff_id for layer in image.layers
    ]


async def test_pull_downloads_missing_blobs_in_parallel(factory: ImageFactory, skopeo: Skopeo, tmp_path: Path) -> None:
    """With a limit of three, all three layer downloads are under way before the first one ends; with a limit of
    one they run one after the other (which shows the measurement itself works)."""
    layers = [factory.random_layer(2 << 20, f"par-{n}-{tmp_path.name}") for n in range(3)]
    image = factory.image("parallel", extra_layers=layers)
    (tmp_path / "reg").mkdir()
    with live_registry(tmp_path / "reg") as live:
        ref = push_image(skopeo, image, live.host, "ns/parallel:1.0")
        for limit, expected in ((3, 3), (1, 1)):
            store = ImageStore(tmp_path / f"store-{limit}")
            for digest in (image.config_digest, image.layers[0].digest, image.layers[1].digest):
                store.write_blob(factory.layout.read_blob(digest), digest)  # only the three big layers are missing
            recorder = Recorder()
            async with recorder.client() as client:
                await store.pull(ref, client, progress=Timeline(recorder), concurrency=limit)
            first_end = next(i for i, e in enumerate(recorder.events) if e.startswith("end done"))
            started = [e for e in recorder.events[:first_end] if e.startswith("start GET") and "/blobs/" in e]
            assert len(started) == expected, recorder.events


async def test_pull_of_an_index_takes_the_requested_platform(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    multi = factory.multi_arch("multi")
    ref = push_image(skopeo, multi, registry.host, "ns/multi:1.0", "--all")
    amd64, arm64 = multi.children
    async with Recorder().client() as client:
        for platform, child in ((Platform.parse("linux/arm64"), arm64), (Platform.parse("linux/amd64"), amd64)):
            store = ImageStore(tmp_path / str(platform).replace("/", "-"))
            record = await store.pull(ref, client, platform)
            assert record.id == child.config_digest
            assert record.manifest_digest == child.digest
            assert record.index_digest == multi.digest
            assert store.image_config(str(ref))["architecture"] == child.architecture
            assert blob_files(store) == {child.digest, *child.blob_digests}


async def test_a_corrupted_layer_fails_the_pull_and_records_nothing(
    factory: ImageFactory, skopeo: Skopeo, store: ImageStore, tmp_path: Path
) -> None:
    big = factory.random_layer(1 << 20, f"bad-{tmp_path.name}")
    image = factory.image("bad", extra_layers=[big])
    (tmp_path / "reg").mkdir()
    with live_registry(tmp_path / "reg") as live:
        ref = push_image(skopeo, image, live.host, "ns/bad:1.0")
        hex_part = big.digest.partition(":")[2]
        stored = live.data / "v1" / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"
        damaged = bytearray(stored.read_bytes())
        damaged[100] ^= 0x01
        stored.write_bytes(bytes(damaged))
        async with Recorder().client() as client:
            with pytest.raises(BlobVerificationError, match=f"blob {big.digest} of {ref.name}.*nothing was kept"):
                await store.pull(ref, client)
    assert store.images() == []
    assert big.digest not in blob_files(store)
    assert not any(p.name.endswith(".partial") for p in (store.root / "blobs" / "sha256").iterdir())


async def test_rich_progress_renders_layers_and_a_total(
    factory: ImageFactory, skopeo: Skopeo, store: ImageStore, tmp_path: Path
) -> None:
    image = factory.image("progress")
    (tmp_path / "reg").mkdir()
    output = io.StringIO()
    with live_registry(tmp_path / "reg") as live:
        ref = push_image(skopeo, image, live.host, "ns/progress:1.0")
        async with Recorder().client() as client:
            with RichProgress(Console(file=output, width=120, force_terminal=False)) as progress:
                await store.pull(ref, client, progress=progress)
            with RichProgress(Console(file=output, width=120, force_terminal=False)) as progress:
                await store.pull(ref, client, progress=progress)
    text = output.getvalue()
    assert "total" in text
    for digest in image.blob_digests:
        assert f"{digest[7:19]} done" in text
        assert f"{digest[7:19]} exists" in text


# -- names ---------------------------------------------------------------------------------------------


def test_tag_rmi_and_lookups(factory: ImageFactory, store: ImageStore) -> None:
    first = factory.image("first")
    second = factory.image("second")
    a = add_local(store, factory, first, "127.0.0.1:5000/ns/first:1.0")
    add_local(store, factory, second, "busybox")
    shared = first.layers[0].digest
    assert shared == second.layers[0].digest, "both images share the busybox layer"

    assert store.get("docker.io/library/busybox:latest").id == second.config_digest
    assert store.get(second.config_digest[7:19]).id == second.config_digest
    assert store.get(second.config_digest).name == "docker.io/library/busybox:latest"
    tagged = store.tag("127.0.0.1:5000/ns/first:1.0", "127.0.0.1:5000/ns/first:latest")
    assert tagged.id == a.id
    assert [r.name for r in store.images()] == [
        "127.0.0.1:5000/ns/first:1.0",
        "127.0.0.1:5000/ns/first:latest",
        "docker.io/library/busybox:latest",
    ]

    with pytest.raises(ImageConflictError, match="has several names"):
        store.rmi(first.config_digest[7:19])
    removed = store.rmi("127.0.0.1:5000/ns/first:latest")
    assert removed.untagged == ["127.0.0.1:5000/ns/first:latest"]
    assert removed.deleted == [], "another name still uses every blob"

    removed = store.rmi("127.0.0.1:5000/ns/first:1.0")
    assert set(removed.deleted) == {first.digest, first.config_digest, first.layers[1].digest}
    assert shared in blob_files(store), "the layer busybox still uses stays"
    assert blob_files(store) == {second.digest, *second.blob_digests}

    store.tag("busybox", "127.0.0.1:5000/other:2")
    removed = store.rmi(second.config_digest, force=True)
    assert removed.untagged == ["127.0.0.1:5000/other:2", "docker.io/library/busybox:latest"]
    assert store.images() == []
    assert blob_files(store) == set()


def test_prune_deletes_unreferenced_blobs_once_they_are_old_enough(factory: ImageFactory, store: ImageStore) -> None:
    kept = factory.image("kept")
    add_local(store, factory, kept, "127.0.0.1:5000/ns/kept:1")
    orphan = store.write_blob(b"left behind by a failed pull")
    partial = store.blob_path(orphan).with_name(".abandoned.partial")
    partial.write_bytes(b"half a layer")
    crashed = store.root / "tmp" / "blob-crashed"
    crashed.write_bytes(b"an import that never finished")
    assert store.prune(grace=3600) == [], "young files may belong to a pull in progress"
    old = time.time() - 7200
    for path in (store.blob_path(orphan), partial, crashed, *(store.blob_path(d) for d in kept.blob_digests)):
        os.utime(path, (old, old))
    assert store.prune(grace=3600) == [orphan]
    assert not partial.exists()
    assert not crashed.exists()
    assert blob_files(store) == {kept.digest, *kept.blob_digests}
    assert store.get("127.0.0.1:5000/ns/kept:1").id == kept.config_digest


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.get("127.0.0.1:5000/missing:1"), ImageNotFoundError, "no such image: 127.0.0.1:5000/missing:1"),
        (lambda s: s.rmi("deadbeef"), ImageNotFoundError, "no such image: deadbeef"),
        (lambda s: s.tag("missing", "other:1"), ImageNotFoundError, "no such image: missing"),
        (lambda s: s.blob_path("sha256:../../etc/passwd"), ImageStoreError, "invalid digest"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    store: ImageStore, call: object, error: type[Exception], message: str
) -> None:
    assert callable(call)
    with pytest.raises(error) as caught:
        call(store)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_tags_with_digests_are_refused(factory: ImageFactory, store: ImageStore) -> None:
    image = factory.image("refuse")
    add_local(store, factory, image, "127.0.0.1:5000/ns/refuse:1")
    with pytest.raises(ImageStoreError, match="refusing to create a tag with a digest"):
        store.tag("127.0.0.1:5000/ns/refuse:1", f"127.0.0.1:5000/ns/refuse@{image.digest}")


def test_add_image_needs_every_blob(factory: ImageFactory, store: ImageStore) -> None:
    image = factory.image("incomplete")
    store.write_blob(image.config, image.config_digest)
    with pytest.raises(ImageStoreError, match=r"blob sha256:[0-9a-f]{64} is not in the store"):
        store.add_image("127.0.0.1:5000/ns/incomplete:1", image.manifest)
    assert store.images() == []


def test_concurrent_tags_from_several_processes(factory: ImageFactory, store: ImageStore) -> None:
    """Eight processes tag the same image at once; the lock keeps every name."""
    image = factory.image("concurrent")
    add_local(store, factory, image, "127.0.0.1:5000/ns/concurrent:0")
    code = (
        "import sys; from pathlib import Path; from runtime.imagestore import ImageStore\n"
        "s = ImageStore(Path(sys.argv[1]))\n"
        "for i in range(5): s.tag('127.0.0.1:5000/ns/concurrent:0', f'127.0.0.1:5000/ns/c{sys.argv[2]}:{i}')\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(store.root), str(n)], cwd=Path(__file__).parents[2])
        for n in range(8)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0] * 8
    assert len(store.images()) == 1 + 8 * 5
    assert {r.id for r in store.images()} == {image.config_digest}


# -- push ----------------------------------------------------------------------------------------------


async def test_push_sends_only_missing_blobs_and_mounts_across_repositories(
    registry: Registry, factory: ImageFactory, skopeo: Skopeo, store: ImageStore, tmp_path: Path
) -> None:
    big = factory.random_layer(2 << 20, f"push-{tmp_path.name}")
    image = factory.image("push", extra_layers=[big])
    add_local(store, factory, image, f"{registry.host}/ns/app:1.0")
    store.tag(f"{registry.host}/ns/app:1.0", f"{registry.host}/team/copy:2.0")
    recorder = Recorder()
    async with recorder.client(monolithic_max=64 << 10) as client:
        assert await store.push(f"{registry.host}/ns/app:1.0", client) == image.digest
        uploads = recorder.exchanges[:]
        del recorder.exchanges[:]
        progress = Timeline(recorder)
        assert await store.push(f"{registry.host}/team/copy:2.0", client, progress) == image.digest
        mounts = recorder.exchanges[:]
        del recorder.exchanges[:]
        assert await store.push(f"{registry.host}/ns/app:1.0", client) == image.digest
        again = recorder.exchanges[:]

    assert {e.path for e in uploads if e.method == "PUT" and "/blobs/" in e.path} != set()
    assert [e.path for e in uploads if e.method == "PATCH"] != [], "the big layer streams"
    assert set(progress.outcomes.values()) == {"mounted"}
    mounted = [e for e in mounts if e.method == "POST"]
    assert len(mounted) == len(image.blob_digests)
    assert all(e.status == 201 for e in mounted)
    assert not [e for e in mounts if e.method in ("PATCH",) or (e.method == "PUT" and "/blobs/" in e.path)]
    assert {(e.method, e.status) for e in again if "/blobs/" in e.path} == {("HEAD", 200)}, "nothing is re-sent"
    for name in ("ns/app:1.0", "team/copy:2.0"):
        inspected = skopeo.inspect(f"docker://{registry.host}/{name}")
        assert inspected["Digest"] == image.digest
        assert inspected["Layers"] == [layer.digest for layer in image.layers]
    assert skopeo.inspect_raw(f"docker://{registry.host}/team/copy:2.0") == image.manifest


async def test_token_mode_login_push_and_pull_with_stored_credentials(
    factory: ImageFactory, skopeo: Skopeo, tmp_path: Path
) -> None:
    """alice logs in (the refresh token lands in a docker config.json), pushes from her store and pulls into a
    fresh one; an anonymous store pulls the (public) repository too; skopeo reads the same config.json."""
    image = factory.image("token")
    config = CredentialStore(tmp_path / "docker" / "config.json")
    with token_dockyard(tmp_path) as live:
        name = f"{live.host}/alice/app:1.0"
        async with RegistryClient(credentials=config.lookup) as client:
            refresh = await client.login(live.host, *ALICE)
        config.login(live.host, ALICE[0], ALICE[1], identity_token=refresh)
        assert "identitytoken" in json.loads(config.path.read_text())["auths"][live.host]

        mine = ImageStore(tmp_path / "alice-store")
        add_local(mine, factory, image, name)
        async with RegistryClient(credentials=config.lookup) as client:
            assert await mine.push(name, client) == image.digest
            pulled = await ImageStore(tmp_path / "alice-again").pull(parse(name), client)
        assert pulled.id == image.config_digest

        async with Recorder().client() as anonymous:
            public = await ImageStore(tmp_path / "anonymous").pull(parse(name), anonymous)
            assert public.id == image.config_digest
            with pytest.raises(AuthenticationError, match="alice/none:1: unauthorized"):
                await ImageStore(tmp_path / "anonymous").pull(parse(f"{live.host}/alice/none:1"), anonymous)

        inspected = skopeo.inspect(f"docker://{name}", "--authfile", str(config.path))
        assert inspected["Digest"] == image.digest


# -- save and load -------------------------------------------------------------------------------------


def test_save_then_docker_load_and_run(
    docker: Docker, factory: ImageFactory, store: ImageStore, tmp_path: Path
) -> None:
    """The saved archive loads into a real dockerd: same image id (the config digest), the names, and the
    container sees the image's files. ``docker save`` of it loads back into a fresh store with the same id."""
    image = factory.image("docker-save", hello=b"saved for docker\n")
    other = factory.image("docker-save-2")
    add_local(store, factory, image, "127.0.0.1:5000/ns/saved:1.0")
    store.tag("127.0.0.1:5000/ns/saved:1.0", "busybox-saved")
    add_local(store, factory, other, "127.0.0.1:5000/ns/other:2.0")
    archive = tmp_path / "images.tar"
    store.save(["127.0.0.1:5000/ns/saved:1.0", "busybox-saved", "127.0.0.1:5000/ns/other:2.0"], archive)

    docker.run("load", "--input", str(archive))

    inspected = docker.image_inspect("127.0.0.1:5000/ns/saved:1.0")
    assert inspected["Id"] == image.config_digest
    assert sorted(inspected["RepoTags"]) == ["127.0.0.1:5000/ns/saved:1.0", "busybox-saved:latest"]
    assert docker.image_inspect("127.0.0.1:5000/ns/other:2.0")["Id"] == other.config_digest
    assert inspected["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    output = docker.run("run", "--rm", "--network", "none", "127.0.0.1:5000/ns/saved:1.0", "cat", "/hello.txt")
    assert output.stdout == "saved for docker\n"

    exported = tmp_path / "docker-save.tar"
    docker.run("save", "--output", str(exported), "busybox-saved")
    [loaded] = ImageStore(tmp_path / "from-docker").load(exported)
    assert loaded.name == "docker.io/library/busybox-saved:latest"
    assert loaded.id == image.config_digest


def test_save_then_podman_load(tool_home: ToolHome, factory: ImageFactory, store: ImageStore, tmp_path: Path) -> None:
    image = factory.image("podman-save")
    add_local(store, factory, image, "127.0.0.1:5000/ns/podman-saved:1.0")
    archive = tmp_path / "image.tar"
    store.save(["127.0.0.1:5000/ns/podman-saved:1.0"], archive)
    podman = Podman(tool_home)

    podman.run("load", "--input", str(archive))

    inspected = podman.image_inspect("127.0.0.1:5000/ns/podman-saved:1.0")
    assert inspected["Id"] == image.image_id
    assert "sha256:" + inspected["Id"] == image.config_digest
    assert inspected["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    podman.remove_all_images()


def test_saved_archive_layout(factory: ImageFactory, store: ImageStore, tmp_path: Path) -> None:
    """An OCI layout (oci-layout, index.json with containerd's and OCI's name annotations, blobs) plus docker's
    manifest.json whose paths point at those same blobs."""
    image = factory.image("layout")
    add_local(store, factory, image, "127.0.0.1:5000/ns/layout:1.0")
    archive = tmp_path / "image.tar"
    store.save(["127.0.0.1:5000/ns/layout:1.0"], archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        layout = json.loads(tar.extractfile("oci-layout").read())  # type: ignore[union-attr]
    assert layout == {"imageLayoutVersion": "1.0.0"}
    [entry] = index["manifests"]
    assert entry["digest"] == image.digest
    assert entry["annotations"] == {
        "io.containerd.image.name": "127.0.0.1:5000/ns/layout:1.0",
        "org.opencontainers.image.ref.name": "1.0",
    }
    assert manifest == [
        {
            "Config": f"blobs/sha256/{image.config_digest[7:]}",
            "RepoTags": ["127.0.0.1:5000/ns/layout:1.0"],
            "Layers": [f"blobs/sha256/{layer.digest[7:]}" for layer in image.layers],
        }
    ]
    assert {f"blobs/sha256/{d[7:]}" for d in [image.digest, *image.blob_digests]} <= names


def test_load_round_trips_save_and_reads_docker_archives(
    factory: ImageFactory, store: ImageStore, tmp_path: Path
) -> None:
    image = factory.image("roundtrip")
    add_local(store, factory, image, "127.0.0.1:5000/ns/round:1.0")
    store.save(["127.0.0.1:5000/ns/round:1.0"], tmp_path / "saved.tar")

    fresh = ImageStore(tmp_path / "fresh")
    [loaded] = fresh.load(tmp_path / "saved.tar")
    assert loaded == store.get("127.0.0.1:5000/ns/round:1.0"), "same manifest, config and name"
    assert blob_files(fresh) == {image.digest, *image.blob_digests}

    archive = write_docker_archive(image, tmp_path / "docker.tar", ["someone/app:3", "127.0.0.1:5000/x:1"])
    docker_store = ImageStore(tmp_path / "docker")
    loaded_names = sorted(r.name for r in docker_store.load(archive))
    assert loaded_names == ["127.0.0.1:5000/x:1", "docker.io/someone/app:3"]
    assert docker_store.get("someone/app:3").id == image.config_digest
    assert [(i.digest, i.media_type) for i in docker_store.layers("someone/app:3")] == [
        (layer.diff_id, OCI_LAYER) for layer in image.layers
    ], "uncompressed layers keep their tar as the blob (digest = diff_id)"


def test_load_reads_a_skopeo_oci_archive(
    skopeo: Skopeo, factory: ImageFactory, store: ImageStore, tmp_path: Path
) -> None:
    image = factory.image("skopeo-archive")
    archive = tmp_path / "oci.tar"
    skopeo.copy(image.oci_ref, f"oci-archive:{archive}:127.0.0.1:5000/ns/from-skopeo:4")
    [loaded] = store.load(archive)
    assert loaded.name == "127.0.0.1:5000/ns/from-skopeo:4"
    assert loaded.id == image.config_digest
    assert loaded.manifest_digest == image.digest


def test_load_refuses_bad_archives(factory: ImageFactory, store: ImageStore, tmp_path: Path) -> None:
    (tmp_path / "not.tar").write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(ArchiveError, match="not a readable tar archive"):
        store.load(tmp_path / "not.tar")
    (tmp_path / "empty.tar").write_bytes(make_tar([TarEntry("hello.txt", "file", b"hi")]))
    with pytest.raises(ArchiveError, match="neither an OCI image layout nor a docker archive"):
        store.load(tmp_path / "empty.tar")

    image = factory.image("tampered")
    add_local(store, factory, image, "127.0.0.1:5000/ns/tampered:1")
    store.save(["127.0.0.1:5000/ns/tampered:1"], tmp_path / "good.tar")
    layer_member = f"blobs/sha256/{image.layers[1].digest[7:]}"
    entries = []
    with tarfile.open(tmp_path / "good.tar") as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            if member.name == layer_member:
                data = data[:-1] + bytes([data[-1] ^ 1])
            entries.append(TarEntry(member.name, "file" if member.isfile() else "dir", data, mode=0o644))
    (tmp_path / "bad.tar").write_bytes(make_tar(entries))
    victim = ImageStore(tmp_path / "victim")
    with pytest.raises(ImageStoreError, match=f"blob {image.layers[1].digest} has the wrong content"):
        victim.load(tmp_path / "bad.tar")
    assert victim.images() == []
    assert image.layers[1].digest not in blob_files(victim)


def test_save_refuses_zstd_layers(factory: ImageFactory, store: ImageStore) -> None:
    image = factory.image("zstd")
    add_local(store, factory, image, "127.0.0.1:5000/ns/zstd:1")
    doc = json.loads(image.manifest)
    doc["layers"][1]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    store.add_image("127.0.0.1:5000/ns/zstd:2", json.dumps(doc).encode())
    with pytest.raises(ArchiveError, match="docker load takes only tar or tar\\+gzip layers"):
        store.save(["127.0.0.1:5000/ns/zstd:2"], store.root / "out.tar")
    assert not (store.root / "out.tar").exists()

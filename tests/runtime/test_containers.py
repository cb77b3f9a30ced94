"""runtime.containers: chain ids, the layer cache, overlay rootfs, -v and signal parsing, commit -c changes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from runtime.containers import (
    ContainerError,
    ContainerStore,
    VolumeSpec,
    apply_changes,
    chain_ids,
    is_mounted,
    parse_signal,
    parse_volume,
)
from runtime.spec import RunOptions
from runtime.volumes import VolumeError, VolumeStore
from tests.runtime.test_cli_containers import factory, import_image, mounts_under  # noqa: F401 - fixture
from tests.support.images import ImageFactory
from tests.support.tools import require_root

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def test_chain_ids_follow_the_image_spec() -> None:
    ab = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {C}".encode()).hexdigest()
    assert chain_ids([A, B, C]) == [A, ab, abc]
    assert chain_ids([]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data:/data", VolumeSpec("data", "/data")),
        ("/host/dir:/x:ro", VolumeSpec("/host/dir", "/x", True)),
        ("/anon", VolumeSpec(None, "/anon")),
        ("vol.1:/y:rw", VolumeSpec("vol.1", "/y")),
    ],
)
def test_parse_volume(text: str, expected: VolumeSpec) -> None:
    assert parse_volume(text) == expected


@pytest.mark.parametrize("text", ["relative/dir:/x", "./dir:/x", "data:relative", "a:/b:zz", "", "a::/b"])
def test_parse_volume_refuses(text: str) -> None:
    with pytest.raises(ContainerError):
        parse_volume(text)


def test_parse_signal() -> None:
    assert parse_signal("9") == 9
    assert parse_signal("TERM") == 15
    assert parse_signal("sigkill") == 9
    with pytest.raises(ContainerError):
        parse_signal("NOPE")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (['CMD ["a", "b"]'], {"Cmd": ["a", "b"]}),
        (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
        (['ENTRYPOINT ["e"]'], {"Entrypoint": ["e"], "Cmd": None}),
        (['CMD ["c"]', 'ENTRYPOINT ["e"]'], {"Entrypoint": ["e"], "Cmd": ["c"]}),
        (['ENV A=1 B="two words"'], {"Env": ["PATH=/bin", "A=1", "B=two words"]}),
        (["ENV PATH /usr/bin"], {"Env": ["PATH=/usr/bin"]}),
        (["WORKDIR sub"], {"WorkingDir": "/app/sub"}),
        (["WORKDIR /abs"], {"WorkingDir": "/abs"}),
        (["USER 1000"], {"User": "1000"}),
        (["EXPOSE 80 53/udp"], {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
        (["LABEL a=b"], {"Labels": {"a": "b"}}),
    ],
)
def test_apply_changes(changes: list[str], expected: dict[str, Any]) -> None:
    base = {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/app"}
    result = apply_changes(base, changes)
    assert {key: result.get(key) for key in expected} == expected
    assert base == {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/app"}  # not changed in place


@pytest.mark.parametrize("change", ["RUN make", "CMD", "ENV"])
def test_apply_changes_refuses(change: str) -> None:
    with pytest.raises(ContainerError):
        apply_changes({}, [change])


def test_volume_store(tmp_path: Path) -> None:
    volumes = VolumeStore(tmp_path)
    created = volumes.create("data")
    assert created.mountpoint == tmp_path / "volumes" / "data" / "_data"
    assert created.mountpoint.is_dir()
    assert volumes.create("data") == created
    anonymous = volumes.create()
    assert len(anonymous.name) == 64
    assert [v.name for v in volumes.all()] == sorted(["data", anonymous.name])
    assert volumes.get("data").to_json()["Driver"] == "local"
    volumes.remove("data")
    with pytest.raises(VolumeError):
        volumes.get("data")
    with pytest.raises(VolumeError):
        volumes.create("../evil")


def test_layers_unpacked_once_and_rootfs_mounted(tmp_path: Path, factory: ImageFactory) -> None:  # noqa: F811
    require_root()
    root = tmp_path / "root"
    image = factory.image("cache", hello=b"cached\n")
    import_image(root, factory, image, "localhost/test/cache:1")
    store = ContainerStore(root)
    record = store.images.get("localhost/test/cache:1")
    first = store.create(record, RunOptions(command=("true",), network="none"))
    second = store.create(record, RunOptions(command=("true",), network="none"))
    try:
        layer_dirs = sorted(p for p in (root / "layers").iterdir() if p.is_dir())
        assert [p.name for p in layer_dirs] == sorted(c.partition(":")[2] for c in first.chain_ids)
        assert first.chain_ids == second.chain_ids
        assert is_mounted(first.rootfs)
        assert is_mounted(second.rootfs)
        assert (first.rootfs / "hello.txt").read_text() == "cached\n"
        (first.rootfs / "hello.txt").write_text("changed\n")  # the upper dir only
        assert (second.rootfs / "hello.txt").read_text() == "cached\n"
        assert (first.dir / "upper" / "hello.txt").read_text() == "changed\n"
        with pytest.raises(ContainerError):
            store.create(record, RunOptions(command=("true",), network="none"), name=first.name)
    finally:
        store.remove(first)
        store.remove(second)
    assert mounts_under(root) == []
    assert store.all() == []

"""runtime.containers: chain ids, the layer cache, overlay rootfs, -v and signal parsing, commit -c changes; a
refused create leaves nothing behind and a container that is not running holds no mount (real overlay + runc)."""

from __future__ import annotations

import hashlib
import time
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
    make_dirs,
    parse_signal,
    parse_volume,
    remove_empty_dirs,
)
from runtime.spec import RunOptions, SpecError
from runtime.users import UserError
from runtime.volumes import VolumeError, VolumeStore
from tests.runtime.test_cli_containers import (  # noqa: F401 - fixtures
    Dockyard,
    dy,
    factory,
    image,
    import_image,
    mounts_under,
)
from tests.support.images import ImageFactory, TarEntry, image_config, layer_from_entries
from tests.support.tools import require_root, require_tool

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
    import_image(root, factory, factory.image("cache", hello=b"cached\n"), "localhost/test/cache:1")
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


def test_make_dirs_and_its_undo(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    created = make_dirs(tmp_path / "kept" / "a" / "b")
    assert created == [tmp_path / "kept" / "a", tmp_path / "kept" / "a" / "b"]
    assert make_dirs(tmp_path / "kept" / "a") == []
    (tmp_path / "kept" / "a" / "b" / "written").write_text("x")  # not empty any more: kept, with its parents
    remove_empty_dirs(created)
    assert (tmp_path / "kept" / "a" / "b" / "written").exists()
    (tmp_path / "kept" / "a" / "b" / "written").unlink()
    remove_empty_dirs(created)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


LOOP_IMAGE = "localhost/test/loop:1"


def loop_image(root: Path, factory: ImageFactory) -> None:  # noqa: F811
    """A local image declaring ``Volumes`` ``/loop``, a symlink to itself: its copy-up fails only after the
    container's other volumes and bind directories were made (so every undo step runs)."""
    loop = layer_from_entries([TarEntry("loop", "symlink", target="loop")], "loop")
    layers = (factory.base_layer, factory.hello_layer(b"hi\n"), loop)
    process = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Volumes": {"/loop": {}}}
    import_image(
        root, factory, factory.add_image("loop", layers, image_config(layers, "amd64", process=process)), LOOP_IMAGE
    )


def leftovers(store: ContainerStore, host: Path) -> dict[str, object]:
    """What a refused create must not leave: mounts, records, container dirs, volumes, host directories."""
    dirs = sorted(p.name for p in store.dir.iterdir() if p.is_dir()) if store.dir.is_dir() else []
    return {
        "mounts": mounts_under(store.root),
        "containers": store.all(),
        "dirs": dirs,
        "volumes": store.volumes.all(),
        "host": host.exists(),
    }


def test_a_refused_create_leaves_nothing_behind(tmp_path: Path, factory: ImageFactory) -> None:  # noqa: F811
    require_root()
    root, host = tmp_path / "root", tmp_path / "host"
    import_image(root, factory, factory.image("refused", hello=b"hi\n"), "localhost/test/refused:1")
    loop_image(root, factory)
    store = ContainerStore(root)
    plain, loop = store.images.get("localhost/test/refused:1"), store.images.get(LOOP_IMAGE)
    fresh = VolumeSpec("fresh", "/data")
    bind = VolumeSpec(str(host / "a" / "b"), "/b")
    nothing = {"mounts": [], "containers": [], "dirs": [], "volumes": [], "host": False}
    before_mount: list[tuple[RunOptions, list[VolumeSpec], str | None]] = [
        (RunOptions(entrypoint="", network="none"), [fresh, bind], None),  # no command
        (RunOptions(command=("true",), workdir="relative", network="none"), [fresh, bind], None),
        (RunOptions(command=("true",), memory=1, network="none"), [fresh, bind], None),
        (RunOptions(command=("true",), network="none"), [fresh, VolumeSpec("other", "/")], None),
        (RunOptions(command=("true",), network="none"), [fresh, bind], "../../escape"),
    ]
    for opts, volumes, name in before_mount:
        with pytest.raises((SpecError, ContainerError)):
            store.create(plain, opts, name=name, volumes=volumes)
        assert leftovers(store, host) == nothing, opts
        assert not (root / "layers").exists()  # refused before anything was unpacked or mounted
    after_mount = [
        (plain, RunOptions(command=("true",), user="nosuchuser", network="none")),
        (plain, RunOptions(command=("true",), workdir="/hello.txt/sub", network="none")),
        (plain, RunOptions(command=("true",), user="nosuchuser")),  # bridge: refused before any namespace is made
        (loop, RunOptions(command=("true",), network="none")),  # fails in the copy-up: every step undone
    ]
    for record, opts in after_mount:
        with pytest.raises((SpecError, UserError)):
            store.create(record, opts, volumes=[fresh, bind])
        assert leftovers(store, host) == nothing, opts
    store.volumes.create("fresh")  # a volume that existed before a refused create is kept
    with pytest.raises(UserError):
        store.create(loop, RunOptions(command=("true",), network="none"), volumes=[fresh])
    assert [v.name for v in store.volumes.all()] == ["fresh"]


def test_a_container_that_is_not_running_holds_no_mount(tmp_path: Path, factory: ImageFactory) -> None:  # noqa: F811
    require_root()
    require_tool("runc")
    root = tmp_path / "root"
    import_image(root, factory, factory.image("mounts", hello=b"mounted\n"), "localhost/test/mounts:1")
    store = ContainerStore(root)
    record = store.images.get("localhost/test/mounts:1")
    try:
        failed = store.create(record, RunOptions(command=("/nonexistent",), network="none"))
        assert is_mounted(failed.rootfs)  # while it is being created
        status = store.start(failed).status
        assert (status.exited, status.exit_code) == (True, 127)
        assert not is_mounted(failed.rootfs)
        assert [c.id for c in store.all()] == [failed.id]  # kept (as docker keeps it), but holds no mount
        sleeper = store.create(record, RunOptions(command=("sleep", "1000"), network="none"))
        assert store.start(sleeper).status.status == "running"
        assert is_mounted(sleeper.rootfs)
        assert store.stop(sleeper, timeout=0.5).exited
        assert not is_mounted(sleeper.rootfs)
        assert store.start(sleeper).status.status == "running"  # mounted again
        assert store.exec(sleeper, ["sh", "-c", "test -f /hello.txt"]) == 0
        store.stop(sleeper, timeout=0.5)
        assert mounts_under(root) == []
        quick = store.create(record, RunOptions(command=("sh", "-c", "sleep 0.3"), network="none"))
        assert store.start(quick).status.status == "running"  # detached: nobody waits for it but its supervisor
        deadline = time.monotonic() + 20
        while is_mounted(quick.rootfs):  # the supervisor unmounts once the container ended by itself
            assert time.monotonic() < deadline, "the rootfs of a container that ended stayed mounted"
            time.sleep(0.05)
        assert quick.status().exited
    finally:
        for container in store.all():
            store.remove(container, force=True)
    assert (mounts_under(root), store.all()) == ([], [])


def test_refused_and_failed_runs_through_the_cli(dy: Dockyard, image: str, tmp_path: Path) -> None:  # noqa: F811
    host = tmp_path / "bind" / "src"
    refused = dy.run("run", "--network", "none", "-u", "nosuch", "-v", "fresh:/d", "-v", f"{host}:/b", image, "true")
    assert refused.returncode == 1, refused.stderr
    assert (dy.ok("ps", "-a", "-q"), dy.ok("volume", "ls", "-q"), host.parent.exists()) == ("", "", False)
    assert [p.name for p in (dy.root / "containers").iterdir() if p.is_dir()] == []
    missing = dy.run("run", "--network", "none", "--name", "missing", image, "/nonexistent")
    assert missing.returncode == 127
    assert dy.ok("ps", "-a", "-q").split() != []  # the container stays (docker's "Created", exit 127)...
    assert mounts_under(dy.root) == []  # ...without its rootfs mounted
    assert dy.ok("run", "--network", "none", "--name", "done", image, "true") == ""
    assert mounts_under(dy.root) == []

"""``system prune``, ``system df`` and ``inspect`` of containers, end to end with real runc containers.

The fixtures of :mod:`tests.runtime.test_cli_containers` give each test a private root (containers force-removed
and no mount left at teardown) and busybox-static images imported into its image store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.containers import ContainerStore, chain_ids
from runtime.imagestore import ImageStore
from tests.runtime import test_cli_containers as base
from tests.runtime.test_cli_containers import Dockyard, import_image
from tests.support.images import ImageFactory

dy = base.dy  # the shared fixtures, used by name
factory = base.factory
image = base.image


def layer_names(root: Path, name: str) -> set[str]:
    """The layer dir names of local image ``name``."""
    layers = ImageStore(root).layers(name)
    return {cid.partition(":")[2] for cid in chain_ids([layer.diff_id for layer in layers])}


def present_layers(root: Path) -> set[str]:
    return {p.name for p in (root / "layers").iterdir() if p.is_dir()}


@pytest.mark.usefixtures("image")
def test_prune_needs_force_without_a_terminal(dy: Dockyard) -> None:
    done = dy.run("system", "prune")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "-f" in done.stderr
    assert "localhost/test/img" in dy.ok("images")


def test_prune_keeps_running_containers_and_their_layers(dy: Dockyard, image: str, factory: ImageFactory) -> None:
    dangling = factory.image("dangling", hello=b"dangling\n")
    store = ImageStore(dy.root)
    for digest in dangling.blob_digests:
        store.write_blob(factory.layout.read_blob(digest), digest)
    dangling_record = store.add_image(None, dangling.manifest)
    dy.ok("run", "--name", "gone", image, "true")
    dy.ok("run", "--name", "leftover", dangling_record.id, "true")  # unpacks the dangling image's layers
    dy.ok("rm", "leftover")
    cid = dy.ok("run", "-d", "--name", "keeper", image, "sleep", "1000").strip()
    kept = layer_names(dy.root, image)
    dangling_only = layer_names(dy.root, dangling_record.name) - kept
    assert dangling_only
    assert dangling_only <= present_layers(dy.root)

    out = dy.ok("system", "prune", "-f")
    assert "Deleted Containers:" in out
    assert "Total reclaimed space:" in out.splitlines()[-1]
    names = {c.name for c in ContainerStore(dy.root).all()}
    assert names == {"keeper"}
    assert "keeper" in dy.ok("ps")
    assert dy.ok("exec", "keeper", "cat", "/hello.txt") == "hello from the image\n"  # its overlay still works
    present = present_layers(dy.root)
    assert kept <= present
    assert not dangling_only & present
    assert dangling_record.manifest_digest in out
    assert not store.has_blob(dangling_record.manifest_digest)
    assert "localhost/test/img" in dy.ok("images")  # tagged and in use
    assert cid


def test_prune_all_removes_unused_tagged_images_but_not_volumes(
    dy: Dockyard, image: str, factory: ImageFactory
) -> None:
    other = "localhost/test/other:1"
    import_image(dy.root, factory, factory.image("other", hello=b"other\n"), other)
    dy.ok("run", "--name", "user", "-v", "keepme:/data", other, "sh", "-c", "echo v > /data/f")
    other_layers = layer_names(dy.root, other) - layer_names(dy.root, image)
    assert other_layers <= present_layers(dy.root)

    dy.ok("system", "prune", "-f")  # no -a: tagged images stay
    listing = dy.ok("images")
    assert "localhost/test/other" in listing
    assert "localhost/test/img" in listing

    dy.ok("system", "prune", "-a", "-f")
    assert dy.ok("images", "-q") == ""
    assert not (dy.root / "layers").exists() or present_layers(dy.root) == set()
    assert "keepme" in dy.ok("volume", "ls", "-q").split()
    assert Path(json.loads(dy.ok("volume", "inspect", "keepme"))[0]["Mountpoint"], "f").read_text() == "v\n"
    dy.ok("volume", "rm", "keepme")


def test_df_prints_a_table(dy: Dockyard, image: str) -> None:
    dy.ok("run", "--name", "done", image, "true")
    lines = dy.ok("system", "df").splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"Images", "Containers", "Local", "Layers"}
    assert rows["Images"][1:3] == ["1", "1"]
    assert rows["Containers"][1:3] == ["1", "0"]
    assert rows["Local"][1:5] == ["Volumes", "0", "0", "0B"]
    assert int(rows["Layers"][1]) >= 2


def test_inspect_container_and_image(dy: Dockyard, image: str) -> None:
    assert dy.run("run", "--name", "three", "-e", "X=1", "--memory", "64m", image, "sh", "-c", "exit 3").returncode == 3
    (doc,) = json.loads(dy.ok("inspect", "three"))
    assert doc["Name"] == "/three"
    assert len(doc["Id"]) == 64
    assert doc["State"]["Status"] == "exited"
    assert doc["State"]["Running"] is False
    assert doc["State"]["ExitCode"] == 3
    assert doc["State"]["FinishedAt"] >= doc["State"]["StartedAt"]
    assert doc["Config"]["Cmd"] == ["sh", "-c", "exit 3"]
    assert "X=1" in doc["Config"]["Env"]
    assert doc["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert doc["Image"] == ImageStore(dy.root).get(image).id
    (by_id,) = json.loads(dy.ok("inspect", doc["Id"][:12]))
    assert by_id["Id"] == doc["Id"]

    cid = dy.ok("run", "-d", "--name", "up", "-v", "vol:/v", image, "sleep", "1000").strip()
    (live,) = json.loads(dy.ok("inspect", cid))
    assert live["State"]["Running"] is True
    assert live["State"]["Pid"] > 0
    assert {"Type": "volume", "Name": "vol", "Destination": "/v"}.items() <= live["Mounts"][0].items()

    (img,) = json.loads(dy.ok("inspect", image))
    assert img["RepoTags"] == ["localhost/test/img:1"]
    assert "RootFS" in img

    missing = dy.run("inspect", "nosuchthing")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["Error: no such image or container: nosuchthing"]
    dy.ok("rm", "-f", "up")
    dy.ok("volume", "rm", "vol")

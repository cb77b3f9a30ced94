"""Commit: an overlay upper dir becomes a deterministic OCI layer, and applying it reproduces the container's view."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from runtime.applier import apply_layers
from runtime.layerdiff import LayerDiffError, LayerDigests, write_layer
from tests.runtime.tarfactory import TarBuilder, overlay_mount, tree_manifest
from tests.support.tools import require_root, require_tool

CAP_NET_RAW = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


def commit(upper: Path, lower: list[Path] | None = None) -> tuple[bytes, LayerDigests]:
    out = io.BytesIO()
    digests = write_layer(upper, out, lower=lower)
    return out.getvalue(), digests


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
        return tar.getmembers()


def make_upper(upper: Path, *, with_socket: bool = False) -> None:
    """What overlayfs leaves in an upper dir: changes, a whiteout, an opaque dir, overlay's own xattrs."""
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.setxattr(upper / "etc", "trusted.overlay.origin", b"\x00junk")
    os.setxattr(upper / "etc", "trusted.overlay.impure", b"y")
    (upper / "data").mkdir()
    (upper / "data/a").write_bytes(b"shared inode")
    os.link(upper / "data/a", upper / "data/b")
    (upper / "dev").mkdir()
    os.mknod(upper / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(upper / "fifo", 0o640)
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opq").mkdir(mode=0o750)
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq/new").write_bytes(b"new")
    os.symlink("/abs/target", upper / "sym")
    tool = upper / "tool"
    tool.write_bytes(b"#!/bin/true\n")
    os.chown(tool, 1000, 1000)
    os.chmod(tool, 0o4755)
    os.setxattr(tool, "user.test", b"hello")
    os.setxattr(tool, "security.capability", CAP_NET_RAW)
    if with_socket:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(upper / "sock"))


def test_upper_dir_becomes_an_oci_layer(tmp_path: Path) -> None:
    require_root()
    upper = tmp_path / "upper"
    make_upper(upper, with_socket=True)
    blob, digests = commit(upper)

    plain = gzip.decompress(blob)
    assert digests == LayerDigests(
        diff_id="sha256:" + hashlib.sha256(plain).hexdigest(),
        digest="sha256:" + hashlib.sha256(blob).hexdigest(),
        size=len(blob),
    )
    assert blob[3] == 0  # gzip flags: no file name
    assert blob[4:8] == bytes(4)  # gzip mtime 0
    entries = members(blob)
    assert [(m.name, m.type) for m in entries] == [
        ("data", tarfile.DIRTYPE),
        ("data/a", tarfile.REGTYPE),
        ("data/b", tarfile.LNKTYPE),
        ("dev", tarfile.DIRTYPE),
        ("dev/null", tarfile.CHRTYPE),
        ("etc", tarfile.DIRTYPE),
        ("etc/passwd", tarfile.REGTYPE),
        ("fifo", tarfile.FIFOTYPE),
        (".wh.gone", tarfile.REGTYPE),
        ("opq", tarfile.DIRTYPE),
        ("opq/.wh..wh..opq", tarfile.REGTYPE),
        ("opq/new", tarfile.REGTYPE),
        ("sym", tarfile.SYMTYPE),
        ("tool", tarfile.REGTYPE),
    ]  # the socket is not kept
    by_name = {m.name: m for m in entries}
    assert by_name["data/b"].linkname == "data/a"
    assert (by_name["dev/null"].devmajor, by_name["dev/null"].devminor) == (1, 3)
    assert by_name["sym"].linkname == "/abs/target"
    tool = by_name["tool"]
    assert (tool.mode, tool.uid, tool.gid) == (0o4755, 1000, 1000)
    assert tool.pax_headers["SCHILY.xattr.user.test"] == "hello"
    assert tool.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAP_NET_RAW
    assert all(not key.startswith("SCHILY.xattr.trusted.") for m in entries for key in m.pax_headers)
    assert all(m.uname == "" and m.gname == "" for m in entries)
    assert by_name["opq"].mode == 0o750


def test_commit_is_deterministic(tmp_path: Path) -> None:
    require_root()
    cp = require_tool("cp")
    upper = tmp_path / "upper"
    make_upper(upper)
    first, digests = commit(upper)
    second, again = commit(upper)
    assert first == second
    assert digests == again
    copy = tmp_path / "copy"  # same tree, other inodes: same bytes
    subprocess.run([cp, "-a", str(upper), str(copy)], check=True)
    assert commit(copy)[1] == digests


@pytest.mark.parametrize(
    ("name", "xattr"),
    [(".wh.sneaky", None), ("data", "trusted.overlay.metacopy"), ("dir", "trusted.overlay.redirect")],
    ids=["reserved-name", "metacopy", "redirect"],
)
def test_upper_dirs_that_cannot_be_layers_are_refused(tmp_path: Path, name: str, xattr: str | None) -> None:
    require_root()
    upper = tmp_path / "upper"
    upper.mkdir()
    path = upper / name
    if name == "dir":
        path.mkdir()
    else:
        path.write_bytes(b"x")
    if xattr is not None:
        os.setxattr(path, xattr, b"y")
    with pytest.raises(LayerDiffError, match=name):
        commit(upper)


# -------------------------------------------------------------------------------------------- real overlayfs


def base_layer() -> bytes:
    tar = TarBuilder().dir("etc").file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n").symlink("etc/link", "passwd")
    tar.dir("data", mode=0o755, uid=0, gid=100)
    for name in ("modify.txt", "delete.txt", "chmod.txt", "rename-me", "untouched"):
        tar.file(f"data/{name}", name.encode() * 10, mode=0o644)
    tar.file("data/hl1", b"linked").hardlink("data/hl2", "data/hl1")
    tar.dir("gone").file("gone/f", b"f").dir("opq", mode=0o750).file("opq/old1", b"1").dir("opq/sub")
    tar.file("opq/sub/old2", b"2").dir("bin")
    return tar.build("gzip")


def change_container(merged: Path) -> None:
    """What a user does in a running container."""
    (merged / "new.txt").write_bytes(b"new")
    os.chown(merged / "new.txt", 1000, 1000)
    os.setxattr(merged / "new.txt", "user.test", b"kept")
    os.link(merged / "new.txt", merged / "new-hardlink")
    (merged / "newdir").mkdir(mode=0o700)
    (merged / "newdir/inner").write_bytes(b"inner")
    with open(merged / "data/modify.txt", "r+b") as f:
        f.write(b"MODIFIED")
    (merged / "data/delete.txt").unlink()
    shutil.rmtree(merged / "gone")
    shutil.rmtree(merged / "opq")
    (merged / "opq").mkdir(mode=0o755)
    (merged / "opq/fresh").write_bytes(b"fresh")
    os.chmod(merged / "data/chmod.txt", 0o600)
    os.rename(merged / "data/rename-me", merged / "data/renamed")
    os.symlink("/etc/passwd", merged / "newlink")
    os.mkfifo(merged / "newfifo", 0o600)
    os.mknod(merged / "newdev", stat.S_IFCHR | 0o620, os.makedev(1, 3))
    (merged / "bin/suid").write_bytes(b"#!/bin/true\n")
    os.chmod(merged / "bin/suid", 0o4755)
    with open(merged / "etc/passwd", "ab") as f:
        f.write(b"user:x:1000:1000::/home/user:/bin/sh\n")


@pytest.mark.parametrize("with_lower", [False, True], ids=["upper-only", "with-lower"])
def test_commit_round_trip_through_real_overlayfs(tmp_path: Path, with_lower: bool) -> None:
    require_root()
    base = tmp_path / "base.tar.gz"
    base.write_bytes(base_layer())
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    apply_layers([("base", base)], lower)
    upper.mkdir()
    with overlay_mount([lower], tmp_path / "merged", upper=upper) as merged:
        change_container(merged)
        live_view = tree_manifest(merged)

    blob, digests = commit(upper, [lower] if with_lower else None)
    assert commit(upper, [lower] if with_lower else None) == (blob, digests)
    names = [m.name for m in members(blob)]
    assert {"data/.wh.delete.txt", ".wh.gone", "opq/.wh..wh..opq", "data/.wh.rename-me"} <= set(names)
    assert ("etc" in names) is not with_lower  # copied up only to hold etc/passwd: unchanged itself

    committed = tmp_path / "commit.tar.gz"
    committed.write_bytes(blob)
    rebuilt = tmp_path / "rebuilt"
    apply_layers([("base", base), (digests.digest, committed)], rebuilt)
    assert tree_manifest(rebuilt) == live_view
    assert os.lstat(rebuilt / "new.txt").st_ino == os.lstat(rebuilt / "new-hardlink").st_ino

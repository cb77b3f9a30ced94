"""The secure layer applier: malicious tars are refused whole, real images come out as docker makes them."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.applier import ApplyStats, LayerError, apply_layer, apply_layers
from tests.runtime.tarfactory import MTIME, TarBuilder, busybox_layer, overlay_mount, tree_manifest
from tests.support.tools import require_root, require_tool

LABEL = "sha256:feedface"
# security.capability v2 for cap_net_raw (bit 13) effective+permitted
CAP_NET_RAW = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


def apply_bytes(data: bytes, target: Path, **kwargs: object) -> ApplyStats:
    return apply_layer(io.BytesIO(data), target, label=LABEL, **kwargs)  # type: ignore[arg-type]


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, bytes]]:
    """Everything under ``top`` except ``skip``: path -> (mode, content or link target)."""
    seen: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            body = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(path).encode()
            seen[str(path)] = (st.st_mode, body)
    return seen


# -------------------------------------------------------------------------------------------- malicious layers

Case = Callable[[Path], tuple[bytes, str]]


def _dotdot(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().file("../escape", b"pwned").build(), "../escape"


def _absolute_dotdot(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().file("/../escape", b"pwned").build(), "/../escape"


def _nested_dotdot(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().dir("a").file("a/../../escape", b"pwned").build(), "a/../../escape"


def _overwrite_via_dotdot(outside: Path) -> tuple[bytes, str]:
    name = f"a/b/../../../{outside.name}/sentinel"
    return TarBuilder().dir("a").dir("a/b").file(name, b"pwned").build(), name


def _absolute_symlink_parent(outside: Path) -> tuple[bytes, str]:
    return TarBuilder().symlink("evil", str(outside)).file("evil/sentinel", b"pwned").build(), "evil/sentinel"


def _symlink_chain(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().symlink("a", "b").symlink("b", "../..").file("a/x", b"pwned").build(), "b"


def _symlink_chain_physical(_outside: Path) -> tuple[bytes, str]:
    # every link looks inside from where it is written, but following them climbs out: d/u -> .. , u -> d/u
    tar = TarBuilder().dir("d").symlink("d/u", "..").symlink("u", "d/u").symlink("d/s", "u/u/../..")
    return tar.file("d/s/x", b"pwned").build(), "d/s/x"


def _symlink_loop(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().symlink("a", "b").symlink("b", "a").file("a/x", b"loop").build(), "a/x"


def _hardlink_absolute(outside: Path) -> tuple[bytes, str]:
    return TarBuilder().hardlink("p", str(outside / "sentinel")).file("p", b"pwned").build(), "p"


def _hardlink_dotdot(outside: Path) -> tuple[bytes, str]:
    return TarBuilder().hardlink("h", f"../{outside.name}/sentinel").file("h", b"pwned").build(), "h"


def _hardlink_through_symlink(outside: Path) -> tuple[bytes, str]:
    tar = TarBuilder().symlink("lnk", str(outside)).hardlink("h", "lnk/sentinel").file("h", b"pwned")
    return tar.build(), "h"


def _hardlink_through_inner_symlink(_outside: Path) -> tuple[bytes, str]:
    tar = TarBuilder().dir("sub").file("sub/f", b"x").symlink("lnk", "sub").hardlink("h", "lnk/f")
    return tar.build(), "h"


def _hardlink_to_symlink(outside: Path) -> tuple[bytes, str]:
    tar = TarBuilder().symlink("s", str(outside / "sentinel")).hardlink("h", "s").file("h", b"pwned")
    return tar.build(), "h"


def _symlink_replaces_parent(outside: Path) -> tuple[bytes, str]:
    tar = TarBuilder().dir("d").file("d/a", b"ok").symlink("d", str(outside)).file("d/sentinel", b"pwned")
    return tar.build(), "d/sentinel"


def _relative_symlink_replaces_parent(outside: Path) -> tuple[bytes, str]:
    tar = TarBuilder().dir("d").file("d/a", b"ok").symlink("d", f"../{outside.name}").file("d/sentinel", b"pwned")
    return tar.build(), "d"


def _whiteout_through_symlink(outside: Path) -> tuple[bytes, str]:
    return TarBuilder().symlink("evil", str(outside)).whiteout("evil/sentinel").build(), "evil/.wh.sentinel"


def _opaque_through_symlink(outside: Path) -> tuple[bytes, str]:
    return TarBuilder().symlink("evil", str(outside)).opaque("evil").build(), "evil/.wh..wh..opq"


def _whiteout_dotdot(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().dir("a").file("a/.wh...", mode=0o600).build(), "a/.wh..."


def _file_under_a_file(_outside: Path) -> tuple[bytes, str]:
    return TarBuilder().file("f", b"x").file("f/g", b"y").build(), "f/g"


MALICIOUS: dict[str, Case] = {
    "dotdot": _dotdot,
    "absolute-dotdot": _absolute_dotdot,
    "nested-dotdot": _nested_dotdot,
    "overwrite-via-dotdot": _overwrite_via_dotdot,
    "absolute-symlink-parent": _absolute_symlink_parent,
    "symlink-chain": _symlink_chain,
    "symlink-chain-physical": _symlink_chain_physical,
    "symlink-loop": _symlink_loop,
    "hardlink-absolute": _hardlink_absolute,
    "hardlink-dotdot": _hardlink_dotdot,
    "hardlink-through-symlink": _hardlink_through_symlink,
    "hardlink-through-inner-symlink": _hardlink_through_inner_symlink,
    "hardlink-to-symlink": _hardlink_to_symlink,
    "symlink-replaces-parent": _symlink_replaces_parent,
    "relative-symlink-replaces-parent": _relative_symlink_replaces_parent,
    "whiteout-through-symlink": _whiteout_through_symlink,
    "opaque-through-symlink": _opaque_through_symlink,
    "whiteout-dotdot": _whiteout_dotdot,
    "file-under-a-file": _file_under_a_file,
}


@pytest.mark.parametrize("whiteout_format", ["oci", "overlay"])
@pytest.mark.parametrize("case", MALICIOUS.values(), ids=MALICIOUS.keys())
def test_malicious_layer_is_refused_whole(tmp_path: Path, case: Case, whiteout_format: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"original")
    target = tmp_path / "root"
    data, offending = case(outside)
    before = snapshot(tmp_path, target)

    with pytest.raises(LayerError) as caught:
        apply_bytes(data, target, whiteout_format=whiteout_format)

    message = str(caught.value)
    assert LABEL in message
    assert repr(offending) in message, message
    assert "\n" not in message
    assert not target.exists()
    assert snapshot(tmp_path, target) == before
    assert (outside / "sentinel").read_bytes() == b"original"


def test_refused_layer_over_lower_layers_removes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "root"
    apply_bytes(TarBuilder().dir("etc").file("etc/os-release", b"x").build(), target)
    with pytest.raises(LayerError, match=re.escape("'../x'")):
        apply_bytes(TarBuilder().file("ok", b"1").file("../x", b"2").build(), target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_apply_layers_is_all_or_nothing(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar.gz"
    good.write_bytes(TarBuilder().file("a", b"1").build())
    bad.write_bytes(TarBuilder().file("b", b"2").hardlink("c", "/etc/passwd").build("gzip"))
    target = tmp_path / "images" / "flat"
    with pytest.raises(LayerError, match=r"layer bad, entry 'c'"):
        apply_layers([("good", good), ("bad", bad)], target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no staging directory left behind


# -------------------------------------------------------------------------------------------- kept like docker


def test_edge_cases_are_kept_as_docker_keeps_them(tmp_path: Path) -> None:
    require_root()
    tar = (
        TarBuilder()
        .dir("./", mode=0o755)
        .dir("bin")
        .file("bin/su", b"#!/bin/true\n", mode=0o4755)
        .hardlink("bin/su-again", "bin/su")
        .file("bin/ping", b"ping", mode=0o755, xattrs={"security.capability": CAP_NET_RAW})
        .dir("home/user", mode=0o750, uid=1000, gid=1000)
        .file("home/user/notes", b"mine", mode=0o600, uid=1000, gid=1000, xattrs={"user.test": b"hello"})
        .file("home/user/blob", b"", xattrs={"user.binary": b"\x00\xff\x01"})
        .dir("srv", mode=0o2775, uid=0, gid=50)
        .dir("tmp", mode=0o1777)
        .dir("private", mode=0o700, mtime=MTIME - 99)
        .symlink("abs", "/etc/nowhere/../hostname", uid=1000, gid=1000, mtime=MTIME - 5)
        .fifo("run/fifo", mode=0o640)
        .device("dev/null", 1, 3, mode=0o666)
        .file("/etc/absolute-name", b"abs")
        .file("a/../b", b"lexical")
    )
    target = tmp_path / "root"
    stats = apply_bytes(tar.build(), target)

    assert stats == ApplyStats(entries=16, bytes=len(b"#!/bin/true\n") + 4 + 4 + 3 + 7, whiteouts=0)
    su = os.lstat(target / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert (su.st_uid, su.st_gid, su.st_mtime) == (0, 0, MTIME)
    assert os.lstat(target / "bin/su-again").st_ino == su.st_ino
    assert os.getxattr(target / "bin/ping", "security.capability") == CAP_NET_RAW
    home = os.lstat(target / "home/user")
    assert (stat.S_IMODE(home.st_mode), home.st_uid, home.st_gid, home.st_mtime) == (0o750, 1000, 1000, MTIME)
    notes = os.lstat(target / "home/user/notes")
    assert (stat.S_IMODE(notes.st_mode), notes.st_uid, notes.st_gid) == (0o600, 1000, 1000)
    assert os.getxattr(target / "home/user/notes", "user.test") == b"hello"
    assert os.getxattr(target / "home/user/blob", "user.binary") == b"\x00\xff\x01"
    assert stat.S_IMODE(os.lstat(target / "home").st_mode) == 0o755  # implicit parent, like docker
    assert (stat.S_IMODE(os.lstat(target / "srv").st_mode), os.lstat(target / "srv").st_gid) == (0o2775, 50)
    assert stat.S_IMODE(os.lstat(target / "tmp").st_mode) == 0o1777
    private = os.lstat(target / "private")
    assert (stat.S_IMODE(private.st_mode), private.st_mtime) == (0o700, MTIME - 99)
    abs_link = os.lstat(target / "abs")
    assert os.readlink(target / "abs") == "/etc/nowhere/../hostname"
    assert (abs_link.st_uid, abs_link.st_gid, abs_link.st_mtime) == (1000, 1000, MTIME - 5)
    fifo = os.lstat(target / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode)
    assert stat.S_IMODE(fifo.st_mode) == 0o640
    null = os.lstat(target / "dev/null")
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert (target / "etc/absolute-name").read_bytes() == b"abs"
    assert (target / "b").read_bytes() == b"lexical"
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o755


def test_later_layers_replace_update_and_follow_inner_symlinks(tmp_path: Path) -> None:
    require_root()
    target = tmp_path / "root"
    lower = (
        TarBuilder()
        .dir("x")
        .file("x/child", b"c")
        .file("y", b"file")
        .dir("d", mode=0o755)
        .file("d/keep", b"k")
        .dir("usr/lib")
        .symlink("lib", "usr/lib")
        .file("old", b"o")
    )
    apply_bytes(lower.build(), target)
    upper = (
        TarBuilder()
        .file("x", b"now a file")
        .dir("y", mode=0o711)
        .file("y/z", b"z")
        .dir("d", mode=0o700, uid=5, gid=6)
        .file("lib/libfoo.so", b"elf")
        .symlink("usr/lib/libbar.so", "../../lib/libfoo.so")
        .hardlink("old-again", "old")
    )
    apply_bytes(upper.build("gzip"), target)

    assert (target / "x").read_bytes() == b"now a file"
    assert stat.S_IMODE(os.lstat(target / "y").st_mode) == 0o711
    assert (target / "y/z").read_bytes() == b"z"
    d = os.lstat(target / "d")
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid) == (0o700, 5, 6)
    assert (target / "d/keep").read_bytes() == b"k"  # a dir entry over a dir only updates its metadata
    assert os.path.islink(target / "lib")
    assert (target / "usr/lib/libfoo.so").read_bytes() == b"elf"
    assert os.lstat(target / "old-again").st_ino == os.lstat(target / "old").st_ino  # hardlink to a lower file


def test_a_parent_replaced_mid_layer_is_resolved_again(tmp_path: Path) -> None:
    target = tmp_path / "root"
    tar = TarBuilder().dir("e").dir("d").file("d/a", b"a").symlink("d", "e").file("d/b", b"b").dir("d2")
    tar.file("d2/x", b"x").file("d2", b"now a file")
    apply_bytes(tar.build(), target)
    assert os.readlink(target / "d") == "e"
    assert sorted(os.listdir(target / "e")) == ["b"]
    assert (target / "d2").read_bytes() == b"now a file"


# -------------------------------------------------------------------------------------------- whiteouts


def _lower_for_whiteouts() -> bytes:
    tar = TarBuilder().dir("a").file("a/keep", b"k").file("a/gone", b"g").dir("a/gonedir").file("a/gonedir/f", b"f")
    tar.dir("o", mode=0o750).file("o/old", b"old").dir("o/sub").file("o/sub/old2", b"old2")
    return tar.build()


def _upper_for_whiteouts(opaque_first: bool) -> bytes:
    # parent directories come with their own entries, as in every layer a diff produces
    tar = TarBuilder().dir("a").whiteout("a/gone").whiteout("a/gonedir").whiteout("a/never-existed")
    tar.dir("o", mode=0o750)
    if opaque_first:
        tar.opaque("o")
    tar.file("o/new", b"new").dir("o/sub").file("o/sub/new2", b"new2").file("samelayer", b"s")
    if not opaque_first:
        tar.opaque("o")
    tar.whiteout("samelayer")  # a whiteout never hides an entry of its own layer
    return tar.build("gzip")


EXPECTED_AFTER_WHITEOUTS = ["a", "a/keep", "o", "o/new", "o/sub", "o/sub/new2", "samelayer"]


@pytest.mark.parametrize("opaque_first", [True, False], ids=["opaque-first", "opaque-last"])
def test_oci_whiteouts_hide_lower_content_only(tmp_path: Path, opaque_first: bool) -> None:
    target = tmp_path / "root"
    apply_bytes(_lower_for_whiteouts(), target)
    stats = apply_bytes(_upper_for_whiteouts(opaque_first), target)
    assert stats.whiteouts == 5
    assert sorted(tree_manifest(target)) == EXPECTED_AFTER_WHITEOUTS
    assert not any(name.startswith(".wh.") for name in os.listdir(target / "a"))


def test_overlay_whiteouts_are_what_overlayfs_reads(tmp_path: Path) -> None:
    require_root()
    layer1, layer2 = tmp_path / "l1", tmp_path / "l2"
    apply_bytes(_lower_for_whiteouts(), layer1, whiteout_format="overlay")
    apply_bytes(_upper_for_whiteouts(opaque_first=True), layer2, whiteout_format="overlay")

    for name in ("a/gone", "a/gonedir", "a/never-existed"):
        node = os.lstat(layer2 / name)
        assert stat.S_ISCHR(node.st_mode), name
        assert node.st_rdev == 0, name
    assert not (layer2 / "samelayer").is_char_device()
    assert os.getxattr(layer2 / "o", "trusted.overlay.opaque") == b"y"

    flat = tmp_path / "flat"
    apply_bytes(_lower_for_whiteouts(), flat)
    apply_bytes(_upper_for_whiteouts(opaque_first=True), flat)
    with overlay_mount([layer2, layer1], tmp_path / "merged") as merged:
        seen = tree_manifest(merged)
    assert sorted(seen) == EXPECTED_AFTER_WHITEOUTS
    assert seen == tree_manifest(flat)


# -------------------------------------------------------------------------------------------- streams


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek or tell, like a socket or an HTTP body; remembers how much is left unread."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 4096))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def left(self) -> int:
        return len(self._data.getbuffer()) - self._data.tell()


@pytest.mark.parametrize("compression", ["auto", "explicit"])
@pytest.mark.parametrize("kind", ["gzip", "none"])
def test_streams_are_read_once_and_to_the_end(tmp_path: Path, kind: str, compression: str) -> None:
    data = TarBuilder().file("f", b"x" * 100_000).build("gzip" if kind == "gzip" else "none")
    stream = OneWayStream(data)
    mode = "auto" if compression == "auto" else kind
    stats = apply_layer(stream, tmp_path / "root", label=LABEL, compression=mode)  # type: ignore[arg-type]
    assert stats.bytes == 100_000
    assert (tmp_path / "root/f").read_bytes() == b"x" * 100_000
    assert stream.left() == 0


def test_zstd_without_the_module_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    zstd_frame = b"\x28\xb5\x2f\xfd" + bytes(20)
    with pytest.raises(LayerError, match="zstandard"):
        apply_bytes(zstd_frame, tmp_path / "root")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a tar file at all" * 40,
        TarBuilder().file("f", b"y" * 50_000).build("gzip")[:-200],
        TarBuilder().file("f", b"y" * 50_000).build()[:20_000],
    ],
    ids=["garbage", "truncated-gzip", "truncated-tar"],
)
def test_corrupt_streams_are_refused_whole(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LayerError, match=LABEL):
        apply_bytes(data, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_wrong_compression_named_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"BadGzipFile|Not a gzipped file"):
        apply_bytes(TarBuilder().file("f", b"1").build(), tmp_path / "root", compression="gzip")


# -------------------------------------------------------------------------------------------- a real image


def test_busybox_layer_runs_in_a_chroot(tmp_path: Path) -> None:
    require_root()
    chroot = require_tool("chroot")
    blob = tmp_path / "busybox.tar.gz"
    blob.write_bytes(busybox_layer())
    root = tmp_path / "rootfs"
    apply_layers([("busybox", blob)], root)

    def run(*argv: str) -> str:
        done = subprocess.run([chroot, str(root), *argv], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    assert run("/bin/busybox", "echo", "ok") == "ok\n"
    assert run("/bin/echo", "via-symlink") == "via-symlink\n"
    assert run("/bin/sh", "-c", "echo $((6 * 7))") == "42\n"
    assert run("/bin/cat", "/etc/passwd").startswith("root:x:0:0")  # an applet reached through a hardlink
    assert run("/bin/stat", "-c", "%a", "/tmp") == "1777\n"

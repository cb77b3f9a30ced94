"""Hostile layer tars for ``test_runtime_layers.py`` beyond the applier's own corpus (``tests/runtime/test_applier.py``
``MALICIOUS``, reused as is): device nodes where a directory is expected, whiteouts of ``..``, over-long and
over-deep names, GNU sparse files claiming terabytes, and gzip bombs built from repeated gzip members (so that
building a bomb of gigabytes costs the test a few kilobytes and no time).

Also a canary snapshot (every path's type, mode, owner, size, content hash, link target, device) and a minimal
``/v2`` pusher for a live registry.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

from tests.runtime.tarfactory import ManifestEntry, TarBuilder, tree_manifest
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, digest

Outcome = Literal["refused", "contained"]
Build = Callable[[Path], bytes]
_BLOCK = 512


@dataclass(frozen=True)
class Case:
    """A hostile layer (built for a canary directory ``outside`` the target) and what the applier must do."""

    name: str
    build: Build
    outcome: Outcome


def canary(directory: Path) -> Path:
    """A small host directory next to the target: files, a subdirectory, a symlink, odd modes."""
    directory.mkdir()
    (directory / "sentinel").write_bytes(b"original")
    (directory / "sub").mkdir(mode=0o750)
    (directory / "sub" / "secret").write_bytes(b"host secret")
    (directory / "sub" / "secret").chmod(0o600)
    (directory / "link").symlink_to("sub/secret")
    return directory


def snapshot(directory: Path) -> dict[str, ManifestEntry]:
    """Everything under ``directory`` and ``directory`` itself (see ``tarfactory.tree_manifest``)."""
    found = tree_manifest(directory)
    st = directory.lstat()
    found["."] = (oct(st.st_mode), st.st_mode, st.st_uid, st.st_gid, 0, "", "", 0, ())
    return found


def sparse_member(name: str, real_size: int, data: bytes, offset: int) -> bytes:
    """A tar holding one PAX 1.0 GNU sparse file of ``real_size`` bytes: ``data`` at ``offset``, holes elsewhere."""
    sparse_map = f"1\n{offset}\n{len(data)}\n".encode()
    body = sparse_map + bytes(-len(sparse_map) % _BLOCK) + data
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(body)
    info.mode = 0o644
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(real_size),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def gzip_bomb(name: str, size: int, fill: bytes = b"\0", unit: int = 64 << 20) -> bytes:
    """A gzip layer with one regular file of ``size`` bytes of ``fill`` (``size`` a multiple of ``unit``):
    one gzip member for the header, the same compressed member of ``unit`` bytes repeated, one for the end."""
    assert size % unit == 0
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    header = info.tobuf(tarfile.PAX_FORMAT)
    chunk = gzip.compress(fill * unit, compresslevel=9, mtime=0)
    end = bytes(-size % _BLOCK) + bytes(2 * _BLOCK)
    return gzip.compress(header, mtime=0) + chunk * (size // unit) + gzip.compress(end, mtime=0)


def deep_tree(depth: int) -> bytes:
    """``d/d/.../d`` directories, ``depth`` levels, and a file at the bottom."""
    tar, name = TarBuilder(), "d"
    for _ in range(depth):
        tar.dir(name)
        name += "/d"
    return tar.file(name.removesuffix("/d") + "/bottom", b"deep").build()


# -- the cases not in tests/runtime/test_applier.py ----------------------------------------------------------


def _device_as_parent(_outside: Path) -> bytes:
    return TarBuilder().device("etc", 1, 3).file("etc/passwd", b"root::0:0::/:/bin/sh\n").build()


def _hardlink_to_device(_outside: Path) -> bytes:
    return TarBuilder().dir("dev").device("dev/null", 1, 3).hardlink("h", "dev/null").build()


def _host_disk_node(_outside: Path) -> bytes:
    # Kept as docker keeps device nodes, but only inside the root (the container's /dev is a fresh tmpfs anyway).
    return TarBuilder().device("dev/sda", 8, 0, block=True).device("kmem", 1, 2).build()


def _absolute_names(outside: Path) -> bytes:
    return TarBuilder().file(str(outside / "sentinel"), b"pwned").file(f"/{outside.name}/sub/x", b"y").build()


def _whiteout_of_parent(outside: Path) -> bytes:
    return TarBuilder().file(f"../.wh.{outside.name}", mode=0o600).build()


def _opaque_above_root(_outside: Path) -> bytes:
    return TarBuilder().file("../.wh..wh..opq", mode=0o600).build()


def _whiteout_of_dot(_outside: Path) -> bytes:
    return TarBuilder().file(".wh..", mode=0o600).build()


def _whiteout_of_root_via_dotdot(outside: Path) -> bytes:
    return TarBuilder().dir("a").file(f"a/../../{outside.name}/.wh.sentinel", mode=0o600).build()


def _long_component(_outside: Path) -> bytes:
    return TarBuilder().file("x" * 300, b"long").build()


def _long_name(_outside: Path) -> bytes:
    return TarBuilder().file("/".join(["y" * 200] * 30), b"long").build()


def _deep_10000(_outside: Path) -> bytes:
    return deep_tree(10_000)


def _deep_via_symlinks(_outside: Path) -> bytes:
    # Each name is short, but the real path behind ``l`` grows by 400 levels: deeper than the name says.
    tar = TarBuilder().dir("/".join(["p"] * 400))
    return tar.symlink("l", "/".join(["p"] * 400)).file("l/" + "/".join(["q"] * 200) + "/f", b"deep").build()


def _sparse_exabytes(_outside: Path) -> bytes:
    return sparse_member("huge", 1 << 62, b"tail", 1 << 61)


EXTRA: tuple[Case, ...] = (
    Case("device-node-as-parent-dir", _device_as_parent, "refused"),
    Case("hardlink-to-device-node", _hardlink_to_device, "refused"),
    Case("host-disk-device-nodes", _host_disk_node, "contained"),
    Case("absolute-names-of-the-host", _absolute_names, "contained"),
    Case("whiteout-of-parent-dir", _whiteout_of_parent, "refused"),
    Case("opaque-whiteout-above-root", _opaque_above_root, "refused"),
    Case("whiteout-of-dot", _whiteout_of_dot, "refused"),
    Case("whiteout-through-dotdot", _whiteout_of_root_via_dotdot, "refused"),
    Case("component-over-255-bytes", _long_component, "refused"),
    Case("name-over-path-max", _long_name, "refused"),
    Case("tree-10000-deep", _deep_10000, "refused"),
    Case("tree-deepened-by-symlink", _deep_via_symlinks, "refused"),
    Case("sparse-file-of-4-exabytes", _sparse_exabytes, "refused"),
)


# -- a live registry ------------------------------------------------------------------------------------------


def push_layer(base_url: str, name: str, tag: str, layer_tar: bytes) -> str:
    """Push a one-layer image (gzip layer ``layer_tar``) with plain ``/v2`` requests; its reference."""
    blob = gzip.compress(layer_tar, mtime=0)
    rootfs = {"type": "layers", "diff_ids": [digest(layer_tar)]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs, "config": {}}).encode()
    for data in (config, blob):
        resp = requests.post(f"{base_url}/v2/{name}/blobs/uploads/?digest={digest(data)}", data=data, timeout=30)
        assert resp.status_code == 201, resp.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, blob)],
    }
    resp = requests.put(
        f"{base_url}/v2/{name}/manifests/{tag}",
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return f"{base_url.removeprefix('http://')}/{name}:{tag}"

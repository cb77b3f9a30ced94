"""Offline test images: a busybox-static rootfs packed with :mod:`tarfile`, written as OCI image layouts.

Nothing here touches the network. Every tar is deterministic (sorted entries, fixed mtime, uid/gid 0,
no user/group names) and every gzip stream has a zero timestamp, so the same inputs always give the
same digests. The busybox layer is the slow part (about 2 MB to compress): :class:`ImageFactory` makes
it once and reuses it for every image, whose unique ``/hello.txt`` layer then costs a few milliseconds.

Layout written (OCI image-layout 1.0)::

    DIR/oci-layout                 {"imageLayoutVersion": "1.0.0"}
    DIR/index.json                 one descriptor per tag (annotation org.opencontainers.image.ref.name)
    DIR/blobs/sha256/<hex>         layers, configs, manifests and indexes
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.tools import require_tool

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

BUSYBOX = Path("/bin/busybox")
APPLETS: tuple[str, ...] = ("sh", "echo", "cat", "ls", "true", "false", "env", "sleep", "wc", "sha256sum")
MTIME = 1_700_000_000  # fixed mtime of every tar entry (2023-11-14)
CREATED = "2023-11-14T22:13:20Z"  # the same instant, for the image config
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The compact, key-sorted JSON encoding used for every config, manifest and index written here."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class TarEntry:
    """One member of a layer tar: a directory, a regular file or a symlink."""

    path: str
    kind: str  # "dir", "file" or "symlink"
    data: bytes = b""
    target: str = ""
    mode: int = 0o755


def _tar_info(entry: TarEntry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
        info.mode = 0o777
    elif entry.kind == "file":
        info.type = tarfile.REGTYPE
        info.size = len(entry.data)
    else:
        raise ValueError(f"unknown tar entry kind {entry.kind!r}")
    return info


def make_tar(entries: Iterable[TarEntry]) -> bytes:
    """A deterministic, uncompressed POSIX tar of ``entries`` (sorted by path)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.path):
            info = _tar_info(entry)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buffer.getvalue()


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Deterministic gzip (no file name, zero timestamp)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def random_bytes(size: int, seed: str) -> bytes:
    """``size`` pseudo-random (incompressible, reproducible) bytes."""
    return random.Random(seed).randbytes(size)


def busybox_entries(busybox: Path = BUSYBOX, applets: Sequence[str] = APPLETS) -> list[TarEntry]:
    """A minimal rootfs: ``/bin/busybox``, applet symlinks, and the usual empty top-level directories."""
    entries = [TarEntry(f"{d}/", "dir") for d in ("bin", "etc", "tmp", "usr", "usr/bin", "var")]
    entries.append(TarEntry("bin/busybox", "file", busybox.read_bytes(), mode=0o755))
    entries += [TarEntry(f"bin/{applet}", "symlink", target="busybox") for applet in applets]
    entries.append(TarEntry("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644))
    entries.append(TarEntry("etc/group", "file", b"root:x:0:\n", mode=0o644))
    return entries


@dataclass(frozen=True)
class Layer:
    """A layer as pushed (gzip ``blob``) and as unpacked (``tar``, whose digest is the diff_id)."""

    tar: bytes
    blob: bytes
    comment: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.blob)

    @property
    def diff_id(self) -> str:
        return sha256_digest(self.tar)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_LAYER_GZIP, "digest": self.digest, "size": len(self.blob)}


def layer_from_entries(entries: Iterable[TarEntry], comment: str) -> Layer:
    """Pack and compress one layer."""
    tar = make_tar(entries)
    return Layer(tar, gzip_bytes(tar), comment)


def image_config(
    layers: Sequence[Layer],
    architecture: str,
    labels: Mapping[str, str] | None = None,
    process: Mapping[str, Any] | None = None,
) -> bytes:
    """An OCI image config for ``layers``: rootfs.diff_ids, one history entry per layer, and ``process`` as
    its ``config`` section (default: PATH, ``Cmd ["/bin/sh"]``, WorkingDir ``/`` and ``labels``)."""
    default = {"Env": [PATH_ENV], "Cmd": ["/bin/sh"], "WorkingDir": "/", "Labels": dict(labels or {})}
    config: dict[str, Any] = {
        "created": CREATED,
        "architecture": architecture,
        "os": "linux",
        "config": dict(process) if process is not None else default,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": layer.comment} for layer in layers],
    }
    if architecture == "arm64":
        config["variant"] = "v8"
    return canonical_json(config)


@dataclass(frozen=True)
class Image:
    """One single-platform image written into an OCI layout under ``tag``."""

    layout: Path
    tag: str
    manifest: bytes
    config: bytes
    layers: tuple[Layer, ...]
    architecture: str = "amd64"

    @property
    def digest(self) -> str:
        """The manifest digest (what a registry must answer in ``Docker-Content-Digest``)."""
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        """The config digest: docker's and podman's image id."""
        return sha256_digest(self.config)

    @property
    def image_id(self) -> str:
        """The id docker and podman give this image (the hex of the config digest)."""
        return self.config_digest.removeprefix("sha256:")

    @property
    def oci_ref(self) -> str:
        """The skopeo/podman transport reference of this image in its layout: ``oci:DIR:TAG``."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def blob_digests(self) -> list[str]:
        """Config and layer digests, as the manifest lists them."""
        return [self.config_digest, *(layer.digest for layer in self.layers)]

    def hello_text(self) -> bytes:
        """The content of ``/hello.txt`` in the topmost layer that has it (empty when none has)."""
        for layer in reversed(self.layers):
            with tarfile.open(fileobj=io.BytesIO(layer.tar)) as tar:
                if "hello.txt" in tar.getnames():
                    member = tar.extractfile("hello.txt")
                    return member.read() if member is not None else b""
        return b""


@dataclass(frozen=True)
class MultiArchImage:
    """An OCI image index (several platforms) written into an OCI layout under ``tag``."""

    layout: Path
    tag: str
    index: bytes
    children: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.index)

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    def platforms(self) -> list[str]:
        """``os/architecture`` of each manifest in the index, in index order."""
        doc = json.loads(self.index)
        return [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in doc["manifests"]]


class OciLayout:
    """Writes blobs and tagged manifests into an OCI image layout directory (thread-safe index updates)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (root / "index.json").exists():
            self._write_index([])

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_part = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_part

    def add_blob(self, data: bytes) -> str:
        """Store ``data`` (once) and return its digest."""
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        tmp = self.root / "index.json.tmp"
        tmp.write_bytes(canonical_json(index))
        tmp.replace(self.root / "index.json")

    def index(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.root / "index.json").read_bytes())
        return doc

    def tag(self, tag: str, media_type: str, body: bytes, platform: Mapping[str, str] | None = None) -> None:
        """Point ``tag`` at the manifest or index ``body`` (replacing an older descriptor of that tag)."""
        descriptor: dict[str, Any] = {
            "mediaType": media_type,
            "digest": self.add_blob(body),
            "size": len(body),
            "annotations": {REF_NAME: tag},
        }
        if platform:
            descriptor["platform"] = dict(platform)
        with self._lock:
            manifests = [m for m in self.index()["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
            self._write_index([*manifests, descriptor])

    def manifest_for(self, tag: str) -> bytes:
        """The manifest (or index) bytes that ``tag`` points at."""
        for descriptor in self.index()["manifests"]:
            if descriptor.get("annotations", {}).get(REF_NAME) == tag:
                return self.read_blob(descriptor["digest"])
        raise KeyError(f"tag {tag!r} not in {self.root}")

    def all_blobs(self) -> dict[str, bytes]:
        """Every blob of the layout, by digest."""
        folder = self.root / "blobs" / "sha256"
        return {f"sha256:{p.name}": p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _platform(architecture: str) -> dict[str, str]:
    platform = {"architecture": architecture, "os": "linux"}
    if architecture == "arm64":
        platform["variant"] = "v8"
    return platform


@dataclass
class ImageFactory:
    """Builds test images into one session-wide OCI layout; the busybox layer is made once and shared."""

    root: Path
    busybox: Path = BUSYBOX
    _base: Layer | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.layout = OciLayout(self.root)

    @property
    def base_layer(self) -> Layer:
        """The busybox rootfs layer (built on first use)."""
        with self._lock:
            if self._base is None:
                if not self.busybox.is_file():
                    self.busybox = Path(require_tool("busybox"))  # skips locally, fails under CI
                self._base = layer_from_entries(busybox_entries(self.busybox), "busybox-static rootfs")
            return self._base

    def _unique(self, label: str) -> str:
        with self._lock:
            self._count += 1
            return f"{label}-{self._count}-{self.root.name}"

    def hello_layer(self, content: bytes) -> Layer:
        """A layer holding only ``/hello.txt`` with ``content``."""
        return layer_from_entries(
            [TarEntry("hello.txt", "file", content, mode=0o644)], f"ADD hello.txt ({len(content)} bytes)"
        )

    def random_layer(self, size: int, seed: str) -> Layer:
        """A layer holding ``/blob.bin``: ``size`` incompressible bytes (for uploads of several MiB)."""
        data = random_bytes(size, seed)
        tar = make_tar([TarEntry("blob.bin", "file", data, mode=0o644)])
        return Layer(tar, gzip_bytes(tar, level=1), f"ADD blob.bin ({size} random bytes)")

    def image(
        self,
        tag: str,
        *,
        hello: bytes | None = None,
        architecture: str = "amd64",
        extra_layers: Sequence[Layer] = (),
        labels: Mapping[str, str] | None = None,
        write_tag: bool = True,
    ) -> Image:
        """A multi-layer image (busybox, then a unique ``/hello.txt``, then ``extra_layers``), tagged ``tag``."""
        content = hello if hello is not None else f"hello from {self._unique(tag)}\n".encode()
        layers = (self.base_layer, self.hello_layer(content), *extra_layers)
        return self.add_image(tag, layers, image_config(layers, architecture, labels), architecture, write_tag)

    def add_image(
        self,
        tag: str,
        layers: Sequence[Layer],
        config: bytes,
        architecture: str = "amd64",
        write_tag: bool = True,
    ) -> Image:
        """Write an image of ``layers`` with ``config`` (see :func:`image_config`) into the layout."""
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
                "layers": [layer.descriptor() for layer in layers],
            }
        )
        for layer in layers:
            self.layout.add_blob(layer.blob)
        self.layout.add_blob(config)
        self.layout.add_blob(manifest)
        if write_tag:
            self.layout.tag(tag, OCI_MANIFEST, manifest)
        return Image(self.root, tag, manifest, config, tuple(layers), architecture)

    def multi_arch(self, tag: str, architectures: Sequence[str] = ("amd64", "arm64")) -> MultiArchImage:
        """An OCI index with one image per architecture (they share the busybox layer, only pushed and pulled)."""
        unique = self._unique(tag)
        children = tuple(
            self.image(f"{tag}-{arch}", hello=f"{unique} on {arch}\n".encode(), architecture=arch, write_tag=False)
            for arch in architectures
        )
        index = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": child.digest,
                        "size": len(child.manifest),
                        "platform": _platform(child.architecture),
                    }
                    for child in children
                ],
            }
        )
        self.layout.tag(tag, OCI_INDEX, index)
        return MultiArchImage(self.root, tag, index, children)


def write_docker_archive(image: Image, path: Path, repo_tags: Sequence[str]) -> Path:
    """Write ``image`` as a ``docker save`` tarball (what ``docker load`` reads), with uncompressed layer tars."""
    config_name = f"{image.image_id}.json"
    entries = [TarEntry(config_name, "file", image.config, mode=0o644)]
    layer_names: list[str] = []
    for layer in image.layers:
        folder = layer.diff_id.removeprefix("sha256:")
        entries.append(TarEntry(f"{folder}/", "dir"))
        entries.append(TarEntry(f"{folder}/layer.tar", "file", layer.tar, mode=0o644))
        entries.append(TarEntry(f"{folder}/VERSION", "file", b"1.0", mode=0o644))
        layer_names.append(f"{folder}/layer.tar")
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    entries.append(TarEntry("manifest.json", "file", json.dumps(manifest).encode(), mode=0o644))
    path.write_bytes(make_tar(entries))
    return path

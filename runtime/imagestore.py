"""The local image store: content-addressed blobs and the names that point at image manifests.

Layout under ``root``::

    root/blobs/sha256/<hex>             every blob (manifests, configs, layers), verified before it is renamed here
    root/blobs/sha256/.<hex>.partial    a download in progress (resumable; its writer holds an flock on it)
    root/tmp/                           temp files of imports (same file system, so publishing is a rename)
    root/images.json                    {"version": 1, "images": {NAME: record}, "sources": {DIGEST: [REPO, ...]}}
    root/images.lock                    flock'd around every read-modify-write of images.json

``NAME`` is a normalised reference: ``registry/repository:tag``, ``registry/repository@digest`` for an image pulled
by digest, or ``<none>@<manifest digest>`` for an unnamed image loaded from an archive. A record holds the manifest
digest, the config digest (the image id, as docker and podman compute it), the media type, the index digest the
manifest was picked from (if any), the config's ``created`` and the size of config and layers. ``sources`` remembers
in which ``registry/repository`` each blob is known to exist, for cross-repository mounts on push.

Concurrency: ``images.json`` is replaced atomically (temp file + rename), so readers take no lock; writers hold an
exclusive ``flock`` of ``images.lock``. Blobs are downloaded outside the lock; an image is recorded under the lock
only after checking that every blob it needs is still present (a concurrent ``rmi`` may have deleted a shared one,
which is then fetched again). ``rmi`` deletes, under the lock, only blobs that no remaining image needs.

Errors are :class:`ImageStoreError` subclasses with one-line messages; registry errors come from
:mod:`runtime.manifests`, reference errors from :mod:`runtime.references`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runtime.manifests import (
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    ManifestError,
    NullProgress,
    Platform,
    Progress,
    digest_of,
    select_platform,
)
from runtime.references import InvalidReferenceError, Reference, parse

if TYPE_CHECKING:  # the client (aiohttp) is imported only by those who talk to a registry
    import asyncio

    from runtime.distribution import RegistryClient

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SAVEABLE_LAYER_TYPES = frozenset(
    {OCI_LAYER, OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar"}
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
UNNAMED = "<none>"
DEFAULT_CONCURRENCY = 6  # transfers at once, as podman and skopeo (docker: 3)
_DIGEST_RE = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_COPY_CHUNK = 1 << 20
_MAX_JSON = 4 << 20
_RECORD_ATTEMPTS = 3
_MAX_INDEX_DEPTH = 4


class ImageStoreError(Exception):
    """A local store problem; the message is one line."""


class ImageNotFoundError(ImageStoreError):
    """No image has that name or id."""


class ImageConflictError(ImageStoreError):
    """The request is ambiguous or would remove more than asked (an id naming several images without force)."""


class ArchiveError(ImageStoreError):
    """A tar given to :meth:`ImageStore.load` is not a valid image archive, or an image cannot be saved."""


@dataclass(frozen=True)
class ImageRecord:
    """One name of a local image."""

    name: str
    manifest_digest: str
    config_digest: str
    media_type: str
    index_digest: str | None
    created: str | None
    size: int

    @property
    def id(self) -> str:
        """The image id: the config digest (what ``docker images --no-trunc`` shows)."""
        return self.config_digest

    @property
    def reference(self) -> Reference | None:
        """The name as a :class:`Reference`, or None for an unnamed image."""
        return None if self.name.startswith(UNNAMED) else parse(self.name)

    @classmethod
    def from_json(cls, name: str, doc: dict[str, Any]) -> ImageRecord:
        return cls(
            name,
            str(doc["manifest_digest"]),
            str(doc["config_digest"]),
            str(doc["media_type"]),
            doc.get("index_digest"),
            doc.get("created"),
            int(doc.get("size", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["name"]
        return doc


@dataclass(frozen=True)
class LayerInfo:
    """A layer of a local image: its blob, the digest of its uncompressed tar, and where the blob is."""

    digest: str
    diff_id: str
    media_type: str
    size: int
    path: Path


@dataclass(frozen=True)
class RemoveResult:
    """What :meth:`ImageStore.rmi` did: names removed and blobs deleted."""

    untagged: list[str]
    deleted: list[str]


@dataclass
class _State:
    images: dict[str, dict[str, Any]]
    sources: dict[str, list[str]]


def check_digest(digest: str) -> str:
    """``digest`` if it is a well-formed sha256/sha512 digest (safe to use in a path); else ImageStoreError."""
    if not _DIGEST_RE.fullmatch(digest):
        raise ImageStoreError(f"invalid digest {digest!r}")
    return digest


class ImageStore:
    """The content store and image names under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- blobs --------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where blob ``digest`` lives (whether or not it exists)."""
        algorithm, _, hex_part = check_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hex_part

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str, limit: int = _MAX_JSON) -> bytes:
        """The bytes of a small blob (manifest, config); ImageStoreError when missing or over ``limit``."""
        path = self.blob_path(digest)
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise ImageStoreError(f"blob {digest} is missing from the store {self.root}") from None
        if len(data) > limit:
            raise ImageStoreError(f"blob {digest} is larger than {limit} bytes")
        return data

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` (verified against ``digest`` when given); returns its digest."""
        return self.import_blob(io.BytesIO(data), digest, len(data))

    def import_blob(self, stream: IO[bytes], digest: str | None = None, size: int | None = None) -> str:
        """Copy ``stream`` into the store through a temp file, hashing as it goes; the file is renamed into place
        only when the digest (and ``size``, if given) match. Returns the digest."""
        algorithm = check_digest(digest).partition(":")[0] if digest else "sha256"
        if digest is not None and self.has_blob(digest):
            return digest
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="blob-", dir=tmp_dir)
        try:
            actual, written = _copy_hashed(stream, fd, algorithm)
            if digest is not None and actual != digest:
                raise ImageStoreError(f"blob {digest} has the wrong content (its digest is {actual})")
            if size is not None and written != size:
                raise ImageStoreError(f"blob {actual} has {written} bytes, expected {size}")
            dest = self.blob_path(actual)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            return actual
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- images -------------------------------------------------------------------------------------

    def images(self) -> list[ImageRecord]:
        """Every name of every local image, sorted by name."""
        state = self._read_state()
        return [ImageRecord.from_json(name, doc) for name, doc in sorted(state.images.items())]

    def get(self, text: str) -> ImageRecord:
        """The image named ``text`` (any docker spelling: ``busybox``, ``host/ns/app:1.0``...), else the one whose
        id (config digest) starts with ``text`` (with or without ``sha256:``). Raises ImageNotFoundError."""
        state = self._read_state()
        name = _name_key(text)
        if name is not None and name in state.images:
            return ImageRecord.from_json(name, state.images[name])
        return _by_id(state, text)

    def add_image(self, name: str | None, manifest_body: bytes, index_digest: str | None = None) -> ImageRecord:
        """Record the image manifest ``manifest_body`` under ``name`` (a reference; None records it unnamed). Its
        config and layers must already be in the store (:meth:`write_blob`, :meth:`import_blob`): this is how an
        image made locally (``commit``) joins the store."""
        manifest = Manifest.parse(manifest_body, digest_of(manifest_body), OCI_MANIFEST, f"image {name}")
        if manifest.is_index:
            raise ImageStoreError(f"image {name}: an index cannot be recorded as an image")
        key = _pulled_name(parse(name)) if name is not None else f"{UNNAMED}@{manifest.digest}"
        self.write_blob(manifest_body, manifest.digest)
        record = self._record(key, manifest, index_digest)
        missing = self._commit([record], {})
        if missing:
            raise ImageStoreError(f"image {key}: blob {missing[0]} is not in the store")
        return record

    def manifest(self, text: str) -> Manifest:
        """The parsed manifest of a local image."""
        record = self.get(text)
        body = self.read_blob(record.manifest_digest)
        return Manifest.parse(body, record.manifest_digest, record.media_type, f"image {record.name}")

    def image_config(self, text: str) -> dict[str, Any]:
        """The parsed image config (``config``, ``rootfs``, ``history``...) of a local image."""
        record = self.get(text)
        return _json_object(self.read_blob(record.config_digest), f"config of {record.name}")

    def layers(self, text: str) -> list[LayerInfo]:
        """The layers of a local image, bottom first, with their diff ids from the config."""
        manifest = self.manifest(text)
        diff_ids = _diff_ids(self.image_config(text), len(manifest.layers), text)
        return [
            LayerInfo(layer.digest, diff_id, layer.media_type, layer.size, self.blob_path(layer.digest))
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
        ]

    def tag(self, src: str, dst: str) -> ImageRecord:
        """Give the image ``src`` the additional name ``dst`` (a tag, never a digest), replacing what ``dst`` named."""
        record = self.get(src)
        target = parse(dst)
        if target.digest is not None:
            raise ImageStoreError(f"refusing to create a tag with a digest reference: {dst}")
        new = replace(record, name=str(target))
        missing = self._commit([new], {})
        if missing:
            raise ImageStoreError(f"cannot tag {src}: its blob {missing[0]} is missing from the store")
        return new

    def prune(self, grace: float = 3600.0) -> list[str]:
        """Delete blobs no image needs, and abandoned partial downloads, last written more than ``grace`` seconds
        ago (a pull records its image only after its downloads end, so younger files may be about to be used; if
        one is deleted anyway the pull fetches it again). Returns the digests of the deleted blobs."""
        deleted: list[str] = []
        with self._transaction() as state:
            needed = self._needed(state)
            for path in _older_than(self.root / "tmp", "*", grace) + _older_than(self.root / "blobs", "*/*", grace):
                digest = f"{path.parent.name}:{path.name}"
                if path.parent.name == "tmp" or path.name.startswith("."):
                    _unlink(path)
                elif digest not in needed:
                    _unlink(path)
                    deleted.append(digest)
                    state.sources.pop(digest, None)
        return deleted

    def rmi(self, text: str, force: bool = False) -> RemoveResult:
        """Remove a name; when ``text`` is an id naming several images, all of them only with ``force``. Blobs no
        remaining image needs are deleted."""
        with self._transaction() as state:
            names = self._names_to_remove(state, text, force)
            removed = [ImageRecord.from_json(n, state.images.pop(n)) for n in names]
            doomed = sorted({d for record in removed for d in self._blobs_of(record)} - self._needed(state))
            for digest in doomed:
                with contextlib.suppress(FileNotFoundError):
                    self.blob_path(digest).unlink()
                state.sources.pop(digest, None)
        return RemoveResult(names, doomed)

    # -- pull and push ------------------------------------------------------------------------------

    async def pull(
        self,
        ref: Reference,
        client: RegistryClient,
        platform: Platform | None = None,
        progress: Progress | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> ImageRecord:
        """Pull ``ref`` (an index resolves to ``platform``, default the host's): missing blobs are downloaded in
        parallel (at most ``concurrency`` at once) and verified; blobs already here are not transferred."""
        progress = progress or NullProgress()
        manifest = await client.resolve(ref, platform)
        if manifest.config.media_type not in CONFIG_TYPES:
            raise ImageStoreError(f"{ref} is not a container image (config media type {manifest.config.media_type})")
        name = _pulled_name(ref)
        for _ in range(_RECORD_ATTEMPTS):
            self.write_blob(manifest.body, manifest.digest)
            await self._download(ref, client, manifest.blobs(), progress, concurrency)
            record = self._record(name, manifest, manifest.index_digest)
            sources = {d.digest: ref.name for d in [*manifest.blobs()]}
            if not self._commit([record], sources):
                return record
        raise ImageStoreError(f"{ref}: blobs kept disappearing while the image was recorded; try again")

    async def push(
        self,
        text: str,
        client: RegistryClient,
        progress: Progress | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> str:
        """Push the local image named ``text`` to the registry and repository its name says; only blobs the
        repository lacks are sent (``HEAD`` first, then a cross-repository mount from a repository of the same
        registry known to hold the blob, then an upload). Returns the manifest digest."""
        record = self.get(text)
        ref = record.reference
        if ref is None:
            raise ImageStoreError(f"image {text} has no name to push to; tag it first")
        manifest = self.manifest(record.name)
        progress = progress or NullProgress()
        sources = self._read_state().sources
        semaphore = _semaphore(concurrency)

        async def one(blob: Descriptor) -> None:
            async with semaphore:
                await self._upload(ref, client, blob, sources.get(blob.digest, []), progress)

        await _gather_first_error([one(blob) for blob in _unique(manifest.blobs())])
        digest = await client.push_manifest(ref, manifest.body, manifest.media_type)
        self._commit([], {blob.digest: ref.name for blob in manifest.blobs()})
        return digest

    async def _download(
        self,
        ref: Reference,
        client: RegistryClient,
        blobs: list[Descriptor],
        progress: Progress,
        concurrency: int,
    ) -> None:
        semaphore = _semaphore(concurrency)

        async def one(blob: Descriptor) -> None:
            progress.begin(blob.digest, blob.size, "download")
            if self.has_blob(blob.digest):
                progress.end(blob.digest, "exists")
                return
            async with semaphore:
                try:
                    dest = self.blob_path(blob.digest)
                    await client.pull_blob(
                        ref, blob.digest, dest, lambda d, _t: progress.update(blob.digest, d), blob.size
                    )
                except BaseException:
                    progress.end(blob.digest, "failed")
                    raise
            progress.end(blob.digest, "done")

        await _gather_first_error([one(blob) for blob in _unique(blobs)])

    async def _upload(
        self, ref: Reference, client: RegistryClient, blob: Descriptor, known_in: list[str], progress: Progress
    ) -> None:
        progress.begin(blob.digest, blob.size, "upload")
        try:
            if await client.blob_exists(ref, blob.digest):
                progress.end(blob.digest, "exists")
                return
            for source in _mount_sources(ref, known_in):
                if await client.mount_blob(ref, blob.digest, source):
                    progress.end(blob.digest, "mounted")
                    return
            path = self.blob_path(blob.digest)
            await client.push_blob(ref, path, blob.digest, lambda d, _t: progress.update(blob.digest, d))
        except BaseException:
            progress.end(blob.digest, "failed")
            raise
        progress.end(blob.digest, "done")

    # -- save and load ------------------------------------------------------------------------------

    def save(self, texts: Iterable[str], out: Path) -> None:
        """Write the images to ``out``: an OCI image layout tar (``oci-layout``, ``index.json``, ``blobs/``) that
        also carries docker's ``manifest.json`` (``Config``, ``RepoTags``, ``Layers`` pointing at the blobs), so
        ``docker load``, ``podman load`` and :meth:`load` all accept it. Layers must be tar or tar+gzip."""
        records = list({record.name: record for record in map(self.get, texts)}.values())
        if not records:
            raise ArchiveError("nothing to save: name at least one image")
        manifests = {r.manifest_digest: self.manifest(r.name) for r in records}
        for manifest in manifests.values():
            _check_saveable(manifest)
        blobs = _unique([blob for m in manifests.values() for blob in m.blobs()])
        index = _archive_index(records, manifests)
        docker_manifest = _archive_docker_manifest(records, manifests)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                _add_dir(tar, "blobs/")
                _add_dir(tar, "blobs/sha256/")
                for digest in [*manifests, *(blob.digest for blob in blobs)]:
                    _add_file(tar, _blob_member(digest), self.blob_path(digest))
                _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
                _add_bytes(tar, "index.json", _canonical(index))
                _add_bytes(tar, "manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def load(self, archive: Path) -> list[ImageRecord]:
        """Import every image of an OCI image layout tar (preferred when ``index.json`` is present) or a
        ``docker save`` archive (``manifest.json``); names come from the index annotations or ``RepoTags``.
        Every blob is verified against its digest. Returns the records created."""
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = {_member_name(m.name): m for m in tar.getmembers()}
                if "index.json" in members:
                    return self._load_oci(_Archive(tar, members, archive))
                if "manifest.json" in members:
                    return self._load_docker(_Archive(tar, members, archive))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{archive}: not a readable tar archive ({exc})") from None
        raise ArchiveError(
            f"{archive}: neither an OCI image layout nor a docker archive (no index.json or manifest.json)"
        )

    def _load_oci(self, archive: _Archive) -> list[ImageRecord]:
        index = _json_object(archive.read("index.json"), f"{archive.path}: index.json")
        tags = _repo_tags_by_config(archive)
        records: list[ImageRecord] = []
        for entry in _index_entries(index, archive):
            manifest = self._load_manifest(archive, entry)
            for blob in manifest.blobs():
                self._import_member(archive, blob)
            self.write_blob(manifest.body, manifest.digest)
            names = _names_from_annotations(entry.annotations) or tags.get(manifest.config.digest, [])
            records += [self._record(n, manifest, None) for n in names or [f"{UNNAMED}@{manifest.digest}"]]
        return self._commit_loaded(records, archive)

    def _load_manifest(self, archive: _Archive, entry: Descriptor, depth: int = 0) -> Manifest:
        """The image manifest of an index entry (nested indexes resolve to the host platform, a few levels deep)."""
        if depth > _MAX_INDEX_DEPTH:
            raise ArchiveError(f"{archive.path}: indexes nested more than {_MAX_INDEX_DEPTH} levels deep")
        body = archive.read(_blob_member(check_digest(entry.digest)))
        manifest = Manifest.parse(body, digest_of(body), entry.media_type, f"{archive.path}: manifest {entry.digest}")
        if manifest.digest != entry.digest:
            raise ArchiveError(f"{archive.path}: manifest {entry.digest} has the wrong content")
        if manifest.is_index:
            child = select_platform(manifest, Platform.host(), f"{archive.path}: index {entry.digest}")
            return self._load_manifest(archive, child, depth + 1)
        return manifest

    def _load_docker(self, archive: _Archive) -> list[ImageRecord]:
        try:
            entries = json.loads(archive.read("manifest.json"))
        except ValueError:
            raise ArchiveError(f"{archive.path}: manifest.json is not valid JSON") from None
        if not isinstance(entries, list):
            raise ArchiveError(f"{archive.path}: manifest.json is not a list")
        records: list[ImageRecord] = []
        for entry in entries:
            manifest = self._import_docker_image(archive, entry)
            names = _repo_tags(entry.get("RepoTags"), archive)
            records += [self._record(n, manifest, None) for n in names or [f"{UNNAMED}@{manifest.digest}"]]
        return self._commit_loaded(records, archive)

    def _import_docker_image(self, archive: _Archive, entry: Any) -> Manifest:
        """Store the config and layers of one ``manifest.json`` entry and build an OCI manifest for them."""
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ArchiveError(f"{archive.path}: a manifest.json entry has no Config")
        config = archive.read(entry["Config"])
        config_digest = self.write_blob(config)
        diff_ids = _diff_ids(_json_object(config, f"{archive.path}: {entry['Config']}"), None, str(archive.path))
        layers = [str(p) for p in entry.get("Layers") or []]
        if len(layers) != len(diff_ids):
            raise ArchiveError(f"{archive.path}: {len(layers)} layers but the config lists {len(diff_ids)} diff_ids")
        descriptors = [
            self._import_docker_layer(archive, path, diff_id) for path, diff_id in zip(layers, diff_ids, strict=True)
        ]
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        }
        body = _canonical(doc)
        self.write_blob(body)
        return Manifest.parse(body, digest_of(body), OCI_MANIFEST)

    def _import_docker_layer(self, archive: _Archive, path: str, diff_id: str) -> dict[str, Any]:
        with archive.open(path) as stream:
            digest = self.import_blob(stream)
        media_type = _layer_media_type(self.blob_path(digest))
        if media_type == OCI_LAYER and digest != diff_id:
            raise ArchiveError(f"{archive.path}: layer {path} has digest {digest}, but the config says {diff_id}")
        return {"mediaType": media_type, "digest": digest, "size": self.blob_path(digest).stat().st_size}

    def _import_member(self, archive: _Archive, blob: Descriptor) -> None:
        if self.has_blob(blob.digest):
            return
        with archive.open(_blob_member(check_digest(blob.digest))) as stream:
            self.import_blob(stream, blob.digest, blob.size)

    def _commit_loaded(self, records: list[ImageRecord], archive: _Archive) -> list[ImageRecord]:
        missing = self._commit(records, {})
        if missing:
            raise ImageStoreError(f"{archive.path}: blob {missing[0]} vanished while the images were recorded")
        return records

    # -- records ------------------------------------------------------------------------------------

    def _record(self, name: str, manifest: Manifest, index_digest: str | None) -> ImageRecord:
        """The record of ``manifest`` under ``name``. Raises ImageStoreError when the config does not describe the
        manifest's layers. A config deleted meanwhile (by a concurrent ``rmi``) is caught later by :meth:`_commit`."""
        created = None
        if self.has_blob(manifest.config.digest):
            config = _json_object(self.read_blob(manifest.config.digest), f"config of {name}")
            _diff_ids(config, len(manifest.layers), name)
            created = config.get("created") if isinstance(config.get("created"), str) else None
        size = sum(blob.size for blob in manifest.blobs())
        return ImageRecord(
            name, manifest.digest, manifest.config.digest, manifest.media_type, index_digest, created, size
        )

    def _blobs_of(self, record: ImageRecord) -> set[str]:
        found = {record.manifest_digest, record.config_digest}
        with contextlib.suppress(ImageStoreError, ManifestError):
            body = self.read_blob(record.manifest_digest)
            found |= {layer.digest for layer in Manifest.parse(body, record.manifest_digest).layers}
        return found

    def _needed(self, state: _State) -> set[str]:
        """Every blob some recorded image needs."""
        return {d for name, doc in state.images.items() for d in self._blobs_of(ImageRecord.from_json(name, doc))}

    def _commit(self, records: list[ImageRecord], sources: dict[str, str]) -> list[str]:
        """Under the lock: if every blob of ``records`` is present, record them (and the blob ``sources``) and
        return []; otherwise change nothing and return the missing digests."""
        with self._transaction() as state:
            needed = sorted({d for record in records for d in self._blobs_of(record)} | set(sources))
            missing = [d for d in needed if not self.has_blob(d)]
            if missing:
                return missing
            for record in records:
                state.images[record.name] = record.to_json()
            for digest, repository in sources.items():
                known = state.sources.setdefault(digest, [])
                if repository not in known:
                    known.append(repository)
            return []

    def _names_to_remove(self, state: _State, text: str, force: bool) -> list[str]:
        name = _name_key(text)
        if name is not None and name in state.images:
            return [name]
        record = _by_id(state, text)
        names = sorted(n for n, doc in state.images.items() if doc["config_digest"] == record.config_digest)
        if len(names) > 1 and not force:
            raise ImageConflictError(
                f"unable to remove {text}: image {record.id[7:19]} has several names ({', '.join(names)}); "
                "remove them by name, or force"
            )
        return names

    # -- state file ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_State]:
        """The state under an exclusive flock of ``images.lock``; written back when the block succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "images.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            state = self._read_state()
            yield state
            self._write_state(state)

    def _read_state(self) -> _State:
        path = self.root / "images.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return _State({}, {})
        except ValueError as exc:
            raise ImageStoreError(f"{path} is corrupt: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ImageStoreError(f"{path}: unknown format")
        return _State(dict(doc.get("images", {})), dict(doc.get("sources", {})))

    def _write_state(self, state: _State) -> None:
        doc = {"version": 1, "images": state.images, "sources": state.sources}
        fd, tmp = tempfile.mkstemp(prefix=".images.json.", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(doc, indent=1, sort_keys=True).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.root / "images.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# -- helpers: names ------------------------------------------------------------------------------------


def _name_key(text: str) -> str | None:
    """The normalised name for ``text``, or None when it is not a reference (it may still be an id)."""
    if text.startswith(f"{UNNAMED}@"):
        return text
    try:
        return _pulled_name(parse(text))
    except InvalidReferenceError:
        return None


def _pulled_name(ref: Reference) -> str:
    """The name an image pulled as ``ref`` is recorded under: by digest when pinned, else by tag."""
    if ref.digest is not None:
        return f"{ref.name}@{ref.digest}"
    return f"{ref.name}:{ref.tag or 'latest'}"


def _by_id(state: _State, text: str) -> ImageRecord:
    prefix = text.removeprefix("sha256:").lower()
    if not prefix or not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
        raise ImageNotFoundError(f"no such image: {text}")
    matches = sorted((n, d) for n, d in state.images.items() if d["config_digest"][7:].startswith(prefix))
    ids = {doc["config_digest"] for _, doc in matches}
    if not ids:
        raise ImageNotFoundError(f"no such image: {text}")
    if len(ids) > 1:
        raise ImageConflictError(f"image id prefix {text} is ambiguous ({len(ids)} images)")
    name, doc = matches[0]
    return ImageRecord.from_json(name, doc)


def _older_than(folder: Path, pattern: str, seconds: float) -> list[Path]:
    """Files matching ``pattern`` under ``folder`` last modified more than ``seconds`` ago, sorted."""
    cutoff = time.time() - seconds
    found = []
    for path in sorted(folder.glob(pattern)):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                found.append(path)
    return found


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _mount_sources(ref: Reference, known_in: list[str]) -> list[str]:
    """Repositories of ``ref``'s registry (other than its own) known to hold a blob; at most three are tried."""
    prefix = f"{ref.registry}/"
    found = [s.removeprefix(prefix) for s in known_in if s.startswith(prefix) and s != ref.name]
    return found[:3]


def _unique(blobs: Iterable[Descriptor]) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    for blob in blobs:
        seen.setdefault(blob.digest, blob)
    return list(seen.values())


def _semaphore(limit: int) -> asyncio.Semaphore:
    """An asyncio semaphore (asyncio is imported only by those who pull or push: it is slow to import)."""
    import asyncio

    return asyncio.Semaphore(limit)


async def _gather_first_error(tasks: list[Any]) -> None:
    """Run all ``tasks`` to their end (finished blobs are worth keeping), then raise the first failure."""
    import asyncio

    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# -- helpers: JSON and configs -------------------------------------------------------------------------


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise ImageStoreError(f"{where} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ImageStoreError(f"{where} is not a JSON object")
    return doc


def _diff_ids(config: dict[str, Any], layer_count: int | None, where: str) -> list[str]:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ImageStoreError(f"{where}: the image config has no rootfs.diff_ids")
    if layer_count is not None and len(diff_ids) != layer_count:
        raise ImageStoreError(f"{where}: the config lists {len(diff_ids)} diff_ids for {layer_count} layers")
    return [str(d) for d in diff_ids]


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _copy_hashed(stream: IO[bytes], fd: int, algorithm: str) -> tuple[str, int]:
    """Copy ``stream`` to ``fd`` (fsynced); returns (digest, bytes written)."""
    hasher = hashlib.new(algorithm)
    written = 0
    with os.fdopen(fd, "wb") as handle:
        while chunk := stream.read(_COPY_CHUNK):
            handle.write(chunk)
            hasher.update(chunk)
            written += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return f"{algorithm}:{hasher.hexdigest()}", written


def _layer_media_type(path: Path) -> str:
    """The media type of a layer blob, from its magic bytes (gzip, zstd, else a plain tar)."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        return OCI_LAYER_GZIP
    if magic == b"\x28\xb5\x2f\xfd":
        return OCI_LAYER_ZSTD
    return OCI_LAYER


# -- helpers: archives ---------------------------------------------------------------------------------


@dataclass
class _Archive:
    """An open tar and its members by normalised name (never used as a file system path)."""

    tar: tarfile.TarFile
    members: dict[str, tarfile.TarInfo]
    path: Path

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(_member_name(name))
        stream = self.tar.extractfile(member) if member is not None else None
        if stream is None:
            raise ArchiveError(f"{self.path}: {name} is missing or not a file")
        return stream

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        with self.open(name) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{self.path}: {name} is larger than {limit} bytes")
        return data


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _blob_member(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"blobs/{algorithm}/{hex_part}"


def _index_entries(index: dict[str, Any], archive: _Archive) -> list[Descriptor]:
    entries = index.get("manifests")
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{archive.path}: index.json lists no manifests")
    return [Descriptor.from_json(entry, f"{archive.path}: index.json") for entry in entries]


def _names_from_annotations(annotations: dict[str, str]) -> list[str]:
    """The image name an index entry carries: containerd's full name, else a ref.name that is a full reference
    (a bare tag like ``1.0`` names no repository)."""
    for key in (CONTAINERD_NAME, REF_NAME):
        value = annotations.get(key, "")
        if value and (key == CONTAINERD_NAME or "/" in value or ":" in value):
            with contextlib.suppress(InvalidReferenceError):
                return [_pulled_name(parse(value))]
    return []


def _repo_tags_by_config(archive: _Archive) -> dict[str, list[str]]:
    """``RepoTags`` of a docker ``manifest.json`` beside ``index.json``, by config digest (when it has one)."""
    if "manifest.json" not in archive.members:
        return {}
    found: dict[str, list[str]] = {}
    with contextlib.suppress(ValueError, ArchiveError, InvalidReferenceError, TypeError, AttributeError):
        for entry in json.loads(archive.read("manifest.json")):
            digest = "sha256:" + str(entry["Config"]).rpartition("/")[2].removesuffix(".json")
            found[digest] = [str(parse(tag)) for tag in entry.get("RepoTags") or []]
    return found


def _repo_tags(tags: Any, archive: _Archive) -> list[str]:
    """The normalised names of a ``RepoTags`` list."""
    if not isinstance(tags, list):
        return []
    try:
        return [_pulled_name(parse(str(tag))) for tag in tags]
    except InvalidReferenceError as exc:
        raise ArchiveError(f"{archive.path}: manifest.json: {exc}") from None


def _check_saveable(manifest: Manifest) -> None:
    for layer in manifest.layers:
        if layer.media_type not in SAVEABLE_LAYER_TYPES:
            raise ArchiveError(
                f"cannot save layer {layer.digest} ({layer.media_type}): docker load takes only tar or tar+gzip layers"
            )


def _archive_index(records: list[ImageRecord], manifests: dict[str, Manifest]) -> dict[str, Any]:
    entries = []
    for record in records:
        manifest = manifests[record.manifest_digest]
        descriptor: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.body),
        }
        ref = record.reference
        if ref is not None and ref.tag is not None:
            descriptor["annotations"] = {CONTAINERD_NAME: str(ref), REF_NAME: ref.tag}
        entries.append(descriptor)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


def _archive_docker_manifest(records: list[ImageRecord], manifests: dict[str, Manifest]) -> list[dict[str, Any]]:
    """docker's ``manifest.json``: one entry per image, its tags in docker's short spelling."""
    entries: dict[str, dict[str, Any]] = {}
    for record in records:
        manifest = manifests[record.manifest_digest]
        entry = entries.setdefault(
            manifest.digest,
            {
                "Config": _blob_member(manifest.config.digest),
                "RepoTags": [],
                "Layers": [_blob_member(layer.digest) for layer in manifest.layers],
            },
        )
        ref = record.reference
        if ref is not None and ref.tag is not None and ref.digest is None:
            entry["RepoTags"].append(ref.familiar)
    return list(entries.values())


def _tar_info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = size
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_tar_info(name, directory=True))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with path.open("rb") as handle:
        tar.addfile(_tar_info(name, os.fstat(handle.fileno()).st_size), handle)

"""An image's files: the merged filesystem of its layers, one file's text, one layer's changes, and the diff of two
tags — all read from the layer blobs through :class:`catalog.layers.LayerReader` (streamed, cached by digest).

The merged view and the file-level diff are :mod:`catalog.merge`'s; this module resolves tags to image manifests
(a platform of an index), reads their layers and answers the questions.

Callers check visibility first (``Catalog.require_visible``); these methods still answer NotFound for a tag,
platform, layer index or path that is not there, and InvalidInput for an artifact without filesystem layers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from catalog.describe import IMAGE_CONFIG_TYPES
from catalog.errors import InvalidInput, NotFound
from catalog.imagedetail import layers_with_history
from catalog.layers import CACHE_ENTRIES, TEXT_LIMIT, FileHead, LayerListing, LayerReader
from catalog.merge import MAX_SYMLINK_HOPS, Tree, file_changes, merge, resolve
from catalog.views import DirectoryListing, FileContent, FileEntry, Layer, TagDiff
from registry.errors import RegistryError
from registry.manifests import INDEX_TYPES
from registry.reference import Digest, is_tag, parse_digest
from registry.store import Store
from registry.store.manifests import StoredManifest
from registry.store.recent import Recent
from storage.errors import PathNotFound

__all__ = ["ImageFiles"]

TREE_CACHE = 8  # merged views kept, least recently used first (the listings under them are cached anyway)
MAX_PATH = 4096
_DEFAULT_VARIANTS = {"arm64": "v8"}


@dataclass(frozen=True)
class _Image:
    """A tag resolved to one image manifest: its platform label and its layers, bottom first."""

    platform: str
    layers: list[Layer]


def _request_path(path: str) -> str:
    if len(path) > MAX_PATH or "\x00" in path:
        raise InvalidInput("path is too long or contains a NUL byte")
    return "/" + path.strip("/")


def _reference(tag: str) -> Digest | str:
    try:
        if ":" in tag:
            return parse_digest(tag)
    except RegistryError:
        raise InvalidInput(f"invalid digest {tag[:200]!r}") from None
    if not is_tag(tag):
        raise InvalidInput(f"invalid tag {tag[:200]!r}")
    return tag


def _parse_platform(platform: str) -> tuple[str, str, str | None]:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidInput(f"platform must be os/architecture[/variant], not {platform[:100]!r}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _label(os: str, architecture: str, variant: str | None) -> str:
    return "/".join(p for p in (os, architecture, variant) if p)


def _matches(wanted: tuple[str, str, str | None], os: str, architecture: str, variant: str | None) -> bool:
    want_os, want_arch, want_variant = wanted
    if (want_os, want_arch) != (os, architecture):
        return False
    default = _DEFAULT_VARIANTS.get(architecture)
    return want_variant is None or (want_variant or default) == (variant or default)


def _platform_of(descriptor: dict[str, Any]) -> tuple[str, str, str | None]:
    platform = descriptor.get("platform") or {}
    return str(platform.get("os", "")), str(platform.get("architecture", "")), platform.get("variant")


def _pick(index: dict[str, Any], wanted: tuple[str, str, str | None] | None, what: str) -> tuple[Digest, str]:
    """The child image manifest for ``wanted`` (default: linux/amd64, else the first image) and its label.
    Attestations and other ``unknown`` platforms are never picked."""
    images = [
        m
        for m in index.get("manifests") or []
        if isinstance(m, dict) and m.get("mediaType") not in INDEX_TYPES and _platform_of(m)[0] not in ("", "unknown")
    ]
    if not images:
        raise InvalidInput(f"{what} is an index without image manifests: it has no files")
    target = wanted or ("linux", "amd64", None)
    chosen = next((m for m in images if _matches(target, *_platform_of(m))), None)
    if chosen is None and wanted is None:
        chosen = images[0]
    if chosen is None:
        labels = ", ".join(_label(*_platform_of(m)) for m in images)
        raise NotFound(f"{what} has no platform {_label(*wanted or target)} (it has {labels})")
    return parse_digest(str(chosen.get("digest"))), _label(*_platform_of(chosen))


def _layers(manifest: dict[str, Any], config: dict[str, Any], what: str) -> list[Layer]:
    """The manifest's layers (bottom first) with the history commands of the config. InvalidInput when one is
    not a tar (an artifact) or is a foreign layer, whose bytes this registry does not keep."""
    descriptors = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
    for index, descriptor in enumerate(descriptors):
        media_type = str(descriptor.get("mediaType", ""))
        if "tar" not in media_type:
            raise InvalidInput(f"{what} is an artifact (layer {index} is {media_type!r}), not a container image")
        if descriptor.get("urls") or "nondistributable" in media_type or "foreign" in media_type:
            raise InvalidInput(f"layer {index} of {what} is a foreign layer, kept outside this registry")
    history = config.get("history")
    layers, _after_last = layers_with_history(descriptors, history if isinstance(history, list) else [])
    return layers


class ImageFiles:
    """The files of the images of one store. ``cache_entries`` bounds the layer-listing cache (tar entries)."""

    def __init__(self, store: Store, cache_entries: int = CACHE_ENTRIES, text_limit: int = TEXT_LIMIT) -> None:
        self.store = store
        self.reader = LayerReader(store.driver, store.blobs, cache_entries)
        self.text_limit = text_limit
        self._trees: Recent[tuple[str, ...], Tree] = Recent(TREE_CACHE)

    async def directory(self, name: str, tag: str, path: str = "/", platform: str | None = None) -> DirectoryListing:
        """The direct children of directory ``path`` (symlinks on it followed) in the merged view, sorted by
        name. ``path`` in the answer is the resolved directory. NotFound: no such directory."""
        image = await self._image(name, tag, platform)
        tree = await self._tree(image.layers)
        where = resolve(tree, _request_path(path))
        children = tree.children.get(where)
        if children is None:
            raise NotFound(f"no directory {path} in {name}:{tag}")
        entries = sorted((tree.nodes[child].view() for child in children), key=lambda e: e.name)
        return DirectoryListing(repository=name, tag=tag, platform=image.platform, path=where, entries=entries)

    async def file(self, name: str, tag: str, path: str, platform: str | None = None) -> FileContent:
        """The start of regular file ``path`` (symlinks followed inside the image, hardlinks read from their
        target) up to ``text_limit`` bytes, as text unless binary. ``path`` in the answer is the resolved one.
        NotFound: no such path; InvalidInput: not a regular file."""
        image = await self._image(name, tag, platform)
        tree = await self._tree(image.layers)
        where = resolve(tree, _request_path(path))
        node = tree.nodes.get(where)
        for _ in range(MAX_SYMLINK_HOPS):
            if node is None or node.entry.kind != "hardlink":
                break
            below = await self._tree(image.layers[: node.layer + 1])
            node = below.nodes.get(below.placed(node.entry.link_target or "/"))
        if node is None:
            raise NotFound(f"no file {path} in {name}:{tag}")
        if node.entry.kind != "file":
            raise InvalidInput(f"{path} is a {node.entry.kind}, not a regular file")
        layer = image.layers[node.layer]
        listing = await self.reader.listing(parse_digest(layer.digest))
        head = await self._head(layer, listing, node.tar_path or node.entry.path)
        return FileContent(
            repository=name,
            tag=tag,
            path=where,
            size=head.size,
            text=head.text,
            truncated=head.truncated,
            binary=head.binary,
        )

    async def layer(self, name: str, tag: str, index: int, platform: str | None = None) -> list[FileEntry]:
        """What layer ``index`` (0 = bottom) deleted, added and changed over the layers below, sorted by path.
        NotFound: no such layer."""
        image = await self._image(name, tag, platform)
        if not 0 <= index < len(image.layers):
            raise NotFound(f"{name}:{tag} has no layer {index} (it has {len(image.layers)})")
        listings = await self._listings(image.layers[: index + 1])
        changes = merge(listings[:index]).apply(index, listings[index])
        return [changes[path] for path in sorted(changes)]

    async def diff(self, name: str, from_tag: str, to_tag: str, platform: str | None = None) -> TagDiff:
        """Layers (by digest) and files that differ from ``from_tag`` to ``to_tag``, files sorted by path. A file
        changed when its type, mode, owner, size, link target or content differ."""
        before, after = await asyncio.gather(self._image(name, from_tag, platform), self._image(name, to_tag, platform))
        old, new = await asyncio.gather(self._tree(before.layers), self._tree(after.layers))
        old_digests = {layer.digest for layer in before.layers}
        new_digests = {layer.digest for layer in after.layers}
        return TagDiff(
            repository=name,
            from_tag=from_tag,
            to_tag=to_tag,
            platform=after.platform,
            layers_added=[layer for layer in after.layers if layer.digest not in old_digests],
            layers_removed=[layer for layer in before.layers if layer.digest not in new_digests],
            files=file_changes(old, new),
        )

    def close(self) -> None:
        """Stop the layer reader's worker threads."""
        self.reader.close()

    # -- layers ---------------------------------------------------------------------------------------------

    async def _tree(self, layers: list[Layer]) -> Tree:
        """The merged view of ``layers`` (kept for the last :data:`TREE_CACHE` layer stacks; never mutated)."""
        key = tuple(layer.digest for layer in layers)
        tree = self._trees.get(key)
        if tree is None:
            tree = merge(await self._listings(layers))
            self._trees.put(key, tree)
        return tree

    async def _listings(self, layers: list[Layer]) -> list[LayerListing]:
        return list(await asyncio.gather(*(self.reader.listing(parse_digest(layer.digest)) for layer in layers)))

    async def _head(self, layer: Layer, listing: LayerListing, path: str) -> FileHead:
        occurrence = sum(1 for e in listing.entries if e.path == path and e.kind == "file") - 1
        return await self.reader.head(parse_digest(layer.digest), path, max(occurrence, 0), self.text_limit)

    # -- manifests ------------------------------------------------------------------------------------------

    async def _manifest(self, name: str, reference: Digest | str) -> tuple[StoredManifest, dict[str, Any]]:
        try:
            stored = await self.store.manifests.get(name, reference)
        except (RegistryError, PathNotFound):
            raise NotFound(f"no manifest {reference} in {name}") from None
        doc = json.loads(stored.body)
        return stored, doc if isinstance(doc, dict) else {}

    async def _image(self, name: str, tag: str, platform: str | None) -> _Image:
        """Resolve ``tag`` to one image manifest (picking ``platform`` from an index) and its layers."""
        wanted = _parse_platform(platform) if platform else None
        stored, doc = await self._manifest(name, _reference(tag))
        label: str | None = None
        if stored.media_type in INDEX_TYPES:
            digest, label = _pick(doc, wanted, f"{name}:{tag}")
            stored, doc = await self._manifest(name, digest)
            if stored.media_type in INDEX_TYPES:
                raise InvalidInput(f"{name}:{tag} nests an index in an index; pick a platform's manifest by digest")
        config = await self._config(doc, f"{name}:{tag}")
        if label is None:
            found = (str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant"))
            if wanted and not _matches(wanted, *found):
                raise NotFound(f"{name}:{tag} has no platform {platform}")
            label = _label(*found)
        return _Image(label, _layers(doc, config, f"{name}:{tag}"))

    async def _config(self, doc: dict[str, Any], what: str) -> dict[str, Any]:
        descriptor = doc.get("config") or {}
        artifact = doc.get("artifactType") or descriptor.get("mediaType")
        if doc.get("artifactType") or descriptor.get("mediaType") not in IMAGE_CONFIG_TYPES:
            raise InvalidInput(f"{what} is an artifact ({artifact}), not a container image: it has no files")
        try:
            config = json.loads(await self.store.blobs.read_small(parse_digest(descriptor["digest"])))
        except PathNotFound:
            raise NotFound(f"the config of {what} is missing from storage") from None
        return config if isinstance(config, dict) else {}

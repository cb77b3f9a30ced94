"""The merged filesystem view of an image's layers, and the file-level diff of two such views.

The layers are applied bottom-up as OCI says: a layer's whiteouts and opaque directories remove only what the
layers *below* it hold, then its entries are written in tar order (a non-directory replacing a directory removes
the directory's subtree; a directory over a directory only updates its metadata). Parent directories a layer
writes into without listing them appear as ``drwxr-xr-x`` owned by root. Each path remembers the layer that last
wrote it and whether that layer ``added`` it or ``changed`` it (it existed below). Paths are resolved inside the
image root only (symlinks followed at most ``MAX_SYMLINK_HOPS`` times, never above ``/``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Literal

from catalog.errors import NotFound
from catalog.layers import LayerEntry, LayerListing
from catalog.views import FileChange, FileEntry

__all__ = ["MAX_SYMLINK_HOPS", "Node", "Tree", "file_changes", "merge", "resolve"]

MAX_SYMLINK_HOPS = 40
_IMPLICIT_DIR_MODE = 0o755
Change = Literal["added", "changed", "deleted"]


@dataclass(frozen=True, slots=True)
class Node:
    """A path of the merged view: its entry, the layer that last wrote it and how; ``tar_path``: the entry's own
    name in that layer's tar when extraction moved it (a parent directory was a symlink)."""

    entry: LayerEntry
    layer: int
    change: Change
    tar_path: str | None = None

    def view(self) -> FileEntry:
        e = self.entry
        kind = "file" if e.kind in ("whiteout", "opaque") else e.kind
        return FileEntry(
            path=e.path,
            name=e.name,
            type=kind,
            size=e.size,
            mode=e.mode_string,
            uid=e.uid,
            gid=e.gid,
            link_target=e.link_target,
            layer=self.layer,
            change=self.change,
        )


class Tree:
    """The merged filesystem: ``nodes`` by path ("/" itself is implicit), ``children`` by parent path."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.children: dict[str, dict[str, None]] = {"/": {}}

    def remove(self, path: str) -> None:
        """Remove ``path`` and everything below it."""
        pending = [path]
        while pending:
            current = pending.pop()
            pending.extend(self.children.pop(current, {}))
            self.nodes.pop(current, None)
        self.children.get(_parent(path), {}).pop(path, None)

    def put(self, node: Node) -> None:
        """Write ``node`` over whatever is at its path, creating missing parent directories."""
        missing: list[str] = []
        parent = _parent(node.entry.path)
        while parent not in self.children:
            missing.append(parent)
            parent = _parent(parent)
        for path in reversed(missing):
            self._place(Node(LayerEntry(path, "dir", mode=_IMPLICIT_DIR_MODE), node.layer, "added"))
        self._place(node)

    def _place(self, node: Node) -> None:
        path = node.entry.path
        old = self.nodes.get(path)
        if old is not None and not (old.entry.kind == "dir" and node.entry.kind == "dir"):
            self.remove(path)
        self.nodes[path] = node
        self.children[_parent(path)][path] = None
        if node.entry.kind == "dir":
            self.children.setdefault(path, {})

    def inside(self, entry: LayerEntry) -> LayerEntry:
        """``entry`` moved to where extracting it puts it: symlinks on its parent path are followed (inside
        the root), as containerd and docker do when they apply a layer."""
        path = self.placed(entry.path)
        return entry if path == entry.path else dataclasses.replace(entry, path=path)

    def placed(self, path: str) -> str:
        """Where a tar entry named ``path`` lands: its parent directory with symlinks followed, then its name."""
        parent = resolve(self, _parent(path))
        return parent.rstrip("/") + "/" + path.rsplit("/", 1)[-1]

    def apply(self, index: int, listing: LayerListing) -> dict[str, FileEntry]:
        """Apply layer ``index``; returns what it deleted, added and changed, by path (tar entries only)."""
        changes: dict[str, FileEntry] = {}
        for entry in listing.entries:
            if entry.kind in ("whiteout", "opaque"):
                self._delete(self.inside(entry), index, changes)
        for entry in listing.entries:
            if entry.kind not in ("whiteout", "opaque"):
                placed = self.inside(entry)
                change: Change = "changed" if self._existed(placed.path, index, changes) else "added"
                node = Node(placed, index, change, entry.path if placed is not entry else None)
                self.put(node)
                changes[placed.path] = node.view()
        return changes

    def _existed(self, path: str, index: int, changes: dict[str, FileEntry]) -> bool:
        """Whether the layers below ``index`` hold ``path`` (this layer may have deleted or rewritten it)."""
        current = self.nodes.get(path)
        if current is not None:
            return current.layer < index or current.change == "changed"
        return path in changes and changes[path].change == "deleted"

    def _delete(self, entry: LayerEntry, index: int, changes: dict[str, FileEntry]) -> None:
        doomed = list(self.children.get(entry.path, {})) if entry.kind == "opaque" else [entry.path]
        for path in doomed:
            node = self.nodes.get(path)
            if node is not None:
                changes[path] = Node(node.entry, index, "deleted").view()
                self.remove(path)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def merge(listings: list[LayerListing]) -> Tree:
    tree = Tree()
    for index, listing in enumerate(listings):
        tree.apply(index, listing)
    return tree


def resolve(tree: Tree, path: str) -> str:
    """``path`` with every symlink on it followed, inside the image root: ``..`` and absolute targets never leave
    it (as a chroot would). NotFound after :data:`MAX_SYMLINK_HOPS` links."""
    pending = deque(path.split("/"))
    resolved: list[str] = []
    hops = 0
    while pending:
        component = pending.popleft()
        if component in ("", "."):
            continue
        if component == "..":
            if resolved:
                resolved.pop()
            continue
        node = tree.nodes.get("/" + "/".join([*resolved, component]))
        if node is None or node.entry.kind != "symlink":
            resolved.append(component)
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise NotFound(f"{path}: too many levels of symbolic links")
        target = node.entry.link_target or ""
        if target.startswith("/"):
            resolved.clear()
        pending.extendleft(reversed(target.split("/")))
    return "/" + "/".join(resolved)


def _signature(entry: LayerEntry) -> tuple[object, ...]:
    return (entry.kind, entry.mode, entry.uid, entry.gid, entry.size, entry.link_target, entry.sha256)


def _file_change(path: str, before: Node | None, after: Node | None) -> FileChange | None:
    if before is not None and after is not None:
        if _signature(before.entry) == _signature(after.entry):
            return None
        return FileChange(
            path=path,
            change="changed",
            type=after.entry.kind,
            size_before=before.entry.size,
            size_after=after.entry.size,
        )
    if after is not None:
        return FileChange(path=path, change="added", type=after.entry.kind, size_after=after.entry.size)
    assert before is not None
    return FileChange(path=path, change="deleted", type=before.entry.kind, size_before=before.entry.size)


def file_changes(old: Tree, new: Tree) -> list[FileChange]:
    """Paths added, deleted, or changed (see :func:`_signature`) from ``old`` to ``new``, sorted."""
    paths = sorted(old.nodes.keys() | new.nodes.keys())
    changes = (_file_change(path, old.nodes.get(path), new.nodes.get(path)) for path in paths)
    return [change for change in changes if change is not None]

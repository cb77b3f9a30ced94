"""What the catalog's queries return: the same models feed the JSON API (and its OpenAPI schemas) and the pages.

Times are timezone-aware UTC. Sizes are bytes, compressed as stored. A ``Viewer`` is who is looking: private
repositories appear (anywhere: search, namespace lists, pages, API, sitemap) only to site admins and to members of
the repository's namespace (the user's own namespace counts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Visibility = Literal["public", "private"]


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


READ_ONLY = "a read-only access token cannot change anything: sign in with your password or a token that can write"


class Viewer(View):
    """Who asks. ``name`` None: anonymous. ``namespaces``: the user's own name and the organizations it belongs to
    (any role). ``admins``: namespaces where the user may edit repositories (own name, org role ``admin``).
    ``read_only``: signed in with a read-only personal access token (by session or HTTP Basic): sees what the user
    sees, changes nothing."""

    name: str | None = None
    is_admin: bool = False
    namespaces: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    read_only: bool = False

    def can_see(self, namespace: str, visibility: Visibility) -> bool:
        return visibility == "public" or self.is_admin or namespace in self.namespaces

    def can_admin(self, namespace: str) -> bool:
        return self.is_admin or namespace in self.admins


ANONYMOUS = Viewer()


class Page(View, Generic[T]):
    """One page of a longer list; ``total`` counts every item the viewer may see."""

    items: list[T]
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    total: int = Field(ge=0)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class Platform(View):
    os: str
    architecture: str
    variant: str | None = None
    digest: str
    size: int

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class RepositorySummary(View):
    name: str
    namespace: str
    visibility: Visibility
    description: str
    tag_count: int
    size: int
    pull_count: int
    pushed_at: datetime
    last_pull_at: datetime | None = None


class HomeView(View):
    recent: list[RepositorySummary]
    popular: list[RepositorySummary]
    repository_count: int
    tag_count: int


class NamespaceView(View):
    name: str
    kind: Literal["user", "org", "none"]
    repositories: Page[RepositorySummary]


class RepositoryDetail(View):
    summary: RepositorySummary
    description_html: str
    unique_size: int
    shared_size: int
    can_admin: bool


class TagSummary(View):
    name: str
    digest: str
    media_type: str
    size: int
    platforms: list[Platform]
    pushed_at: datetime
    last_pull_at: datetime | None = None


class Layer(View):
    digest: str
    media_type: str
    size: int
    created_by: str | None = None
    empty_layer_history: list[str] = []


class ImageConfigSummary(View):
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = []
    working_dir: str | None = None
    user: str | None = None
    exposed_ports: list[str] = []
    labels: dict[str, str] = {}
    created: datetime | None = None


class Referrer(View):
    digest: str
    media_type: str
    artifact_type: str | None = None
    size: int
    annotations: dict[str, str] = {}


class PlatformDetail(View):
    """``trailing_history``: the config's empty-layer history entries after the last layer (``CMD``,
    ``ENTRYPOINT``, ...), which have no next layer to attach to."""

    platform: Platform
    layers: list[Layer]
    config: ImageConfigSummary
    manifest_json: str
    trailing_history: list[str] = []


class TagDetail(View):
    repository: str
    tag: TagSummary
    manifest_json: str
    platforms: list[PlatformDetail]
    referrers: list[Referrer]


class FileEntry(View):
    """One path of an image's merged filesystem. ``layer``: index (0-based) of the layer that last wrote it;
    ``change``: what that layer did to it (``added`` or ``changed`` over the layers below); ``deleted`` entries
    appear only in layer views and diffs."""

    path: str
    name: str
    type: Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]
    size: int
    mode: str
    uid: int
    gid: int
    link_target: str | None = None
    layer: int
    change: Literal["added", "changed", "deleted"]


class DirectoryListing(View):
    repository: str
    tag: str
    platform: str
    path: str
    entries: list[FileEntry]


class FileContent(View):
    repository: str
    tag: str
    path: str
    size: int
    text: str | None
    truncated: bool
    binary: bool


class FileChange(View):
    path: str
    change: Literal["added", "changed", "deleted"]
    type: str
    size_before: int | None = None
    size_after: int | None = None


class TagDiff(View):
    repository: str
    from_tag: str
    to_tag: str
    platform: str
    layers_added: list[Layer]
    layers_removed: list[Layer]
    files: list[FileChange]

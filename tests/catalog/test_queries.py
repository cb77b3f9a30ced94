"""``catalog.queries.Catalog`` over index rows written directly: search ranking, paging totals, visibility (a
private repository never shows to outsiders, anywhere), edits and their permissions, tag details read from a real
store. Every test runs on SQLite and on a PostgreSQL database of its own (the SQL differs: LIKE, case, escapes).

``CatalogWorld`` (also used by ``test_api.py``) holds a catalog over a fresh database with users ``alice`` (member
and admin of org ``acme``, ``read`` member of org ``viewers``), ``bob`` (no orgs) and ``root`` (site admin).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.accounts import AccountStore
from auth.database import open_database
from auth.models import Base, RepositoryRow
from auth.ratelimit import LoginLimiter
from catalog.errors import Forbidden, InvalidInput, NotFound
from catalog.models import IndexedBlobRow, IndexedManifestRow, IndexedRepositoryRow, IndexedTagRow
from catalog.queries import Catalog
from catalog.views import ANONYMOUS, Viewer
from registry.reference import parse_digest
from registry.store import Store
from storage.memory import MemoryDriver
from tests.support.images import OCI_CONFIG, OCI_MANIFEST, canonical_json, sha256_digest

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PASSWORD = "a-long-password"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class CatalogWorld:
    """A catalog on its own database and memory store, plus helpers that write index rows."""

    engine: AsyncEngine
    accounts: AccountStore | None
    store: Store
    catalog: Catalog
    deleted: list[tuple[str, str]] = field(default_factory=list)

    async def tag_deleted(self, name: str, tag: str) -> None:
        """The ``index`` listener: records the call and removes the row, as the real index does."""
        self.deleted.append((name, tag))
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(IndexedTagRow).where(IndexedTagRow.repository == name, IndexedTagRow.name == tag)
            )

    async def viewer(self, name: str | None) -> Viewer:
        return await self.catalog.viewer(name) if name else ANONYMOUS

    async def repo(
        self,
        name: str,
        *,
        minutes: int = 0,
        pulls: int = 0,
        visibility: str | None = None,
        description: str = "",
        tags: int = 0,
    ) -> None:
        """Index repository ``name`` pushed ``minutes`` after T0 with ``tags`` tags (``t0`` newest), and its
        account row when ``visibility`` is given."""
        pushed = T0 + timedelta(minutes=minutes)
        row = {
            "name": name,
            "namespace": name.split("/")[0] if "/" in name else "",
            "created_at": T0,
            "pushed_at": pushed,
            "tag_count": tags,
            "size": 1000,
            "pull_count": pulls,
            "last_pull_at": None,
        }
        async with self.engine.begin() as connection:
            await connection.execute(insert(IndexedRepositoryRow), [row])
            if visibility is not None:
                account = {"name": name, "namespace": row["namespace"], "visibility": visibility}
                await connection.execute(
                    insert(RepositoryRow), [{**account, "description": description, "created_at": T0}]
                )
            for i in range(tags):
                await self._tag(connection, name, f"t{i}", f"sha256:{i:064x}", pushed - timedelta(seconds=i))

    async def _tag(self, connection: Any, name: str, tag: str, digest: str, pushed: datetime) -> None:
        await connection.execute(
            insert(IndexedTagRow),
            [{"repository": name, "name": tag, "digest": digest, "pushed_at": pushed, "last_pull_at": None}],
        )

    async def manifest(self, name: str, digest: str, **values: Any) -> None:
        row = {
            "repository": name,
            "digest": digest,
            "media_type": OCI_MANIFEST,
            "artifact_type": None,
            "subject": None,
            "size": 100,
            "platforms": [],
            "config": {},
            "pushed_at": T0,
            **values,
        }
        async with self.engine.begin() as connection:
            await connection.execute(insert(IndexedManifestRow), [row])

    async def blobs(self, name: str, sizes: dict[str, int]) -> None:
        rows = [{"repository": name, "manifest": "sha256:m", "digest": d, "size": s} for d, s in sizes.items()]
        async with self.engine.begin() as connection:
            await connection.execute(insert(IndexedBlobRow), rows)

    async def put_tag(self, name: str, tag: str, digest: str) -> None:
        async with self.engine.begin() as connection:
            await self._tag(connection, name, tag, digest, T0)


async def open_world(url: str, *, with_accounts: bool = True) -> CatalogWorld:
    """A world on the empty database ``url`` (migrated; users and orgs created when ``with_accounts``)."""
    accounts = await AccountStore.open(url, bcrypt_rounds=4)
    engine = await open_database(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)  # no-op once the catalog migration exists
    if with_accounts:
        await _add_people(accounts)
    store = Store.build(MemoryDriver())
    world = CatalogWorld(engine, accounts if with_accounts else None, store, None)  # type: ignore[arg-type]
    # Generous failed-login limits, as the live-server tests' TOKEN_ENV: tests try wrong passwords on purpose.
    world.catalog = Catalog(engine, store, world.accounts, index=world, limiter=LoginLimiter(engine, 100, 300))
    if not with_accounts:
        await accounts.close()
    return world


async def close_world(world: CatalogWorld) -> None:
    if world.accounts is not None:
        await world.accounts.close()
    await world.engine.dispose()


async def _add_people(accounts: AccountStore) -> None:
    for name in ("alice", "bob", "root"):
        await accounts.add_user(name, PASSWORD, admin=name == "root", actor="test")
    for org, role in (("acme", "admin"), ("viewers", "read")):
        await accounts.add_org(org, actor="test")
        await accounts.set_member(org, "alice", role, actor="test")  # type: ignore[arg-type]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[CatalogWorld]:
    opened = await open_world(database_url)
    yield opened
    await close_world(opened)


def names(page: Any) -> list[str]:
    return [item.name for item in page.items]


# -- who asks ---------------------------------------------------------------------------------------------------


async def test_viewer_lists_namespaces_and_admin_rights(world: CatalogWorld) -> None:
    alice = await world.catalog.viewer("alice")
    assert alice.namespaces == {"alice", "acme", "viewers"}
    assert alice.admins == {"alice", "acme"}
    assert not alice.is_admin
    assert (await world.catalog.viewer("root")).is_admin
    assert await world.catalog.viewer("ghost") == ANONYMOUS


async def test_authenticate(world: CatalogWorld) -> None:
    found = await world.catalog.authenticate("bob", PASSWORD)
    assert found is not None
    assert (found.user.name, found.read_only) == ("bob", False)
    assert await world.catalog.authenticate("bob", "wrong-password") is None
    assert await world.catalog.authenticate("nobody", PASSWORD) is None


# -- search -----------------------------------------------------------------------------------------------------


async def test_search_ranks_exact_then_prefix_then_contains_then_description(world: CatalogWorld) -> None:
    await world.repo("tools/web", minutes=5, pulls=100, visibility="public", description="An NGINX front end")
    await world.repo("acme/my-nginx-app", minutes=4, pulls=50)
    await world.repo("nginx-proxy", minutes=3, pulls=1)
    await world.repo("library/nginx", minutes=2, pulls=2)
    await world.repo("nginx", minutes=1)
    await world.repo("redis", minutes=6)
    found = await world.catalog.search(ANONYMOUS, "  NGINX ")
    assert names(found) == ["nginx", "library/nginx", "nginx-proxy", "acme/my-nginx-app", "tools/web"]
    assert found.total == 5


async def test_search_ties_by_pulls_then_recency(world: CatalogWorld) -> None:
    await world.repo("a/app-old", minutes=1, pulls=7)
    await world.repo("a/app-new", minutes=9, pulls=7)
    await world.repo("a/app-popular", minutes=0, pulls=70)
    assert names(await world.catalog.search(ANONYMOUS, "app")) == ["a/app-popular", "a/app-new", "a/app-old"]


async def test_search_escapes_like_wildcards(world: CatalogWorld) -> None:
    await world.repo("a/percent", visibility="public", description="100% pure")
    await world.repo("a/plain", visibility="public", description="1000 pure")
    await world.repo("a/under_score")
    await world.repo("a/underxscore")
    await world.repo("a/back", visibility="public", description="C:\\path")
    assert names(await world.catalog.search(ANONYMOUS, "0%")) == ["a/percent"]
    assert names(await world.catalog.search(ANONYMOUS, "r_s")) == ["a/under_score"]
    assert names(await world.catalog.search(ANONYMOUS, "c:\\p")) == ["a/back"]
    assert (await world.catalog.search(ANONYMOUS, "%")).total == 1


async def test_search_pages_count_every_match(world: CatalogWorld) -> None:
    for i in range(23):
        await world.repo(f"ns/app{i:02d}", minutes=i)
    await world.repo("ns/other", minutes=99)
    first = await world.catalog.search(ANONYMOUS, "app", page=1, per_page=10)
    third = await world.catalog.search(ANONYMOUS, "app", page=3, per_page=10)
    beyond = await world.catalog.search(ANONYMOUS, "app", page=4, per_page=10)
    assert (first.total, third.total, beyond.total) == (23, 23, 23)
    assert names(first)[0] == "ns/app22"
    assert names(third) == ["ns/app02", "ns/app01", "ns/app00"]
    assert beyond.items == []
    assert first.pages == 3


async def test_empty_search_lists_everything_newest_first(world: CatalogWorld) -> None:
    await world.repo("b/old", minutes=1)
    await world.repo("a/new", minutes=2)
    found = await world.catalog.search(ANONYMOUS, "")
    assert names(found) == ["a/new", "b/old"]
    assert found.total == 2


@pytest.mark.parametrize(("page", "per_page"), [(0, 10), (1, 0), (1, 101), (100_001, 10)])
async def test_bad_paging_is_invalid_input(world: CatalogWorld, page: int, per_page: int) -> None:
    with pytest.raises(InvalidInput):
        await world.catalog.search(ANONYMOUS, "x", page=page, per_page=per_page)
    with pytest.raises(InvalidInput):
        await world.catalog.namespace(ANONYMOUS, "alice", page=page, per_page=per_page)


async def test_overlong_query_is_invalid_input(world: CatalogWorld) -> None:
    with pytest.raises(InvalidInput):
        await world.catalog.search(ANONYMOUS, "x" * 201)


# -- visibility -------------------------------------------------------------------------------------------------


async def _private_world(world: CatalogWorld) -> None:
    await world.repo("acme/secret", minutes=9, pulls=99, visibility="private", description="secret stuff", tags=2)
    await world.repo("acme/open", minutes=1, pulls=1, visibility="public", description="open stuff", tags=3)
    await world.repo("acme/norow", minutes=2, tags=1)  # no account row: public
    await world.repo("topsecret", minutes=3, visibility="private")  # top level: site admins only


@pytest.mark.parametrize("who", [None, "bob"])
async def test_private_repository_is_invisible_to_outsiders(world: CatalogWorld, who: str | None) -> None:
    await _private_world(world)
    viewer = await world.viewer(who)
    catalog = world.catalog
    assert names(await catalog.search(viewer, "")) == ["acme/norow", "acme/open"]
    assert names(await catalog.search(viewer, "secret")) == []
    assert (await catalog.search(viewer, "stuff")).total == 1
    home = await catalog.home(viewer)
    assert [r.name for r in home.recent] == ["acme/norow", "acme/open"]
    assert [r.name for r in home.popular] == ["acme/open"]
    assert (home.repository_count, home.tag_count) == (2, 4)
    namespace = await catalog.namespace(viewer, "acme")
    assert names(namespace.repositories) == ["acme/norow", "acme/open"]
    assert namespace.repositories.total == 2
    assert await catalog.sitemap(viewer) == ["acme/norow", "acme/open"]
    for name in ("acme/secret", "topsecret"):
        with pytest.raises(NotFound) as unknown:
            await catalog.require_visible(viewer, name)
        assert "private" not in str(unknown.value)
        with pytest.raises(NotFound):
            await catalog.repository(viewer, name)
        with pytest.raises(NotFound):
            await catalog.tags(viewer, name)
        with pytest.raises(NotFound):
            await catalog.tag(viewer, name, "t0")


async def test_members_and_site_admins_see_private_repositories(world: CatalogWorld) -> None:
    await _private_world(world)
    alice, root = await world.viewer("alice"), await world.viewer("root")
    assert names(await world.catalog.search(alice, "")) == ["acme/secret", "acme/norow", "acme/open"]
    assert names(await world.catalog.search(root, "")) == ["acme/secret", "topsecret", "acme/norow", "acme/open"]
    assert (await world.catalog.home(alice)).repository_count == 3
    assert (await world.catalog.home(root)).tag_count == 6
    assert (await world.catalog.require_visible(alice, "acme/secret")).visibility == "private"
    assert (await world.catalog.tags(alice, "acme/secret")).total == 2
    assert await world.catalog.sitemap(root) == ["acme/norow", "acme/open"]  # a sitemap stays public


async def test_read_member_sees_private_repository_of_its_org(world: CatalogWorld) -> None:
    await world.repo("viewers/hidden", visibility="private")
    alice = await world.viewer("alice")
    assert names(await world.catalog.search(alice, "hidden")) == ["viewers/hidden"]
    assert not (await world.catalog.repository(alice, "viewers/hidden")).can_admin


async def test_without_accounts_everything_is_public(database_url: str) -> None:
    opened = await open_world(database_url, with_accounts=False)
    try:
        await _private_world(opened)
        found = await opened.catalog.search(ANONYMOUS, "")
        assert found.total == 4
        assert {item.visibility for item in found.items} == {"public"}
        assert await opened.catalog.viewer("alice") == ANONYMOUS
        assert await opened.catalog.authenticate("alice", PASSWORD) is None
        with pytest.raises(Forbidden, match="sign-in is not enabled"):
            await opened.catalog.set_description(ANONYMOUS, "acme/open", "x")
    finally:
        await close_world(opened)


# -- namespaces and repositories --------------------------------------------------------------------------------


async def test_namespace_kinds_and_unknown_names(world: CatalogWorld) -> None:
    await world.repo("library/busybox")
    await world.repo("alice/app", minutes=2)
    await world.repo("alice/tool", minutes=1)
    alice = await world.catalog.namespace(ANONYMOUS, "alice", per_page=1, page=2)
    assert (alice.kind, alice.repositories.total, names(alice.repositories)) == ("user", 2, ["alice/tool"])
    assert (await world.catalog.namespace(ANONYMOUS, "acme")).kind == "org"
    assert (await world.catalog.namespace(ANONYMOUS, "library")).kind == "none"
    with pytest.raises(NotFound):
        await world.catalog.namespace(ANONYMOUS, "nobody")


async def test_repository_detail_sizes_description_and_admin(world: CatalogWorld) -> None:
    await world.repo("alice/app", visibility="public", description="# App\n<script>alert(1)</script>")
    await world.repo("bob/app")
    await world.blobs("alice/app", {"sha256:shared": 100, "sha256:mine": 10, "sha256:mine2": 1})
    await world.blobs("bob/app", {"sha256:shared": 100})
    detail = await world.catalog.repository(await world.viewer("alice"), "alice/app")
    assert (detail.unique_size, detail.shared_size) == (11, 100)
    assert detail.description_html.startswith("<h1>App</h1>")
    assert "<script>" not in detail.description_html
    assert detail.can_admin
    assert not (await world.catalog.repository(await world.viewer("bob"), "alice/app")).can_admin
    assert (await world.catalog.repository(await world.viewer("root"), "alice/app")).can_admin
    empty = await world.catalog.repository(ANONYMOUS, "bob/app")
    assert (empty.unique_size, empty.shared_size, empty.description_html) == (0, 100, "")


async def test_tags_sorted_by_push_time_then_name_with_paging(world: CatalogWorld) -> None:
    await world.repo("alice/app", tags=5)
    await world.put_tag("alice/app", "also-newest", "sha256:" + "0" * 64)
    platforms = [{"os": "linux", "architecture": "arm64", "variant": "v8", "digest": "sha256:c", "size": 7}]
    await world.manifest("alice/app", "sha256:" + "0" * 64, platforms=platforms, size=77)
    first = await world.catalog.tags(ANONYMOUS, "alice/app", page=1, per_page=4)
    second = await world.catalog.tags(ANONYMOUS, "alice/app", page=2, per_page=4)
    assert [t.name for t in first.items] == ["also-newest", "t0", "t1", "t2"]
    assert [t.name for t in second.items] == ["t3", "t4"]
    assert (first.total, second.total) == (6, 6)
    newest = first.items[0]
    assert (newest.size, newest.media_type, newest.platforms[0].label) == (77, OCI_MANIFEST, "linux/arm64/v8")
    assert first.items[2].platforms == []  # no manifest row: shown without platforms


# -- tag details ------------------------------------------------------------------------------------------------


async def _store_blob(store: Store, name: str, data: bytes) -> str:
    digest = sha256_digest(data)
    await store.blobs.put_small(data, parse_digest(digest))
    await store.blobs.link(name, parse_digest(digest))
    return digest


async def _push_image(world: CatalogWorld, name: str, tag: str) -> tuple[str, bytes]:
    layers = [b"layer-one", b"layer-two-bytes"]
    history = [
        {"created_by": "ADD rootfs.tar /"},
        {"created_by": "ENV A=1", "empty_layer": True},
        {"created_by": "WORKDIR /app", "empty_layer": True},
        {"created_by": "COPY app /app"},
        {"created_by": 'CMD ["/app/run"]', "empty_layer": True},
    ]
    process = {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "run"], "Env": ["A=1"], "WorkingDir": "/app",
               "User": "1000", "ExposedPorts": {"80/tcp": {}}, "Labels": {"org.example": "yes"}}  # fmt: skip
    config = canonical_json(
        {"architecture": "amd64", "os": "linux", "created": "2024-02-03T04:05:06.123456789Z",
         "config": process, "history": history, "rootfs": {"type": "layers", "diff_ids": []}}
    )  # fmt: skip
    descriptors = [
        {"mediaType": LAYER, "digest": await _store_blob(world.store, name, data), "size": len(data)} for data in layers
    ]
    config_descriptor = {"mediaType": OCI_CONFIG, "digest": await _store_blob(world.store, name, config),
                         "size": len(config)}  # fmt: skip
    body = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                           "layers": descriptors})  # fmt: skip
    result = await world.store.manifests.put(name, tag, body, OCI_MANIFEST, [])
    digest = str(result.digest)
    platform = {"os": "linux", "architecture": "amd64", "digest": digest, "size": len(body)}
    await world.manifest(name, digest, platforms=[platform], size=len(body))
    await world.put_tag(name, tag, digest)
    return digest, body


async def _push_signature(world: CatalogWorld, name: str, subject: str, subject_body: bytes) -> str:
    empty = await _store_blob(world.store, name, b"{}")
    payload = await _store_blob(world.store, name, b"signature")
    body = canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.cosign",
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
         "layers": [{"mediaType": "application/octet-stream", "digest": payload, "size": 9}],
         "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_body)},
         "annotations": {"signed-by": "alice"}}
    )  # fmt: skip
    digest = str(
        (await world.store.manifests.put(name, parse_digest(sha256_digest(body)), body, OCI_MANIFEST, [])).digest
    )
    await world.manifest(name, digest, artifact_type="application/vnd.dev.cosign", subject=subject, size=len(body))
    return digest


async def test_tag_detail_layers_history_config_and_referrers(world: CatalogWorld) -> None:
    await world.repo("alice/app")
    digest, body = await _push_image(world, "alice/app", "v1")
    signature = await _push_signature(world, "alice/app", digest, body)
    detail = await world.catalog.tag(ANONYMOUS, "alice/app", "v1")
    assert detail.tag.digest == digest
    assert json.loads(detail.manifest_json) == json.loads(body)
    assert "\n  " in detail.manifest_json  # pretty-printed
    (platform,) = detail.platforms
    assert platform.platform.label == "linux/amd64"
    assert [(layer.size, layer.created_by, layer.empty_layer_history) for layer in platform.layers] == [
        (9, "ADD rootfs.tar /", []),
        (15, "COPY app /app", ["ENV A=1", "WORKDIR /app"]),
    ]
    assert platform.trailing_history == ['CMD ["/app/run"]']
    config = platform.config
    assert (config.entrypoint, config.cmd, config.working_dir, config.user) == (
        ["/bin/sh"],
        ["-c", "run"],
        "/app",
        "1000",
    )
    assert (config.env, config.exposed_ports, config.labels) == (["A=1"], ["80/tcp"], {"org.example": "yes"})
    assert config.created == datetime(2024, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
    (referrer,) = detail.referrers
    assert (referrer.digest, referrer.artifact_type) == (signature, "application/vnd.dev.cosign")
    assert referrer.annotations == {"signed-by": "alice"}
    with pytest.raises(NotFound):
        await world.catalog.tag(ANONYMOUS, "alice/app", "v2")


# -- edits ------------------------------------------------------------------------------------------------------


async def test_admins_edit_description_and_visibility(world: CatalogWorld) -> None:
    await world.repo("acme/app")  # no account row yet: created on the first edit, keeping "public"
    alice = await world.viewer("alice")
    assert (await world.catalog.set_description(alice, "acme/app", "**new**")).description == "**new**"
    assert (await world.catalog.set_visibility(alice, "acme/app", "private")).visibility == "private"
    with pytest.raises(NotFound):
        await world.catalog.require_visible(await world.viewer("bob"), "acme/app")
    root = await world.viewer("root")
    assert (await world.catalog.set_visibility(root, "acme/app", "public")).visibility == "public"
    assert (await world.catalog.repository(ANONYMOUS, "acme/app")).description_html == "<p><strong>new</strong></p>\n"


async def test_edits_need_an_admin_of_the_namespace(world: CatalogWorld) -> None:
    await world.repo("acme/app", visibility="public")
    await world.repo("viewers/app", visibility="public")
    await world.repo("acme/private", visibility="private")
    bob, alice = await world.viewer("bob"), await world.viewer("alice")
    for viewer, name in ((ANONYMOUS, "acme/app"), (bob, "acme/app"), (alice, "viewers/app")):
        with pytest.raises(Forbidden):
            await world.catalog.set_description(viewer, name, "x")
        with pytest.raises(Forbidden):
            await world.catalog.set_visibility(viewer, name, "private")
        with pytest.raises(Forbidden):
            await world.catalog.delete_tag(viewer, name, "t0")
    with pytest.raises(NotFound):  # what bob can't see, he can't learn about by editing it either
        await world.catalog.set_description(bob, "acme/private", "x")
    with pytest.raises(InvalidInput):
        await world.catalog.set_description(alice, "acme/app", "x" * 25_001)
    with pytest.raises(InvalidInput):
        await world.catalog.set_visibility(alice, "acme/app", "secret")
    assert (await world.catalog.require_visible(ANONYMOUS, "acme/app")).description == ""


async def test_delete_tag_removes_it_from_storage_and_index(world: CatalogWorld) -> None:
    await world.repo("alice/app")
    digest, _ = await _push_image(world, "alice/app", "v1")
    alice = await world.viewer("alice")
    await world.catalog.delete_tag(alice, "alice/app", "v1")
    assert world.deleted == [("alice/app", "v1")]
    assert await world.store.manifests.tags("alice/app") == []
    assert (await world.store.manifests.get("alice/app", parse_digest(digest))).digest == parse_digest(digest)
    assert (await world.catalog.tags(alice, "alice/app")).total == 0
    with pytest.raises(NotFound):
        await world.catalog.delete_tag(alice, "alice/app", "v1")


async def test_delete_tag_without_index_updates_rows_itself(world: CatalogWorld) -> None:
    catalog = Catalog(world.engine, world.store, world.accounts)
    await world.repo("alice/app")
    await _push_image(world, "alice/app", "v1")
    await catalog.delete_tag(await world.viewer("alice"), "alice/app", "v1")
    assert world.deleted == []
    summary = await catalog.require_visible(ANONYMOUS, "alice/app")
    assert summary.tag_count == 0
    async with world.engine.connect() as connection:
        assert (await connection.execute(select(IndexedTagRow.name))).all() == []


async def test_delete_tag_refused_when_deletes_are_disabled(world: CatalogWorld) -> None:
    catalog = Catalog(world.engine, world.store, world.accounts, deletes_enabled=False)
    await world.repo("alice/app")
    await _push_image(world, "alice/app", "v1")
    with pytest.raises(Forbidden, match="deletes are disabled"):
        await catalog.delete_tag(await world.viewer("alice"), "alice/app", "v1")
    assert await world.store.manifests.tags("alice/app") == ["v1"]

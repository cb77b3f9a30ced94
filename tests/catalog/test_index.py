"""The metadata index kept in step by pushes, deletes and pulls through the registry API; rebuilds from storage;
``_catalog`` served from the index; the same on PostgreSQL; ``dockyard index rebuild``."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from catalog.index import Index
from catalog.models import IndexedBlobRow, IndexedManifestRow, IndexedRepositoryRow, IndexedTagRow
from registry.app import create_app
from registry.config import MemoryStorage, Settings
from registry.store.gc import CLOCK_SLACK
from tests.catalog.conftest import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    ClientFactory,
    PushedImage,
    app_of,
    auth_headers,
    catalog_settings,
    engine_of,
    index_of,
    push_artifact,
    push_image,
    push_index,
)
from tests.support.server import run_dockyard

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
TIME_COLUMNS = {"created_at", "pushed_at", "last_pull_at"}


async def rows(client: Client, model: type[Any], *, times: bool = False) -> list[dict[str, Any]]:
    """Every row of ``model``'s table as dicts (without the time columns unless ``times``), sorted."""
    async with engine_of(client).connect() as connection:
        found = (await connection.execute(select(model.__table__))).mappings().all()
    dicts = [{k: v for k, v in row.items() if times or k not in TIME_COLUMNS} for row in found]
    return sorted(dicts, key=repr)


async def repository(client: Client, name: str) -> dict[str, Any] | None:
    found = [row for row in await rows(client, IndexedRepositoryRow, times=True) if row["name"] == name]
    return found[0] if found else None


async def manifest(client: Client, digest: str) -> dict[str, Any]:
    (found,) = [row for row in await rows(client, IndexedManifestRow) if row["digest"] == digest]
    return found


async def tags(client: Client, name: str) -> dict[str, str]:
    return {row["name"]: row["digest"] for row in await rows(client, IndexedTagRow) if row["repository"] == name}


async def everything(client: Client) -> list[list[dict[str, Any]]]:
    return [
        await rows(client, model) for model in (IndexedRepositoryRow, IndexedTagRow, IndexedManifestRow, IndexedBlobRow)
    ]


async def catalog_names(client: Client, query: str = "", headers: dict[str, str] | None = None) -> Any:
    resp = await client.get(f"/v2/_catalog{query}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def push_two_platforms(client: Client, name: str, tag: str) -> tuple[PushedImage, PushedImage, str]:
    amd = await push_image(client, name, None, {"etc/os": b"amd64\n"}, architecture="amd64")
    arm = await push_image(client, name, None, {"etc/os": b"arm64\n"}, architecture="arm64")
    index = await push_index(client, name, tag, [amd, arm])
    return amd, arm, index.digest


async def push_a_bit_of_everything(client: Client) -> dict[str, str]:
    """Images sharing a layer, a two-platform index, a signature; returns digests by label."""
    base = (await push_image(client, "acme/web", "v1", {"srv/index.html": b"<h1>one</h1>"})).layers
    v2 = await push_image(client, "acme/web", "v2", {"srv/extra.html": b"two"}, base=base)
    _, _, multi = await push_two_platforms(client, "acme/multi", "latest")
    signature = await push_artifact(client, "acme/web", v2, SIGNATURE, b"signed", annotations={"by": "me"})
    await push_image(client, "top", "1.0", {"hello": b"world"})
    return {"v2": v2.digest, "multi": multi, "signature": signature.digest}


# -- pushes -----------------------------------------------------------------------------------------------------


async def test_a_push_indexes_repository_tag_manifest_and_blobs(catalog_client: Client) -> None:
    before = datetime.now(UTC)
    process = {
        "Entrypoint": ["/app"],
        "Cmd": ["--serve"],
        "Env": ["A=1"],
        "User": "app",
        "ExposedPorts": {"80/tcp": {}},
    }
    image = await push_image(
        catalog_client,
        "alice/app",
        "v1",
        {"app": b"#!/bin/sh\n"},
        labels=None,
        process={**process, "Labels": {"k": "v"}},
    )
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert repo["namespace"] == "alice"
    assert (repo["tag_count"], repo["size"], repo["pull_count"], repo["last_pull_at"]) == (1, image.size, 0, None)
    assert before - timedelta(seconds=1) <= repo["pushed_at"] <= datetime.now(UTC)
    assert repo["pushed_at"].tzinfo is not None
    assert await tags(catalog_client, "alice/app") == {"v1": image.digest}
    row = await manifest(catalog_client, image.digest)
    assert row["media_type"] == OCI_MANIFEST
    assert (row["artifact_type"], row["subject"], row["size"]) == (None, None, image.size)
    assert row["platforms"] == [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": image.digest, "size": image.size}
    ]
    assert row["config"] == {
        "entrypoint": ["/app"],
        "cmd": ["--serve"],
        "env": ["A=1"],
        "working_dir": None,
        "user": "app",
        "exposed_ports": ["80/tcp"],
        "labels": {"k": "v"},
        "created": "2023-11-14T22:13:20+00:00",
    }
    blobs = {(b["digest"], b["size"]) for b in await rows(catalog_client, IndexedBlobRow)}
    assert blobs == {
        (image.config_digest, len(image.config)),
        *((layer.digest, len(layer.blob)) for layer in image.layers),
    }


async def test_shared_layers_count_once_in_the_repository_size(catalog_client: Client) -> None:
    one = await push_image(catalog_client, "web", "v1", {"a": b"a" * 1000})
    two = await push_image(catalog_client, "web", "v2", {"b": b"b"}, base=one.layers)
    repo = await repository(catalog_client, "web")
    assert repo is not None
    assert repo["namespace"] == ""
    assert repo["tag_count"] == 2
    assert repo["size"] == one.size + len(two.manifest) + len(two.config) + len(two.layers[-1].blob)
    assert (await manifest(catalog_client, two.digest))["size"] == two.size


async def test_an_index_of_two_platforms(catalog_client: Client) -> None:
    amd, arm, digest = await push_two_platforms(catalog_client, "acme/multi", "latest")
    row = await manifest(catalog_client, digest)
    assert row["media_type"] == OCI_INDEX
    assert row["config"] == {}
    assert row["platforms"] == [
        {"os": "linux", "architecture": "amd64", "variant": None, "digest": amd.digest, "size": amd.size},
        {"os": "linux", "architecture": "arm64", "variant": "v8", "digest": arm.digest, "size": arm.size},
    ]
    index_body = await (await catalog_client.get(f"/v2/acme/multi/manifests/{digest}")).read()
    assert row["size"] == len(index_body) + amd.size + arm.size
    repo = await repository(catalog_client, "acme/multi")
    assert repo is not None
    assert (repo["tag_count"], repo["size"]) == (1, row["size"])
    assert await tags(catalog_client, "acme/multi") == {"latest": digest}


async def test_referrers_are_recorded_with_their_artifact_type(catalog_client: Client) -> None:
    image = await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    signature = await push_artifact(catalog_client, "alice/app", image, SIGNATURE, b"sig", annotations={"a": "b"})
    row = await manifest(catalog_client, signature.digest)
    assert (row["artifact_type"], row["subject"]) == (SIGNATURE, image.digest)
    assert (row["platforms"], row["config"]) == ([], {})
    assert row["size"] == len(signature.body) + len(b"{}") + len(b"sig")
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert repo["size"] == image.size + row["size"]


async def test_extra_tags_of_a_push_are_indexed(catalog_client: Client) -> None:
    image = await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    resp = await catalog_client.put(
        f"/v2/alice/app/manifests/{image.digest}?tag=stable&tag=latest",
        data=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 201
    assert await tags(catalog_client, "alice/app") == dict.fromkeys(("v1", "stable", "latest"), image.digest)
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert repo["tag_count"] == 3


async def test_moving_a_tag_points_it_at_the_new_manifest(catalog_client: Client) -> None:
    await push_image(catalog_client, "alice/app", "latest", {"app": b"1"})
    newer = await push_image(catalog_client, "alice/app", "latest", {"app": b"2"})
    assert await tags(catalog_client, "alice/app") == {"latest": newer.digest}
    assert len(await rows(catalog_client, IndexedManifestRow)) == 2


async def test_an_index_failure_never_fails_a_push(
    catalog_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(Index, "_manifest_pushed", broken)
    with caplog.at_level(logging.ERROR, logger="dockyard.catalog"):
        image = await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    assert "database on fire" in caplog.text
    assert "dockyard index rebuild" in caplog.text
    assert (await catalog_client.get("/v2/alice/app/manifests/v1")).status == 200
    assert await repository(catalog_client, "alice/app") is None
    monkeypatch.undo()
    await index_of(catalog_client).rebuild()
    assert await tags(catalog_client, "alice/app") == {"v1": image.digest}


# -- deletes ----------------------------------------------------------------------------------------------------


async def test_deleting_a_tag_keeps_the_manifest(catalog_client: Client) -> None:
    image = await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    await push_image(catalog_client, "alice/app", "v2", {"app": b"y"})
    assert (await catalog_client.delete("/v2/alice/app/manifests/v1")).status == 202
    assert set(await tags(catalog_client, "alice/app")) == {"v2"}
    assert (await manifest(catalog_client, image.digest))["digest"] == image.digest
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert repo["tag_count"] == 1


async def test_deleting_a_manifest_drops_it_its_tags_and_its_bytes(catalog_client: Client) -> None:
    one = await push_image(catalog_client, "alice/app", "v1", {"app": b"1"})
    two = await push_image(catalog_client, "alice/app", "v2", {"app": b"2"})
    assert (await catalog_client.delete(f"/v2/alice/app/manifests/{one.digest}")).status == 202
    assert await tags(catalog_client, "alice/app") == {"v2": two.digest}
    assert {r["manifest"] for r in await rows(catalog_client, IndexedBlobRow)} == {two.digest}
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert (repo["tag_count"], repo["size"]) == (1, two.size)


async def test_the_last_manifest_takes_the_repository_with_it(catalog_client: Client) -> None:
    image = await push_image(catalog_client, "alice/app", "v1", {"app": b"1"})
    await push_image(catalog_client, "alice/other", "v1", {"app": b"1"})
    assert (await catalog_client.delete(f"/v2/alice/app/manifests/{image.digest}")).status == 202
    assert await repository(catalog_client, "alice/app") is None
    assert await catalog_names(catalog_client) == {"repositories": ["alice/other"]}
    assert {r["repository"] for r in await rows(catalog_client, IndexedBlobRow)} == {"alice/other"}


async def test_removing_a_repository_and_gc_through_the_cli(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    settings = catalog_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    untagged = await push_image(client, "alice/app", "v1", {"app": b"1"})
    await push_image(client, "alice/app", "v2", {"app": b"2"})
    await push_image(client, "alice/gone", "v1", {"app": b"3"})
    assert (await client.delete("/v2/alice/app/manifests/v1")).status == 202
    env = {"DOCKYARD_AUTH__STATE_DIR": str(tmp_path / "state")}
    data = str(tmp_path / "data")
    result = await asyncio.to_thread(run_dockyard, "repo", "rm", "--data", data, "alice/gone", env=env)
    assert result.returncode == 0, result.stderr
    assert await repository(client, "alice/gone") is None
    assert await catalog_names(client) == {"repositories": ["alice/app"]}
    await asyncio.sleep(CLOCK_SLACK + 0.5)  # GC keeps whatever was used within its clock slack, even at --grace 0s
    result = await asyncio.to_thread(run_dockyard, "gc", "--data", data, "--delete-untagged", "--grace", "0s", env=env)
    assert result.returncode == 0, result.stderr
    assert untagged.digest in result.stdout
    assert untagged.digest not in {r["digest"] for r in await rows(client, IndexedManifestRow)}


async def test_online_gc_tells_the_index(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    settings = catalog_settings(tmp_path)
    settings.gc.interval = 0.2
    settings.gc.grace = 0.0
    settings.gc.delete_untagged = True
    client = await aiohttp_client(create_app(settings))
    await push_image(client, "alice/app", "v1", {"app": b"1"})
    assert (await client.delete("/v2/alice/app/manifests/v1")).status == 202
    for _ in range(100):
        if await repository(client, "alice/app") is None:
            break
        await asyncio.sleep(0.1)
    assert await repository(client, "alice/app") is None


# -- pulls ------------------------------------------------------------------------------------------------------


async def test_get_counts_as_a_pull_and_head_does_not(catalog_client: Client) -> None:
    image = await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    for method, reference in [
        ("GET", "v1"),
        ("GET", "v1"),
        ("HEAD", "v1"),
        ("GET", image.digest),
        ("HEAD", image.digest),
    ]:
        resp = await catalog_client.request(method, f"/v2/alice/app/manifests/{reference}")
        assert resp.status == 200
    assert (await catalog_client.get("/v2/alice/app/manifests/nope")).status == 404
    before_flush = await repository(catalog_client, "alice/app")
    assert before_flush is not None
    assert before_flush["pull_count"] == 0  # batched in memory, not written per request
    await index_of(catalog_client).flush()
    repo = await repository(catalog_client, "alice/app")
    assert repo is not None
    assert repo["pull_count"] == 3
    assert repo["last_pull_at"] is not None
    (tag,) = await rows(catalog_client, IndexedTagRow, times=True)
    assert tag["last_pull_at"] is not None


async def test_pulls_are_written_within_a_second_or_so(catalog_client: Client) -> None:
    await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    assert (await catalog_client.get("/v2/alice/app/manifests/v1")).status == 200
    for _ in range(40):
        repo = await repository(catalog_client, "alice/app")
        if repo is not None and repo["pull_count"] == 1:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the pull was not written within 4 seconds")


async def test_pending_pulls_are_written_on_close(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    settings = catalog_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    await push_image(client, "alice/app", "v1", {"app": b"x"})
    assert (await client.get("/v2/alice/app/manifests/v1")).status == 200
    await client.close()
    reopened = await aiohttp_client(create_app(settings))
    repo = await repository(reopened, "alice/app")
    assert repo is not None
    assert repo["pull_count"] == 1


# -- rebuild ----------------------------------------------------------------------------------------------------


async def test_rebuild_gives_the_rows_of_incremental_indexing(catalog_client: Client) -> None:
    await push_a_bit_of_everything(catalog_client)
    for _ in range(3):
        assert (await catalog_client.get("/v2/acme/web/manifests/v2")).status == 200
    await index_of(catalog_client).flush()
    incremental = await everything(catalog_client)
    tag_pulls = {r["name"]: r["last_pull_at"] for r in await rows(catalog_client, IndexedTagRow, times=True)}
    async with engine_of(catalog_client).begin() as connection:
        await connection.execute(text("DELETE FROM catalog_blobs WHERE repository = 'acme/multi'"))
        await connection.execute(text("UPDATE catalog_repositories SET size = 1, tag_count = 9"))
    progress: list[tuple[int, int]] = []
    report = await index_of(catalog_client).rebuild(lambda step: progress.append((step.done, step.total)))
    assert await everything(catalog_client) == incremental
    assert (report.repositories, report.manifests, report.tags, report.skipped) == (3, 7, 4, [])
    assert progress == [(1, 3), (2, 3), (3, 3)]
    repo = await repository(catalog_client, "acme/web")
    assert repo is not None
    assert repo["pull_count"] == 3  # kept
    after = {r["name"]: r["last_pull_at"] for r in await rows(catalog_client, IndexedTagRow, times=True)}
    assert after == tag_pulls


async def test_rebuild_removes_what_storage_no_longer_has(catalog_client: Client) -> None:
    await push_image(catalog_client, "alice/app", "v1", {"app": b"x"})
    async with engine_of(catalog_client).begin() as connection:
        now = datetime.now(UTC)
        await connection.execute(
            insert(IndexedRepositoryRow).values(
                name="ghost", namespace="", created_at=now, pushed_at=now, tag_count=0, size=0, pull_count=7
            )
        )
    assert await catalog_names(catalog_client) == {"repositories": ["alice/app", "ghost"]}  # read from the index
    await index_of(catalog_client).rebuild()
    assert await catalog_names(catalog_client) == {"repositories": ["alice/app"]}
    await index_of(catalog_client).store.repos.remove("alice/app")
    await index_of(catalog_client).rebuild()
    assert await everything(catalog_client) == [[], [], [], []]
    assert await index_of(catalog_client).is_empty()


async def test_an_empty_index_is_rebuilt_at_start(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    first = await aiohttp_client(create_app(catalog_settings(tmp_path)))
    digests = await push_a_bit_of_everything(first)
    incremental = await everything(first)
    await first.close()
    (tmp_path / "state" / "accounts.db").unlink()  # a new database: the index is empty, storage is not
    second = await aiohttp_client(create_app(catalog_settings(tmp_path)))
    assert await everything(second) == incremental
    assert (await manifest(second, digests["signature"]))["subject"] == digests["v2"]
    assert await catalog_names(second) == {"repositories": ["acme/multi", "acme/web", "top"]}


async def test_memory_storage_keeps_a_private_index(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(Settings(storage=MemoryStorage())))
    other = await aiohttp_client(create_app(Settings(storage=MemoryStorage())))
    await push_image(client, "alice/app", "v1", {"app": b"x"})
    assert await catalog_names(client) == {"repositories": ["alice/app"]}
    assert await catalog_names(other) == {"repositories": []}


# -- _catalog ---------------------------------------------------------------------------------------------------


async def test_catalog_pages_come_from_the_index(catalog_client: Client) -> None:
    for name in ("c/x", "a/x", "b/x", "d"):
        await push_image(catalog_client, name, "v1", {"f": name.encode()})
    assert await catalog_names(catalog_client) == {"repositories": ["a/x", "b/x", "c/x", "d"]}
    resp = await catalog_client.get("/v2/_catalog?n=2")
    assert await resp.json() == {"repositories": ["a/x", "b/x"]}
    assert resp.headers["Link"] == '</v2/_catalog?n=2&last=b%2Fx>; rel="next"'
    resp = await catalog_client.get("/v2/_catalog?n=2&last=b/x")
    assert await resp.json() == {"repositories": ["c/x", "d"]}
    assert "Link" not in resp.headers
    assert await catalog_names(catalog_client, "?n=0") == {"repositories": []}
    resp = await catalog_client.get("/v2/_catalog?n=x")
    assert resp.status == 400


ODD_TAGS = ("b", "a", "A-b", "Ab", "a.1", "a_1", "Z")  # byte order differs from a locale's collation


async def check_tag_lists(client: Client) -> None:
    """Tags of ``x/odd`` listed in code-point order, paged with ``n``/``last``, and ``n=²`` refused."""
    for tag in ODD_TAGS:
        await push_image(client, "x/odd", tag, {"f": tag.encode()})
    expected = sorted(ODD_TAGS)
    resp = await client.get("/v2/x/odd/tags/list")
    assert (await resp.json())["tags"] == expected
    resp = await client.get("/v2/x/odd/tags/list?n=3&last=A-b")
    page = expected[expected.index("A-b") + 1 :][:3]
    assert (await resp.json())["tags"] == page
    assert resp.headers["Link"] == f'</v2/x/odd/tags/list?n=3&last={page[-1]}>; rel="next"'
    assert (await client.get("/v2/x/odd/tags/list?n=%C2%B2")).status == 400  # "²" is a digit to str.isdigit()


async def test_tag_lists_come_from_the_index(catalog_client: Client, tmp_path: Path) -> None:
    await check_tag_lists(catalog_client)
    # Storage and index disagree only if something changes storage behind the registry's back: the list is the
    # index's (no storage listing), and a repository the index does not know is still answered from storage.
    shutil.rmtree(tmp_path / "data" / "v1" / "repositories" / "x" / "odd" / "_manifests" / "tags" / "b")
    assert "b" in (await (await catalog_client.get("/v2/x/odd/tags/list")).json())["tags"]
    await index_of(catalog_client).repository_deleted("x/odd")
    assert "b" not in (await (await catalog_client.get("/v2/x/odd/tags/list")).json())["tags"]
    assert (await catalog_client.get("/v2/nothing/here/tags/list")).status == 404


async def test_tag_lists_on_postgresql_are_in_byte_order(
    tmp_path: Path, aiohttp_client: ClientFactory, postgres_url: str
) -> None:
    client = await aiohttp_client(create_app(catalog_settings(tmp_path, database_url=postgres_url)))
    await check_tag_lists(client)


async def test_catalog_in_token_mode_shows_only_what_the_caller_may_pull(token_catalog_client: Client) -> None:
    from auth.guard import GUARD

    client = token_catalog_client
    alice = await auth_headers(client, "alice", "repository:alice/secret:pull,push", "repository:acme/open:pull,push")
    await push_image(client, "alice/secret", "v1", {"s": b"1"}, headers=alice)
    await push_image(client, "acme/open", "v1", {"o": b"1"}, headers=alice)
    await app_of(client)[GUARD].accounts.set_visibility("alice/secret", "private", actor="test")
    catalog_scope = "registry:catalog:*"
    everything_alice_sees = await catalog_names(client, headers=await auth_headers(client, "alice", catalog_scope))
    assert everything_alice_sees == {"repositories": ["acme/open", "alice/secret"]}
    bob = await catalog_names(client, headers=await auth_headers(client, "bob", catalog_scope))
    assert bob == {"repositories": ["acme/open"]}
    assert await repository(client, "alice/secret") is not None  # the index has it; the listing filters it


# -- PostgreSQL -------------------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_the_index_on_postgresql(tmp_path: Path, aiohttp_client: ClientFactory, postgres_url: str) -> None:
    settings = catalog_settings(tmp_path, database_url=postgres_url)
    client = await aiohttp_client(create_app(settings))
    digests = await push_a_bit_of_everything(client)
    assert (await client.get("/v2/acme/web/manifests/v2")).status == 200
    await index_of(client).flush()
    incremental = await everything(client)
    repo = await repository(client, "acme/web")
    assert repo is not None
    assert repo["pull_count"] == 1
    assert repo["pushed_at"].tzinfo is not None
    await index_of(client).rebuild()
    assert await everything(client) == incremental
    assert await catalog_names(client, "?n=2") == {"repositories": ["acme/multi", "acme/web"]}
    assert (await client.delete(f"/v2/acme/web/manifests/{digests['signature']}")).status == 202
    assert (await client.delete("/v2/acme/web/manifests/v1")).status == 202
    assert set(await tags(client, "acme/web")) == {"v2"}
    pushes = [push_image(client, "acme/race", f"t{i}", {"f": str(i).encode()}) for i in range(6)]
    await asyncio.gather(*pushes)
    race = await repository(client, "acme/race")
    assert race is not None
    assert race["tag_count"] == 6


# -- the command line -------------------------------------------------------------------------------------------


async def test_index_rebuild_command(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(catalog_settings(tmp_path)))
    await push_a_bit_of_everything(client)
    incremental = await everything(client)
    async with engine_of(client).begin() as connection:
        await connection.execute(text("DELETE FROM catalog_repositories"))
    env = {"DOCKYARD_AUTH__STATE_DIR": str(tmp_path / "state")}
    result = await asyncio.to_thread(run_dockyard, "index", "rebuild", "--data", str(tmp_path / "data"), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "indexed 3 repositories, 7 manifests and 4 tags"
    assert await everything(client) == incremental


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--config", "{tmp}/missing.yaml"], {}, "missing.yaml"),
        (["--data", "{tmp}/data"], {"DOCKYARD_AUTH__DATABASE_URL": "mysql://x"}, "unsupported database URL"),
        (["--data", "{tmp}/data"], {"DOCKYARD_AUTH__MODE": "sideways"}, "auth.mode"),
        ([], {"DOCKYARD_STORAGE__TYPE": "memory"}, "keeps no metadata index"),
    ],
)
def test_index_rebuild_with_bad_input_prints_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_dockyard("index", "rebuild", *(a.format(tmp=tmp_path) for a in args), env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_lists_the_index_command() -> None:
    result = run_dockyard("index", "--help")
    assert result.returncode == 0
    assert "rebuild" in result.stdout


async def test_cached_tag_lists_follow_changes_made_by_another_worker(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    """Two apps on one storage and one database, as two ``serve`` workers: each answers the tags list from its
    own cache only while the repository row's version is unchanged, whoever changed it."""
    writer = await aiohttp_client(create_app(catalog_settings(tmp_path)))
    reader = await aiohttp_client(create_app(catalog_settings(tmp_path)))

    async def listed(query: str = "") -> list[str]:
        resp = await reader.get(f"/v2/team/app/tags/list{query}")
        assert resp.status == 200
        return list((await resp.json())["tags"])

    first = await push_image(writer, "team/app", "a", {"a.txt": b"a"})
    await push_image(writer, "team/app", "b", {"b.txt": b"b"})
    assert await listed() == await listed() == ["a", "b"]  # the second answer comes from the cache
    assert await listed("?n=1") == ["a"]
    await push_image(writer, "team/app", "c", {"c.txt": b"c"})
    assert await listed() == ["a", "b", "c"]
    assert (await writer.delete("/v2/team/app/manifests/b")).status == 202  # a tag deleted
    assert await listed() == ["a", "c"]
    await push_image(writer, "team/app", "c", {"c.txt": b"moved"})  # a tag moved: same names
    assert await listed() == ["a", "c"]
    assert (await writer.delete(f"/v2/team/app/manifests/{first.digest}")).status == 202
    assert await listed() == ["c"]

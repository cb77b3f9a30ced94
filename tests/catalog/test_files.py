"""Image files over images pushed through the real registry API into filesystem storage: the merged view of
several layers (whiteouts, opaque directories, implicit parents), file text (symlinks, hardlinks, truncation,
binaries), one layer's changes, diffs between tags, platforms of an index, artifacts, the cache, and the API."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web

from auth.guard import GUARD
from catalog import keys
from catalog.api import add_catalog_api
from catalog.api_files import add_files_api
from catalog.errors import InvalidInput, NotFound
from catalog.files import ImageFiles
from catalog.queries import Catalog
from catalog.views import FileEntry
from registry import keys as registry_keys
from registry.app import create_app
from registry.store import Store
from storage.driver import StorageDriver
from tests.catalog.conftest import (
    PASSWORDS,
    Client,
    ClientFactory,
    PushedImage,
    auth_headers,
    basic,
    catalog_settings,
    push_artifact,
    push_image,
    push_index,
)
from tests.support.images import Layer, gzip_bytes

NAME = "lib/files"


def layer(comment: str, *members: tuple[str, bytes, int, bytes | str]) -> Layer:
    """A gzipped tar layer of ``(name, tar type, mode, data or link target)`` members, in that order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, payload in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, 1_700_000_000
            data = payload if isinstance(payload, bytes) else b""
            info.linkname = payload if isinstance(payload, str) else ""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return Layer(buffer.getvalue(), gzip_bytes(buffer.getvalue()), comment)


DIR, REG, SYM, LNK = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
BUSYBOX = b"\x7fELF\x00\x01 busybox"
BASE = layer(
    "ADD rootfs.tar /",
    ("bin/", DIR, 0o755, b""),
    ("bin/busybox", REG, 0o755, BUSYBOX),
    ("bin/sh", SYM, 0o777, "busybox"),
    ("bin/ash", LNK, 0o755, "bin/busybox"),
    ("etc/", DIR, 0o755, b""),
    ("etc/passwd", REG, 0o644, b"root:x:0:0\n"),
    ("etc/motd", REG, 0o644, b"welcome\n"),
    ("etc/abs-link", SYM, 0o777, "/etc/passwd"),
    ("etc/escape", SYM, 0o777, "../../../../../etc/passwd"),
    ("etc/loop1", SYM, 0o777, "loop2"),
    ("etc/loop2", SYM, 0o777, "loop1"),
    ("lib", SYM, 0o777, "usr/lib"),
    ("usr/", DIR, 0o755, b""),
    ("usr/lib/", DIR, 0o755, b""),
    ("usr/lib/libc.so", REG, 0o755, b"libc"),
    ("var/cache/", DIR, 0o755, b""),
    ("var/cache/old", REG, 0o644, b"stale"),
    ("var/cache/sub/deep", REG, 0o644, b"deeper"),
    ("opt/tool/bin/run", REG, 0o4755, b"#!/bin/sh\n"),
    ("tmp/", DIR, 0o1777, b""),
)
UPDATE = layer(
    "RUN adduser alice && rm /etc/motd && rm -rf /var/cache/*",
    ("etc/", DIR, 0o755, b""),
    ("etc/passwd", REG, 0o644, b"root:x:0:0\nalice:x:1000:1000\n"),
    ("etc/.wh.motd", REG, 0o644, b""),
    ("var/cache/", DIR, 0o755, b""),
    ("var/cache/.wh..wh..opq", REG, 0o644, b""),
    ("var/cache/new", REG, 0o644, b"fresh"),
    ("usr/lib/libz.so", REG, 0o755, b"libz"),
    ("lib/libextra.so", REG, 0o755, b"extra"),  # through the symlink /lib -> usr/lib
)
UPDATE_V2 = layer(
    "RUN adduser bob",
    ("etc/passwd", REG, 0o600, b"root:x:0:0\nbob:x:1001:1001\n"),
    ("etc/.wh.abs-link", REG, 0o644, b""),
)


@pytest.fixture
async def v1(catalog_client: Client) -> PushedImage:
    return await push_image(catalog_client, NAME, "v1", {"app/hello.txt": b"hi\n"}, base=[BASE, UPDATE])


@pytest.fixture
async def files(catalog_client: Client) -> AsyncIterator[ImageFiles]:
    app = catalog_client.server.app
    assert app is not None
    image_files = ImageFiles(app[registry_keys.STORE])
    yield image_files
    image_files.close()


def names(entries: Iterable[FileEntry]) -> list[str]:
    return [entry.name for entry in entries]


def by_name(entries: Iterable[FileEntry]) -> dict[str, FileEntry]:
    return {entry.name: entry for entry in entries}


# -- the merged view --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("v1")
async def test_the_root_of_the_merged_view(files: ImageFiles) -> None:
    listing = await files.directory(NAME, "v1")
    assert (listing.repository, listing.tag, listing.platform, listing.path) == (NAME, "v1", "linux/amd64", "/")
    assert names(listing.entries) == ["app", "bin", "etc", "lib", "opt", "tmp", "usr", "var"]
    root = by_name(listing.entries)
    assert (root["app"].layer, root["app"].change, root["app"].type) == (2, "added", "dir")
    assert (root["bin"].layer, root["bin"].change) == (0, "added")
    assert (root["etc"].layer, root["etc"].change) == (1, "changed")
    assert (root["lib"].type, root["lib"].link_target, root["lib"].mode) == ("symlink", "usr/lib", "lrwxrwxrwx")
    assert root["tmp"].mode == "drwxrwxrwt"


@pytest.mark.usefixtures("v1")
async def test_whiteouts_and_opaque_directories_hide_lower_entries(files: ImageFiles) -> None:
    etc = by_name((await files.directory(NAME, "v1", "/etc")).entries)
    assert "motd" not in etc
    assert (etc["passwd"].layer, etc["passwd"].change, etc["passwd"].size) == (1, "changed", 29)
    assert (etc["abs-link"].type, etc["abs-link"].link_target) == ("symlink", "/etc/passwd")
    cache = await files.directory(NAME, "v1", "/var/cache/")
    assert names(cache.entries) == ["new"]
    with pytest.raises(NotFound):
        await files.directory(NAME, "v1", "/var/cache/sub")


@pytest.mark.usefixtures("v1")
async def test_symlinked_directories_and_implicit_parents(files: ImageFiles) -> None:
    lib = await files.directory(NAME, "v1", "/lib")
    assert lib.path == "/usr/lib"
    assert [(e.name, e.layer, e.change) for e in lib.entries] == [
        ("libc.so", 0, "added"),
        ("libextra.so", 1, "added"),
        ("libz.so", 1, "added"),
    ]
    tool = by_name((await files.directory(NAME, "v1", "opt/tool")).entries)
    assert (tool["bin"].type, tool["bin"].mode, tool["bin"].uid, tool["bin"].layer) == ("dir", "drwxr-xr-x", 0, 0)
    run = by_name((await files.directory(NAME, "v1", "/opt/tool/bin")).entries)["run"]
    assert (run.mode, run.size, run.path) == ("-rwsr-xr-x", 10, "/opt/tool/bin/run")


@pytest.mark.usefixtures("v1")
async def test_missing_directories_are_not_found(files: ImageFiles) -> None:
    for path in ("/nope", "/etc/passwd", "/etc/loop1"):
        with pytest.raises(NotFound):
            await files.directory(NAME, "v1", path)


# -- file content -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("v1")
async def test_text_of_a_file_changed_by_an_upper_layer(files: ImageFiles) -> None:
    content = await files.file(NAME, "v1", "/etc/passwd")
    assert (content.path, content.text, content.size) == ("/etc/passwd", "root:x:0:0\nalice:x:1000:1000\n", 29)
    assert (content.truncated, content.binary) == (False, False)
    assert (await files.file(NAME, "v1", "/app/hello.txt")).text == "hi\n"


@pytest.mark.usefixtures("v1")
@pytest.mark.parametrize("path", ["/etc/abs-link", "/etc/escape", "/lib/../../etc/passwd", "/../../etc/passwd"])
async def test_symlinks_resolve_inside_the_image_root(files: ImageFiles, path: str) -> None:
    content = await files.file(NAME, "v1", path)
    assert (content.path, content.text) == ("/etc/passwd", "root:x:0:0\nalice:x:1000:1000\n")


@pytest.mark.usefixtures("v1")
async def test_binaries_symlinks_and_hardlinks(files: ImageFiles) -> None:
    for path in ("/bin/sh", "/bin/ash", "/bin/busybox"):
        content = await files.file(NAME, "v1", path)
        assert (content.text, content.binary, content.size) == (None, True, len(BUSYBOX)), path
    assert (await files.file(NAME, "v1", "/lib/libz.so")).text == "libz"
    extra = await files.file(NAME, "v1", "/lib/libextra.so")  # written as lib/libextra.so, through the symlink
    assert (extra.path, extra.text) == ("/usr/lib/libextra.so", "extra")


@pytest.mark.usefixtures("v1")
async def test_long_files_are_truncated_at_the_limit(catalog_client: Client) -> None:
    app = catalog_client.server.app
    assert app is not None
    small = ImageFiles(app[registry_keys.STORE], text_limit=8)
    try:
        content = await small.file(NAME, "v1", "/etc/passwd")
    finally:
        small.close()
    assert (content.text, content.truncated, content.size) == ("root:x:0", True, 29)


@pytest.mark.usefixtures("v1")
async def test_paths_that_are_not_regular_files(files: ImageFiles) -> None:
    with pytest.raises(NotFound, match="too many levels of symbolic links"):
        await files.file(NAME, "v1", "/etc/loop1")
    for missing in ("/etc/motd", "/var/cache/old", "/nope", "/lib/../etc/passwd"):  # /lib/.. is /usr
        with pytest.raises(NotFound, match=f"no file {missing}"):
            await files.file(NAME, "v1", missing)
    with pytest.raises(InvalidInput, match="/etc is a dir, not a regular file"):
        await files.file(NAME, "v1", "/etc")
    with pytest.raises(InvalidInput, match="NUL"):
        await files.file(NAME, "v1", "/etc/pass\x00wd")


# -- one layer --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("v1")
async def test_what_one_layer_did(files: ImageFiles) -> None:
    changes = [(e.path, e.change, e.type) for e in await files.layer(NAME, "v1", 1)]
    assert changes == [
        ("/etc", "changed", "dir"),
        ("/etc/motd", "deleted", "file"),
        ("/etc/passwd", "changed", "file"),
        ("/usr/lib/libextra.so", "added", "file"),
        ("/usr/lib/libz.so", "added", "file"),
        ("/var/cache", "changed", "dir"),
        ("/var/cache/new", "added", "file"),
        ("/var/cache/old", "deleted", "file"),
        ("/var/cache/sub", "deleted", "dir"),
    ]
    assert all(e.layer == 1 for e in await files.layer(NAME, "v1", 1))
    top = await files.layer(NAME, "v1", 2)
    assert [(e.path, e.change) for e in top] == [("/app", "added"), ("/app/hello.txt", "added")]


@pytest.mark.usefixtures("v1")
async def test_a_layer_index_out_of_range_is_not_found(files: ImageFiles) -> None:
    for index in (3, -1):
        with pytest.raises(NotFound, match="has no layer"):
            await files.layer(NAME, "v1", index)


# -- diffs ------------------------------------------------------------------------------------------------------


async def test_diff_between_two_tags(catalog_client: Client, files: ImageFiles, v1: PushedImage) -> None:
    v2 = await push_image(
        catalog_client, NAME, "v2", {"app/hello.txt": b"hello v2\n", "app/new.txt": b"new"}, base=[BASE, UPDATE_V2]
    )
    diff = await files.diff(NAME, "v1", "v2")
    assert (diff.from_tag, diff.to_tag, diff.platform) == ("v1", "v2", "linux/amd64")
    assert [layer.digest for layer in diff.layers_added] == [v2.layers[1].digest, v2.layers[2].digest]
    assert [layer.digest for layer in diff.layers_removed] == [v1.layers[1].digest, v1.layers[2].digest]
    assert diff.layers_added[0].created_by == "RUN adduser bob"
    changes = {c.path: (c.change, c.type, c.size_before, c.size_after) for c in diff.files}
    assert changes == {
        "/app/hello.txt": ("changed", "file", 3, 9),
        "/app/new.txt": ("added", "file", None, 3),
        "/etc/abs-link": ("deleted", "symlink", 0, None),
        "/etc/motd": ("added", "file", None, 8),
        "/etc/passwd": ("changed", "file", 29, 27),
        "/usr/lib/libextra.so": ("deleted", "file", 5, None),
        "/usr/lib/libz.so": ("deleted", "file", 4, None),
        "/var/cache/new": ("deleted", "file", 5, None),
        "/var/cache/old": ("added", "file", None, 5),
        "/var/cache/sub": ("added", "dir", None, 0),
        "/var/cache/sub/deep": ("added", "file", None, 6),
    }
    same = await files.diff(NAME, "v1", "v1")
    assert (same.files, same.layers_added, same.layers_removed) == ([], [], [])


async def test_a_content_only_change_is_a_change(catalog_client: Client, files: ImageFiles) -> None:
    await push_image(catalog_client, NAME, "a", {"f": b"same size 1"})
    await push_image(catalog_client, NAME, "b", {"f": b"same size 2"})
    diff = await files.diff(NAME, "a", "b")
    assert [(c.path, c.change, c.size_before, c.size_after) for c in diff.files] == [("/f", "changed", 11, 11)]


# -- tags, platforms, artifacts ---------------------------------------------------------------------------------


async def test_platforms_of_an_index(catalog_client: Client, files: ImageFiles) -> None:
    amd = await push_image(catalog_client, NAME, None, {"arch": b"amd64"})
    arm = await push_image(catalog_client, NAME, None, {"arch": b"arm64"}, architecture="arm64")
    await push_index(catalog_client, NAME, "multi", [arm, amd])
    assert (await files.file(NAME, "multi", "/arch")).text == "amd64"
    for platform in ("linux/arm64", "linux/arm64/v8"):
        listing = await files.directory(NAME, "multi", platform=platform)
        assert listing.platform == "linux/arm64/v8"
        assert (await files.file(NAME, "multi", "/arch", platform)).text == "arm64"
    with pytest.raises(NotFound, match="has no platform linux/s390x"):
        await files.directory(NAME, "multi", platform="linux/s390x")
    with pytest.raises(InvalidInput, match="platform must be"):
        await files.directory(NAME, "multi", platform="linux")
    assert (await files.directory(NAME, amd.digest)).platform == "linux/amd64"  # a digest works as a tag
    with pytest.raises(NotFound, match="has no platform"):
        await files.directory(NAME, amd.digest, platform="linux/arm64")


async def test_unknown_and_invalid_tags(files: ImageFiles, v1: PushedImage) -> None:
    with pytest.raises(NotFound):
        await files.directory(NAME, "nope")
    with pytest.raises(NotFound):
        await files.directory("lib/other", "v1")
    with pytest.raises(InvalidInput, match="invalid tag"):
        await files.directory(NAME, "bad tag!")
    with pytest.raises(NotFound):
        await files.diff(NAME, "v1", "nope")
    assert v1.tag == "v1"


async def test_artifacts_have_no_files(catalog_client: Client, files: ImageFiles, v1: PushedImage) -> None:
    signature = await push_artifact(catalog_client, NAME, v1, "application/vnd.example.signature", b"sig")
    with pytest.raises(InvalidInput, match="is an artifact"):
        await files.directory(NAME, signature.digest)


async def test_listings_are_read_from_storage_once(catalog_client: Client, v1: PushedImage) -> None:
    app = catalog_client.server.app
    assert app is not None
    store: Store = app[registry_keys.STORE]
    counting = Counting(store.driver)
    image_files = ImageFiles(Store.build(counting))
    try:
        first = await image_files.directory(NAME, "v1", "/etc")
        assert counting.layer_reads == len(v1.layers)
        assert await image_files.directory(NAME, "v1", "/etc") == first
        await image_files.layer(NAME, "v1", 1)
        await image_files.diff(NAME, "v1", "v1")
        assert counting.layer_reads == len(v1.layers)
        await image_files.file(NAME, "v1", "/etc/passwd")  # file content is streamed again, up to the file
        assert counting.layer_reads == len(v1.layers) + 1
    finally:
        image_files.close()


class Counting:
    """A driver wrapper counting the streams opened (``reader``); everything else goes to the wrapped driver."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.layer_reads = 0

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        self.layer_reads += 1
        return self.inner.reader(path, offset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- the API ----------------------------------------------------------------------------------------------------

API = "/api/v1/catalog/repositories"


def wired(app: web.Application, *, token: bool) -> web.Application:
    """``app`` with the catalog API, the file API and the ``Catalog`` (unless ``create_app`` mounted them)."""
    paths = {route.resource.canonical for route in app.router.routes() if route.resource is not None}
    if not any(path.endswith("/files") for path in paths):
        add_files_api(app)
    if "/api/v1/catalog/search" not in paths:
        add_catalog_api(app)

    async def open_catalog(app: web.Application) -> None:
        if keys.CATALOG not in app:
            accounts = app[GUARD].accounts if token else None
            app[keys.CATALOG] = Catalog(app[keys.ENGINE], app[registry_keys.STORE], accounts, index=app[keys.INDEX])

    app.on_startup.append(open_catalog)
    return app


@pytest.fixture
async def api(aiohttp_client: ClientFactory, tmp_path: Path) -> Client:
    client = await aiohttp_client(wired(create_app(catalog_settings(tmp_path)), token=False))
    await push_image(client, NAME, "v1", {"app/hello.txt": b"hi\n"}, base=[BASE, UPDATE])
    return client


async def error_of(resp: ClientResponse, status: int) -> tuple[str, str]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    return body["error"]["code"], body["error"]["message"]


async def test_api_lists_a_directory_and_reads_a_file(api: Client) -> None:
    resp = await api.get(f"{API}/{NAME}/-/tags/v1/files", params={"path": "/etc"})
    assert resp.status == 200, await resp.text()
    listing = await resp.json()
    assert (listing["path"], listing["platform"]) == ("/etc", "linux/amd64")
    passwd = next(entry for entry in listing["entries"] if entry["name"] == "passwd")
    assert (passwd["layer"], passwd["change"], passwd["mode"]) == (1, "changed", "-rw-r--r--")
    root = await (await api.get(f"{API}/{NAME}/-/tags/v1/files")).json()
    assert [entry["name"] for entry in root["entries"]][:2] == ["app", "bin"]
    resp = await api.get(f"{API}/{NAME}/-/tags/v1/file", params={"path": "/etc/abs-link", "platform": ""})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["text"] == "root:x:0:0\nalice:x:1000:1000\n"


async def test_api_layer_and_diff(api: Client) -> None:
    resp = await api.get(f"{API}/{NAME}/-/tags/v1/layers/2")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["index"], [e["path"] for e in body["entries"]]) == (2, ["/app", "/app/hello.txt"])
    await push_image(api, NAME, "v2", {"app/hello.txt": b"bye\n"}, base=[BASE, UPDATE])
    resp = await api.get(f"{API}/{NAME}/-/diff", params={"from": "v1", "to": "v2"})
    assert resp.status == 200, await resp.text()
    diff = await resp.json()
    assert [(f["path"], f["change"]) for f in diff["files"]] == [("/app/hello.txt", "changed")]
    assert len(diff["layers_added"]) == len(diff["layers_removed"]) == 1


@pytest.mark.parametrize(
    ("url", "params", "status", "code", "message"),
    [
        (f"{API}/lib/unknown/-/tags/v1/files", {}, 404, "NOT_FOUND", "not found"),
        (f"{API}/{NAME}/-/tags/nope/files", {}, 404, "NOT_FOUND", "no manifest nope"),
        (f"{API}/{NAME}/-/tags/v1/files", {"path": "/nope"}, 404, "NOT_FOUND", "no directory /nope"),
        (f"{API}/{NAME}/-/tags/v1/files", {"platform": "linux"}, 400, "INVALID_INPUT", "platform must be"),
        (f"{API}/{NAME}/-/tags/v1/file", {}, 400, "INVALID_INPUT", "'path' is required"),
        (f"{API}/{NAME}/-/tags/v1/file", {"path": "/etc"}, 400, "INVALID_INPUT", "not a regular file"),
        (f"{API}/{NAME}/-/tags/v1/layers/x", {}, 400, "INVALID_INPUT", "non-negative integer"),
        (f"{API}/{NAME}/-/tags/v1/layers/9", {}, 404, "NOT_FOUND", "has no layer 9"),
        (f"{API}/{NAME}/-/diff", {"from": "v1"}, 400, "INVALID_INPUT", "'to' is required"),
        (f"{API}/{NAME}/-/diff", {"from": "v1", "to": "v9"}, 404, "NOT_FOUND", "no manifest v9"),
    ],
)
async def test_api_errors(api: Client, url: str, params: dict[str, str], status: int, code: str, message: str) -> None:
    found_code, found_message = await error_of(await api.get(url, params=params), status)
    assert found_code == code
    assert message in found_message


async def test_api_an_unreadable_layer_is_422(api: Client) -> None:
    await push_image(api, NAME, "broken", {"f": b"x"}, base=[Layer(b"", b"\x1f\x8b not gzip at all", "broken")])
    _, message = await error_of(await api.get(f"{API}/{NAME}/-/tags/broken/files"), 422)
    assert "is not a readable tar layer" in message


async def test_api_operations_are_in_the_openapi_document(api: Client) -> None:
    resp = await api.get("/api/v1/openapi.json")
    assert resp.status == 200
    paths = (await resp.json())["paths"]
    for suffix in ("/-/tags/{tag}/files", "/-/tags/{tag}/file", "/-/tags/{tag}/layers/{index}", "/-/diff"):
        assert "get" in paths[f"{API}/{{name}}{suffix}"], suffix
    assert paths[f"{API}/{{name}}/-/diff"]["get"]["operationId"] == "diffTags"


async def test_api_private_repositories_are_hidden_from_outsiders(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(wired(create_app(catalog_settings(tmp_path, token=True)), token=True))
    app = client.server.app
    assert app is not None
    for user in ("alice", "bob"):
        await app[GUARD].accounts.add_user(user, PASSWORDS[user], admin=False, actor="test")
    headers = await auth_headers(client, "alice", "repository:alice/app:pull,push")
    await push_image(client, "alice/app", "v1", {"secret.txt": b"s3cret\n"}, headers=headers)
    catalog = app[keys.CATALOG]
    await catalog.set_visibility(await catalog.viewer("alice"), "alice/app", "private")
    urls = [
        f"{API}/alice/app/-/tags/v1/files",
        f"{API}/alice/app/-/tags/v1/file?path=/secret.txt",
        f"{API}/alice/app/-/tags/v1/layers/0",
        f"{API}/alice/app/-/diff?from=v1&to=v1",
        f"{API}/alice/app/-/tags/v1/layers/not-a-number",  # 404 before the parameters are looked at
    ]
    for url in urls:
        for outsider in ({}, basic("bob")):
            code, _ = await error_of(await client.get(url, headers=outsider), 404)
            assert code == "NOT_FOUND"
    for url in urls[:-1]:
        resp = await client.get(url, headers=basic("alice"))
        assert resp.status == 200, await resp.text()
    assert (await (await client.get(urls[1], headers=basic("alice"))).json())["text"] == "s3cret\n"

"""The storage driver contract, run against every driver."""

from __future__ import annotations

import asyncio
import os

import pytest

from storage.driver import StorageDriver
from storage.errors import InvalidOffset, InvalidPath, PathNotFound


async def read_all(driver: StorageDriver, path: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset)])


async def test_put_get_roundtrip_and_overwrite(driver: StorageDriver) -> None:
    await driver.put_content("/a/b/c", b"one")
    assert await driver.get_content("/a/b/c") == b"one"
    await driver.put_content("/a/b/c", b"two!")
    assert await driver.get_content("/a/b/c") == b"two!"
    info = await driver.stat("/a/b/c")
    assert (info.size, info.is_dir, info.path) == (4, False, "/a/b/c")
    assert (await driver.stat("/a/b")).is_dir


async def test_empty_file(driver: StorageDriver) -> None:
    await driver.put_content("/empty", b"")
    assert await driver.get_content("/empty") == b""
    assert (await driver.stat("/empty")).size == 0
    assert await read_all(driver, "/empty") == b""


async def test_missing_paths(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFound):
        await driver.get_content("/nope")
    with pytest.raises(PathNotFound):
        await driver.stat("/nope")
    with pytest.raises(PathNotFound):
        await driver.list("/nope")
    with pytest.raises(PathNotFound):
        await driver.delete("/nope")
    with pytest.raises(PathNotFound):
        await driver.move("/nope", "/other")
    with pytest.raises(PathNotFound):
        await read_all(driver, "/nope")


@pytest.mark.parametrize("bad", ["relative", "/a/../b", "/a/./b", "/a//b", "/a/", "/a b", "/a/%2e%2e", "", "/ü"])
async def test_invalid_keys_are_refused(driver: StorageDriver, bad: str) -> None:
    with pytest.raises(InvalidPath):
        await driver.put_content(bad, b"x")
    with pytest.raises(InvalidPath):
        await driver.get_content(bad)


async def test_reader_offsets(driver: StorageDriver) -> None:
    data = os.urandom(3 << 20)
    await driver.put_content("/big", data)
    assert await read_all(driver, "/big") == data
    assert await read_all(driver, "/big", 12345) == data[12345:]
    assert await read_all(driver, "/big", len(data)) == b""
    with pytest.raises(InvalidOffset):
        await read_all(driver, "/big", len(data) + 1)


async def test_writer_commit_append_cancel(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/data")
    await writer.write(b"hello ")
    await writer.close()
    again = await driver.writer("/up/data", append=True)
    assert again.size == 6
    await again.write(b"world")
    assert again.size == 11
    await again.commit()
    assert await driver.get_content("/up/data") == b"hello world"
    fresh = await driver.writer("/up/data")
    assert fresh.size == 0
    await fresh.write(b"x")
    await fresh.cancel()
    with pytest.raises(PathNotFound):
        await driver.get_content("/up/data")


async def test_large_multipart_write(driver: StorageDriver) -> None:
    parts = [os.urandom(1 << 20) for _ in range(12)]
    writer = await driver.writer("/large")
    for part in parts:
        await writer.write(part)
    await writer.commit()
    assert await read_all(driver, "/large") == b"".join(parts)


async def test_list_direct_children_sorted(driver: StorageDriver) -> None:
    for key in ("/d/b", "/d/a/x", "/d/a/y", "/d/c/z/deep", "/other"):
        await driver.put_content(key, b"1")
    assert await driver.list("/d") == ["/d/a", "/d/b", "/d/c"]
    assert await driver.list("/") == ["/d", "/other"]
    files = sorted([info.path async for info in driver.walk("/d")])
    assert files == ["/d/a/x", "/d/a/y", "/d/b", "/d/c/z/deep"]
    assert [info async for info in driver.walk("/nothing/here")] == []


async def test_list_many_keys(driver: StorageDriver) -> None:
    await asyncio.gather(*(driver.put_content(f"/many/k{i:05d}", b"v") for i in range(1500)))
    listed = await driver.list("/many")
    assert len(listed) == 1500
    assert listed == sorted(listed)


async def test_move_replaces(driver: StorageDriver) -> None:
    await driver.put_content("/src", b"new")
    await driver.put_content("/dst/x", b"old")
    await driver.move("/src", "/dst/x")
    assert await driver.get_content("/dst/x") == b"new"
    with pytest.raises(PathNotFound):
        await driver.stat("/src")
    await driver.put_content("/src2", b"deep")
    await driver.move("/src2", "/new/parent/dirs/file")
    assert await driver.get_content("/new/parent/dirs/file") == b"deep"


async def test_delete_is_recursive(driver: StorageDriver) -> None:
    for key in ("/t/a", "/t/b/c", "/t/b/d/e", "/keep"):
        await driver.put_content(key, b"1")
    await driver.delete("/t")
    with pytest.raises(PathNotFound):
        await driver.stat("/t/b/c")
    assert await driver.get_content("/keep") == b"1"


async def test_delete_leaves_keys_that_merely_share_the_prefix(driver: StorageDriver) -> None:
    for key in ("/tags/latest/link", "/tags/latest-arm64/link", "/tags/latest.1", "/tags/latestx"):
        await driver.put_content(key, b"1")
    await driver.delete("/tags/latest")
    assert await driver.list("/tags") == ["/tags/latest-arm64", "/tags/latest.1", "/tags/latestx"]
    await driver.delete("/tags/latest.1")  # a file, with siblings whose names extend its own
    assert await driver.list("/tags") == ["/tags/latest-arm64", "/tags/latestx"]


async def test_delete_record_removes_one_record_and_the_directories_it_empties(driver: StorageDriver) -> None:
    for key in ("/s/u1/startedat", "/s/u2/startedat", "/s/u1x", "/s/u1/startedat-old"):
        await driver.put_content(key, b"1")
    await driver.delete_record("/s/u1/startedat")
    assert await driver.list("/s/u1") == ["/s/u1/startedat-old"]  # a sibling sharing the name's start stays
    await driver.delete_record("/s/u1/startedat-old")
    assert await driver.list("/s") == ["/s/u1x", "/s/u2"]  # the emptied directory is gone
    await driver.delete_record("/s/u1/startedat")  # missing: no error
    await driver.delete_record("/s/u2/startedat")
    await driver.delete_record("/s/u1x")
    with pytest.raises(PathNotFound):
        await driver.stat("/s")


async def test_delete_record_with_a_folder_to_keep_deletes_the_same(driver: StorageDriver) -> None:
    """``keep`` only spares an emptied directory (where directories are real): what is deleted, and what is
    listed, is the same."""
    for key in ("/r/_uploads/u1/startedat", "/r/_uploads/u2/startedat"):
        await driver.put_content(key, b"1")
    await driver.delete_record("/r/_uploads/u1/startedat", keep="/r/_uploads")
    assert await driver.list("/r/_uploads") == ["/r/_uploads/u2"]
    await driver.delete_record("/r/_uploads/u2/startedat", keep="/r/_uploads")
    assert [info async for info in driver.walk("/r")] == []
    with pytest.raises(PathNotFound):
        await driver.stat_file("/r/_uploads/u2/startedat")


async def test_stat_file_sees_files_only(driver: StorageDriver) -> None:
    await driver.put_content("/d/record", b"12345")
    info = await driver.stat_file("/d/record")
    assert (info.path, info.size, info.is_dir) == ("/d/record", 5, False)
    assert info.modified == (await driver.stat("/d/record")).modified
    for not_a_file in ("/d", "/d/nope", "/"):
        with pytest.raises(PathNotFound):
            await driver.stat_file(not_a_file)


async def test_concurrent_writers_of_same_key(driver: StorageDriver) -> None:
    values = [bytes([i]) * 100_000 for i in range(8)]
    await asyncio.gather(*(driver.put_content("/race", v) for v in values))
    assert await driver.get_content("/race") in values


async def test_redirect_and_local_path(driver: StorageDriver) -> None:
    await driver.put_content("/f", b"x")
    assert await driver.redirect_url("/f") is None
    local = driver.local_path("/f")
    if local is not None:
        assert local.read_bytes() == b"x"


async def test_multipart_writer_continues_across_close(driver: StorageDriver) -> None:
    first, second = os.urandom(7 << 20), os.urandom(6 << 20)
    writer = await driver.writer("/mp/data")
    await writer.write(first)
    await writer.close()
    assert (await driver.stat("/mp/data")).size == len(first)
    if driver.name == "s3":  # kept apart from the key until committed: not a file yet
        with pytest.raises(PathNotFound):
            await driver.stat_file("/mp/data")
    again = await driver.writer("/mp/data", append=True)
    assert again.size == len(first)
    await again.write(second)
    await again.commit()
    assert await read_all(driver, "/mp/data") == first + second
    assert await driver.list("/mp") == ["/mp/data"]
    assert (await driver.stat_file("/mp/data")).size == len(first + second)


async def test_a_writer_closed_without_a_write_changes_nothing(driver: StorageDriver) -> None:
    unused = await driver.writer("/none/data", append=True)
    assert unused.size == 0
    await unused.close()
    with pytest.raises(PathNotFound):
        await driver.stat("/none/data")
    writer = await driver.writer("/open/data")
    await writer.write(b"abc")
    await writer.close()
    for _ in range(2):  # an unfinished file, then a committed one
        unused = await driver.writer("/open/data", append=True)
        assert unused.size == 3
        await unused.close()
        assert (await driver.stat("/open/data")).size == 3
        again = await driver.writer("/open/data", append=True)
        await again.commit()
    assert await read_all(driver, "/open/data") == b"abc"


async def test_cancel_after_close_removes_everything(driver: StorageDriver) -> None:
    writer = await driver.writer("/gone/data")
    await writer.write(os.urandom(6 << 20))
    await writer.close()
    again = await driver.writer("/gone/data", append=True)
    await again.cancel()
    with pytest.raises(PathNotFound):
        await driver.stat("/gone/data")
    with pytest.raises(PathNotFound):
        await driver.list("/gone")


async def test_two_appending_writers_of_one_key(driver: StorageDriver) -> None:
    """``appends_in_place``: on such a driver both writers' bytes land and each one's size after closing counts
    the other's; elsewhere the last writer to close replaces the content with what it opened plus its own."""
    first, second = await driver.writer("/two/data"), await driver.writer("/two/data", append=True)
    await first.write(b"a" * 5000)
    await second.write(b"b" * 3000)
    await first.close()
    await second.close()
    final = await driver.writer("/two/data", append=True)
    await final.commit()
    stored = await read_all(driver, "/two/data")
    if driver.appends_in_place:
        assert sorted(stored) == sorted(b"a" * 5000 + b"b" * 3000)
        assert second.size == len(stored) == 8000
    else:
        assert stored == b"b" * 3000  # the last one wins

"""The filesystem driver's own behaviour (the contract suite covers the rest): its writer keeps small writes in memory,
opens the file with the first write to disk, and a small blob costs one thread call in all; metadata calls (renames,
record deletes, small record writes) need none; key-to-file paths are remembered in a bounded table."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage import filesystem
from storage.errors import PathNotFound, StorageError, StorageFull
from storage.filesystem import INLINE_PUT, WRITE_AT_ONCE, FilesystemDriver


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the driver hands to worker threads, in order."""
    calls: list[str] = []
    original = filesystem._run

    async def counting(path: str, func: Callable[..., Any], *args: object) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await original(path, func, *args)

    monkeypatch.setattr(filesystem, "_run", counting)
    return calls


async def test_a_small_blob_is_one_thread_call(tmp_path: Path, thread_calls: list[str]) -> None:
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("objects/a")
    await writer.write(b"abc")
    await writer.write(b"def")
    assert not (tmp_path / "objects").exists()  # nothing opened yet
    assert writer.size == 6
    await writer.commit()
    assert thread_calls == ["finish"]
    assert (tmp_path / "objects" / "a").read_bytes() == b"abcdef"


async def test_large_writes_go_to_disk_as_they_come(tmp_path: Path, thread_calls: list[str]) -> None:
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("big")
    piece = b"x" * WRITE_AT_ONCE
    await writer.write(b"head")
    await writer.write(piece)  # with what was pending: written now
    assert (tmp_path / "big").stat().st_size == WRITE_AT_ONCE + 4
    await writer.write(b"tail")
    await writer.commit()
    assert thread_calls == ["flush", "finish"]
    assert (tmp_path / "big").read_bytes() == b"head" + piece + b"tail"


async def test_metadata_calls_run_without_a_thread(tmp_path: Path, thread_calls: list[str]) -> None:
    """What a blob upload's final PUT does after the fsync (rename the bytes into place, write the repository link,
    delete the session record) costs no thread hand-off; content larger than a record, or a durable record, is
    written in a thread."""
    driver = FilesystemDriver(tmp_path)
    await driver.put_content("uploads/u/startedat", b"1.0")
    (tmp_path / "uploads" / "u" / "data").write_bytes(b"blob")
    await driver.move("uploads/u/data", "blobs/ab/data")
    await driver.put_content("repo/_layers/ab/link", b"sha256:ab")
    await driver.delete_record("uploads/u/startedat")
    assert thread_calls == []
    assert (tmp_path / "blobs" / "ab" / "data").read_bytes() == b"blob"
    assert not (tmp_path / "uploads").exists()  # the emptied session directory is pruned
    await driver.put_content("big", b"x" * (INLINE_PUT + 1))
    await FilesystemDriver(tmp_path, fsync_puts=True).put_content("durable", b"1")
    assert thread_calls == ["_write_atomic", "_write_atomic"]
    with pytest.raises(PathNotFound):
        await driver.move("uploads/missing", "blobs/cd/data")  # errors are translated as in a thread


async def test_deleting_a_record_keeps_the_folder_asked_for(tmp_path: Path) -> None:
    """The emptied directories above a deleted record are removed up to, not including, ``keep``; a ``keep`` that
    is not above the record changes nothing."""
    driver = FilesystemDriver(tmp_path)
    await driver.put_content("r/_uploads/u1/startedat", b"1")
    await driver.put_content("r/_layers/x/link", b"1")
    await driver.delete_record("r/_uploads/u1/startedat", keep="r/_uploads")
    assert (tmp_path / "r" / "_uploads").is_dir()
    assert list((tmp_path / "r" / "_uploads").iterdir()) == []
    await driver.delete_record("r/_layers/x/link", keep="r/_uploads")
    assert not (tmp_path / "r" / "_layers").exists()


async def test_metadata_calls_let_other_tasks_run(tmp_path: Path) -> None:
    """A caller making many metadata calls in a row (a manifest naming thousands of blobs rewrites their markers)
    does not hold the event loop for all of them: each call lets other tasks run."""
    driver = FilesystemDriver(tmp_path)
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    start = turns
    for n in range(20):
        await driver.put_content(f"markers/{n}", b"")
        await driver.move(f"markers/{n}", f"moved/{n}")
        await driver.delete_record(f"moved/{n}")
    ticking.cancel()
    assert turns - start >= 60


async def test_close_after_a_cancelled_commit_waits_for_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit whose request is cancelled (the client went away) leaves its thread writing and fsyncing the file; a
    close that follows returns only once that thread is done, so the next request of the upload sees the file's
    final size."""
    release = threading.Event()
    plain_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        release.wait(timeout=10)
        plain_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    writer = await FilesystemDriver(tmp_path).writer("upload", append=True)
    await writer.write(b"bytes")
    committing = asyncio.ensure_future(writer.commit())
    await asyncio.sleep(0.05)
    committing.cancel()
    closing = asyncio.ensure_future(writer.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, timeout=10)
    assert (tmp_path / "upload").read_bytes() == b"bytes"
    with pytest.raises(asyncio.CancelledError):
        await committing


async def test_append_continues_from_the_size_on_disk(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    (tmp_path / "session").write_bytes(b"12345")
    writer = await driver.writer("session", append=True)
    assert writer.size == 5
    await writer.write(b"678")
    await writer.close()
    assert (tmp_path / "session").read_bytes() == b"12345678"


async def test_closing_an_unwritten_append_writer_touches_nothing(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("new/session", append=True)
    assert writer.size == 0
    await writer.close()
    await writer.close()  # idempotent
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="closed writer"):
        await writer.write(b"late")


async def test_cancel_discards_pending_and_written_bytes(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("d/f")
    await writer.write(b"y" * WRITE_AT_ONCE)
    await writer.write(b"pending")
    await writer.cancel()
    assert not (tmp_path / "d").exists()


async def test_a_failed_write_leaves_size_at_what_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_then_full(fd: int, pieces: list[bytes]) -> None:
        data = b"".join(pieces)
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    driver = FilesystemDriver(tmp_path)
    (tmp_path / "s").write_bytes(b"0123")
    writer = await driver.writer("s", append=True)
    await writer.write(b"a" * 100)
    monkeypatch.setattr(filesystem, "_write_all", half_then_full)
    with pytest.raises(StorageFull):
        await writer.commit()
    assert writer.size == 4 + 50 == (tmp_path / "s").stat().st_size
    with pytest.raises(ValueError, match="closed writer"):
        await writer.write(b"late")
    await writer.close()  # already closed: nothing to do


@pytest.mark.parametrize("ending", ["commit", "close"])
async def test_a_failing_open_is_a_storage_error_when_the_bytes_go_to_disk(tmp_path: Path, ending: str) -> None:
    driver = FilesystemDriver(tmp_path)
    (tmp_path / "file").write_bytes(b"")
    writer = await driver.writer("file/child")  # a parent that is a file
    await writer.write(b"12345")
    with pytest.raises(StorageError):
        await getattr(writer, ending)()
    assert writer.size == 0  # what was pending is dropped


async def test_concurrent_writers_of_different_keys_do_not_mix(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)

    async def write(name: str) -> None:
        writer = await driver.writer(name)
        for i in range(20):
            await writer.write(f"{name}{i};".encode())
            await asyncio.sleep(0)
        await writer.commit()

    await asyncio.gather(*(write(f"k{n}") for n in range(5)))
    for n in range(5):
        assert (tmp_path / f"k{n}").read_text() == "".join(f"k{n}{i};" for i in range(20))


async def test_remembered_paths_are_bounded_and_stay_right(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "PATHS_REMEMBERED", 3)
    driver = FilesystemDriver(tmp_path)
    for round_ in range(2):
        for n in range(10):
            await driver.put_content(f"/k/{n}", f"{round_}:{n}".encode())
            assert len(driver._paths) <= 3
    assert [await driver.get_content(f"/k/{n}") for n in range(10)] == [f"1:{n}".encode() for n in range(10)]
    assert (tmp_path / "k" / "7").read_bytes() == b"1:7"


async def test_a_write_survives_a_prune_racing_the_creation_of_its_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request's delete prunes the empty parent ``r/_uploads`` just after this write created it and before
    it could create ``r/_uploads/u`` in it (seen in CI as a concurrent push failing with 'missing key')."""
    driver = FilesystemDriver(tmp_path)
    leaf, parent = tmp_path / "r" / "_uploads" / "u", tmp_path / "r" / "_uploads"
    real_mkdir, pruned = os.mkdir, []

    def mkdir_racing_a_prune(path: Any, mode: int = 0o777) -> None:
        if Path(path) == leaf and parent.is_dir() and not pruned:
            parent.rmdir()  # the concurrent prune wins the race once
            pruned.append(parent)
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir_racing_a_prune)
    await driver.put_content("r/_uploads/u/startedat", b"1")
    assert pruned == [parent]
    assert (leaf / "startedat").read_bytes() == b"1"

"""Early write-back of uploaded files (storage.writeback) and its use by the filesystem driver's writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import writeback
from storage.filesystem import FilesystemDriver
from storage.writeback import FIRST_WRITEBACK, WRITEBACK_STEP, start_writeback, writeback_step


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (offset, length) of each write-back the filesystem writer asks for, in order (none reaches the disk)."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(writeback, "start_writeback", lambda _fd, offset, length: calls.append((offset, length)))
    return calls


def test_sync_file_range_is_found_and_accepts_a_range(tmp_path: Path) -> None:
    assert writeback._sync_file_range is not None
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100_000)
    fd = os.open(path, os.O_RDWR)
    try:
        assert writeback._sync_file_range(fd, 0, 100_000, writeback._SYNC_FILE_RANGE_WRITE) == 0
        start_writeback(fd, 0, 100_000)
        start_writeback(fd, 0, 0)
    finally:
        os.close(fd)


def test_start_writeback_ignores_a_bad_descriptor() -> None:
    start_writeback(-1, 0, 4096)  # advice only: the fsync that follows reports real errors


def test_steps_grow_with_the_file_up_to_the_largest() -> None:
    assert [writeback_step(n) for n in (0, FIRST_WRITEBACK, 3 << 20, 100 << 20)] == [
        FIRST_WRITEBACK,
        FIRST_WRITEBACK,
        3 << 20,
        WRITEBACK_STEP,
    ]


async def test_writer_asks_for_writeback_of_each_step_in_order(tmp_path: Path, asked: list[tuple[int, int]]) -> None:
    """The first piece is written back at once; each later request covers at least as much as all before it, up to
    the largest step; what remains at the end is left to the fsync."""
    driver = FilesystemDriver(tmp_path)
    piece = bytes(range(256)) * ((3 << 20) // 256)  # 3 MiB
    writer = await driver.writer("blob")
    for _ in range(7):  # 21 MiB
        await writer.write(piece)
    await writer.commit()
    assert asked == [(0, 3 << 20), (3 << 20, 3 << 20), (6 << 20, 6 << 20), (12 << 20, 9 << 20)]
    assert (tmp_path / "blob").read_bytes() == piece * 7


async def test_a_small_blob_goes_to_disk_while_it_arrives(tmp_path: Path, asked: list[tuple[int, int]]) -> None:
    """A 1 MiB upload arrives as pieces of 256, 512 and 256 KiB (registry.store.uploads.buffered): the first two are
    written back as they come, the fsync writes the last."""
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("blob")
    for size in (256 << 10, 512 << 10, 256 << 10):
        await writer.write(b"x" * size)
    await writer.commit()
    assert asked == [(0, 256 << 10), (256 << 10, 512 << 10)]


async def test_appending_writer_counts_from_the_existing_size(tmp_path: Path, asked: list[tuple[int, int]]) -> None:
    driver = FilesystemDriver(tmp_path)
    (tmp_path / "blob").write_bytes(b"a" * (5 << 20))
    writer = await driver.writer("blob", append=True)
    step = writeback_step(5 << 20)
    await writer.write(b"b" * (step - 1))
    assert asked == []
    await writer.write(b"c")
    await writer.close()
    assert asked == [(5 << 20, step)]
    assert os.path.getsize(tmp_path / "blob") == (5 << 20) + step


async def test_closing_a_writer_starts_the_write_back_of_its_rest(tmp_path: Path, asked: list[tuple[int, int]]) -> None:
    driver = FilesystemDriver(tmp_path)
    for _chunk in range(3):  # one chunk of an upload per writer, as PATCH requests do
        writer = await driver.writer("session", append=True)
        await writer.write(b"x" * 1000)
        await writer.close()
    assert asked == [(0, 1000), (1000, 1000), (2000, 1000)]
    writer = await driver.writer("session", append=True)
    await writer.commit()  # the fsync itself writes the rest
    assert asked == [(0, 1000), (1000, 1000), (2000, 1000)]

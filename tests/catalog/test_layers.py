"""The layer reader: real (gzipped) tars read as streams from a storage driver — entry kinds, modes, whiteouts,
long names, big files, bad paths, broken blobs — plus file heads and the listing cache."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import pytest

from catalog import layers as layers_module
from catalog.errors import InvalidInput, NotFound
from catalog.layers import LayerEntry, LayerReader, UnreadableLayer, normalise
from registry.reference import Digest
from registry.store import Store
from storage.memory import MemoryDriver
from tests.support.images import random_bytes

MIB = 1 << 20


@dataclass(frozen=True)
class Member:
    """A tar member to write: ``kind`` is a :mod:`tarfile` type byte."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    link: str = ""
    uid: int = 0
    gid: int = 0


def tar_of(members: Iterable[Member]) -> bytes:
    """An uncompressed PAX tar of ``members``, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type, info.mode, info.linkname = member.kind, member.mode, member.link
            info.uid, info.gid, info.mtime = member.uid, member.gid, 1_700_000_000
            info.size = len(member.data) if member.kind == tarfile.REGTYPE else 0
            if member.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(member.data) if member.kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class CountingDriver(MemoryDriver):
    """A memory driver that counts the streams opened and the chunks handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.readers = 0
        self.chunks = 0

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        self.readers += 1
        async for chunk in super().reader(path, offset):
            self.chunks += 1
            yield chunk


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


@pytest.fixture
async def reader(driver: CountingDriver) -> AsyncIterator[LayerReader]:
    store = Store.build(driver)
    layer_reader = LayerReader(store.driver, store.blobs)
    yield layer_reader
    layer_reader.close()


async def put(reader: LayerReader, blob: bytes) -> Digest:
    digest = Digest.of(blob)
    await reader.blobs.put_small(blob, digest)
    return digest


def by_path(entries: Iterable[LayerEntry]) -> dict[str, LayerEntry]:
    return {entry.path: entry for entry in entries}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- entries ----------------------------------------------------------------------------------------------------

LONG = "usr/share/" + "/".join(["a-rather-long-directory-name"] * 6) + "/file.txt"
KINDS = [
    Member("./", tarfile.DIRTYPE, mode=0o755),
    Member("bin/", tarfile.DIRTYPE, mode=0o755),
    Member("bin/busybox", data=b"\x7fELF busybox", mode=0o755, uid=1000, gid=50),
    Member("bin/sh", tarfile.SYMTYPE, link="busybox", mode=0o777),
    Member("bin/ash", tarfile.LNKTYPE, link="./bin/busybox", mode=0o755),
    Member("usr/bin/passwd", data=b"suid", mode=0o4755),
    Member("usr/bin/wall", data=b"sgid", mode=0o2755),
    Member("tmp/", tarfile.DIRTYPE, mode=0o1777),
    Member("dev/null", tarfile.CHRTYPE, mode=0o666),
    Member("dev/sda", tarfile.BLKTYPE, mode=0o660),
    Member("run/initctl", tarfile.FIFOTYPE, mode=0o600),
    Member(LONG, data=b"long name\n"),
]


async def test_every_entry_kind_of_a_gzipped_layer(reader: LayerReader) -> None:
    digest = await put(reader, gz(tar_of(KINDS)))
    listing = await reader.listing(digest)
    assert listing.digest == str(digest)
    assert listing.skipped == ()
    found = by_path(listing.entries)
    assert "/" not in found  # the root's own "./" entry is not listed
    busybox = found["/bin/busybox"]
    assert (busybox.kind, busybox.size, busybox.uid, busybox.gid) == ("file", 12, 1000, 50)
    assert busybox.sha256 == sha(b"\x7fELF busybox")
    assert busybox.mode_string == "-rwxr-xr-x"
    assert (found["/bin/sh"].kind, found["/bin/sh"].link_target, found["/bin/sh"].mode_string) == (
        "symlink",
        "busybox",
        "lrwxrwxrwx",
    )
    ash = found["/bin/ash"]
    assert (ash.kind, ash.link_target, ash.size, ash.sha256) == ("hardlink", "/bin/busybox", 12, busybox.sha256)
    assert found["/usr/bin/passwd"].mode_string == "-rwsr-xr-x"
    assert found["/usr/bin/wall"].mode_string == "-rwxr-sr-x"
    assert found["/tmp"].mode_string == "drwxrwxrwt"
    assert (found["/dev/null"].kind, found["/dev/null"].mode_string) == ("char", "crw-rw-rw-")
    assert (found["/dev/sda"].kind, found["/dev/sda"].mode_string) == ("block", "brw-rw----")
    assert (found["/run/initctl"].kind, found["/run/initctl"].mode_string) == ("fifo", "prw-------")
    assert found["/" + LONG].sha256 == sha(b"long name\n")
    assert [e.path for e in listing.entries][:3] == ["/bin", "/bin/busybox", "/bin/sh"]  # tar order


async def test_an_uncompressed_layer_reads_the_same(reader: LayerReader) -> None:
    gzipped = await reader.listing(await put(reader, gz(tar_of(KINDS))))
    plain = await reader.listing(await put(reader, tar_of(KINDS)))
    assert plain.entries == gzipped.entries


async def test_mode_strings_show_unset_execute_bits_with_capitals() -> None:
    assert LayerEntry("/x", "file", mode=0o4644).mode_string == "-rwSr--r--"
    assert LayerEntry("/d", "dir", mode=0o1770).mode_string == "drwxrwx--T"


async def test_whiteouts_and_opaque_directories(reader: LayerReader) -> None:
    members = [
        Member("etc/", tarfile.DIRTYPE),
        Member("etc/.wh.motd"),
        Member("var/cache/", tarfile.DIRTYPE),
        Member("var/cache/.wh..wh..opq"),
        Member(".wh..wh.plnk", tarfile.DIRTYPE),  # aufs metadata: not a whiteout
        Member(".wh.opt"),
        Member(".wh..wh..opq"),
    ]
    listing = await reader.listing(await put(reader, gz(tar_of(members))))
    kinds = [(e.path, e.kind) for e in listing.entries]
    assert kinds == [
        ("/etc", "dir"),
        ("/etc/motd", "whiteout"),
        ("/var/cache", "dir"),
        ("/var/cache", "opaque"),
        ("/opt", "whiteout"),
        ("/", "opaque"),
    ]


async def test_a_file_larger_than_a_read_chunk_is_hashed_whole(reader: LayerReader, driver: CountingDriver) -> None:
    big = random_bytes(3 * MIB + 17, "big")
    listing = await reader.listing(await put(reader, gz(tar_of([Member("data/big.bin", data=big)]))))
    (entry,) = listing.entries
    assert (entry.size, entry.sha256) == (len(big), sha(big))
    assert driver.chunks >= 3  # it came through as a stream of chunks


# -- bad paths and broken blobs ---------------------------------------------------------------------------------


async def test_entries_climbing_out_of_the_root_are_skipped_not_fatal(reader: LayerReader) -> None:
    members = [
        Member("../escape", data=b"x"),
        Member("/abs/file", data=b"y"),
        Member("a/../b", data=b"z"),
        Member("ok/../../up", data=b"w"),
        Member("link", tarfile.LNKTYPE, link="../../etc/shadow"),
        Member("fine", data=b"ok"),
    ]
    listing = await reader.listing(await put(reader, gz(tar_of(members))))
    assert [e.path for e in listing.entries] == ["/abs/file", "/b", "/fine"]
    assert len(listing.skipped) == 3
    assert all("climbs out of the image root" in line for line in listing.skipped)
    assert "'../escape'" in listing.skipped[0]


def test_normalise() -> None:
    assert normalise("./usr//bin/") == "/usr/bin"
    assert normalise("/a/./b/../c") == "/a/c"
    assert normalise(".") == "/"
    with pytest.raises(ValueError, match="climbs out"):
        normalise("a/../../b")


async def test_a_truncated_gzip_is_a_clear_error(reader: LayerReader) -> None:
    blob = gz(tar_of([Member("f", data=random_bytes(200_000, "t"))]))
    digest = await put(reader, blob[: len(blob) // 2])
    with pytest.raises(UnreadableLayer, match=f"layer {digest} is not a readable tar layer") as caught:
        await reader.listing(digest)
    assert caught.value.status == 422


async def test_a_corrupt_gzip_trailer_is_a_clear_error(reader: LayerReader) -> None:
    blob = bytearray(gz(tar_of([Member("f", data=b"hello")])))
    blob[-8] ^= 0xFF  # the CRC
    with pytest.raises(UnreadableLayer, match="CRC check failed"):
        await reader.listing(await put(reader, bytes(blob)))


@pytest.mark.parametrize("blob", [b"definitely not a tar archive" * 40, b"", b"\x1f\x8bnot really gzip"])
async def test_garbage_is_a_clear_error(reader: LayerReader, blob: bytes) -> None:
    with pytest.raises(UnreadableLayer, match="is not a readable tar layer"):
        await reader.listing(await put(reader, blob))


async def test_zstd_without_the_module_is_refused_clearly(reader: LayerReader, monkeypatch: pytest.MonkeyPatch) -> None:
    real = layers_module.importlib.import_module

    def without_zstandard(name: str) -> object:
        if name == "zstandard":
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(layers_module.importlib, "import_module", without_zstandard)
    digest = await put(reader, b"\x28\xb5\x2f\xfd" + b"\x00" * 64)
    with pytest.raises(InvalidInput, match="zstd layers are not supported"):
        await reader.listing(digest)


async def test_a_missing_blob_is_not_found(reader: LayerReader) -> None:
    with pytest.raises(NotFound, match="missing from storage"):
        await reader.listing(Digest.of(b"never stored"))


# -- file heads -------------------------------------------------------------------------------------------------


async def test_head_reads_text_and_stops_at_the_file(reader: LayerReader, driver: CountingDriver) -> None:
    members = [Member("etc/hostname", data=b"box\n"), Member("blob.bin", data=random_bytes(4 * MIB, "tail"))]
    digest = await put(reader, gz(tar_of(members)))
    head = await reader.head(digest, "/etc/hostname")
    assert (head.size, head.text, head.truncated, head.binary) == (4, "box\n", False, False)
    assert driver.chunks == 1  # the 4 MiB after the file were never read


async def test_head_truncates_at_the_limit_without_breaking_a_character(reader: LayerReader) -> None:
    text = "é" * 100  # two bytes each: a limit of 51 bytes cuts one in half
    digest = await put(reader, gz(tar_of([Member("t.txt", data=text.encode())])))
    head = await reader.head(digest, "/t.txt", limit=51)
    assert (head.size, head.text, head.truncated, head.binary) == (200, "é" * 25, True, False)


@pytest.mark.parametrize("data", [b"ELF\x00\x01\x02", b"caf\xe9 latin-1", b"\xff\xfe\x00"])
async def test_head_detects_binary(reader: LayerReader, data: bytes) -> None:
    digest = await put(reader, gz(tar_of([Member("b", data=data)])))
    head = await reader.head(digest, "/b")
    assert (head.text, head.binary, head.size) == (None, True, len(data))


async def test_head_takes_the_requested_occurrence_of_a_path_written_twice(reader: LayerReader) -> None:
    digest = await put(reader, gz(tar_of([Member("f", data=b"first"), Member("./f", data=b"second")])))
    assert (await reader.head(digest, "/f")).text == "first"
    assert (await reader.head(digest, "/f", occurrence=1)).text == "second"


async def test_head_of_a_missing_or_non_regular_path_is_not_found(reader: LayerReader) -> None:
    digest = await put(reader, gz(tar_of(KINDS)))
    for path in ("/nope", "/bin", "/bin/sh"):
        with pytest.raises(NotFound, match=f"no file {path} in layer"):
            await reader.head(digest, path)


# -- the cache --------------------------------------------------------------------------------------------------


async def test_a_second_listing_comes_from_the_cache(reader: LayerReader, driver: CountingDriver) -> None:
    digest = await put(reader, gz(tar_of(KINDS)))
    first = await reader.listing(digest)
    assert driver.readers == 1
    assert await reader.listing(digest) is first
    assert driver.readers == 1


async def test_concurrent_listings_share_one_read(reader: LayerReader, driver: CountingDriver) -> None:
    digest = await put(reader, gz(tar_of([Member("big", data=random_bytes(2 * MIB, "shared"))])))
    results = await asyncio.gather(*(reader.listing(digest) for _ in range(8)))
    assert driver.readers == 1
    assert all(result is results[0] for result in results)


async def test_a_cancelled_caller_does_not_cancel_the_shared_read(reader: LayerReader, driver: CountingDriver) -> None:
    digest = await put(reader, gz(tar_of([Member("big", data=random_bytes(2 * MIB, "cancel"))])))
    impatient = asyncio.ensure_future(reader.listing(digest))
    patient = asyncio.ensure_future(reader.listing(digest))
    await asyncio.sleep(0)
    impatient.cancel()
    listing = await patient
    assert listing.entries[0].path == "/big"
    assert driver.readers == 1


async def test_the_cache_is_bounded_by_entries_least_recently_used_first(driver: CountingDriver) -> None:
    store = Store.build(driver)
    small = LayerReader(store.driver, store.blobs, cache_entries=3)
    try:
        one, two, three = [await put(small, gz(tar_of([Member(f"f{i}"), Member(f"g{i}")]))) for i in range(3)]
        await small.listing(one)
        await small.listing(two)  # 4 entries > 3: `one` goes
        assert driver.readers == 2
        await small.listing(two)
        assert driver.readers == 2
        await small.listing(one)
        assert driver.readers == 3
        big = await put(small, gz(tar_of([Member(f"h{i}") for i in range(5)])))
        await small.listing(big)
        await small.listing(big)  # larger than the whole cache: never kept
        assert driver.readers == 5
        await small.listing(three)
        assert driver.readers == 6
    finally:
        small.close()


async def test_a_failed_read_is_not_cached(reader: LayerReader, driver: CountingDriver) -> None:
    digest = await put(reader, b"garbage" * 100)
    for _ in range(2):
        with pytest.raises(UnreadableLayer):
            await reader.listing(digest)
    assert driver.readers == 2

"""Blob upload sessions, kept in storage so any process can continue them (after a restart too).

A session is its ``_uploads/<id>/startedat`` record in the repository plus its bytes: beside the record
(``_uploads/<id>/data``) where publishing renames them, in ``objects/<id>`` on S3 (:meth:`UploadStore.data_key`).
Publishing follows one fixed order: on the final PUT the bytes are made durable (the S3 multipart upload
completes), their digest is verified, they become the blob (:meth:`BlobStore.publish`: a rename where
cheap, else a pointer, never a copy), the repository link is written, the session record is removed.
A reader therefore never sees a partial or unverified blob, and a digest mismatch keeps nothing.

The running SHA-256 of a session is kept in the process its bytes arrive in: the one that started the session,
or on a driver whose writers append in place (the filesystem) any process that receives its first byte (docker
and skopeo often send the POST and the PATCH on different connections, so to different ``--workers``). When the
bytes of one session arrived in several processes, or the stored size after a request is not what that request
left (two processes appending at once), or the server restarted in between, they are re-read once at the end to
verify them. Where writers replace the content they opened (S3), only the starting process trusts its hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest
from registry.store import links
from registry.store.blobs import BlobStore
from registry.store.paths import key
from storage.driver import StorageDriver, Writer
from storage.errors import PathNotFound

BUFFER = 1 << 20
FIRST_PIECE = 256 << 10
HASH_INLINE = 64 << 10  # ~40 us of SHA-256 here
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_IDLE_FORGET = 3600.0


@dataclass
class _Session:
    """In-process state of a session: its lock and, while valid, the running hash of bytes [0, offset)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    offset: int = 0
    hasher: Any = None
    touched: float = field(default_factory=time.monotonic)


async def buffered(body: AsyncIterator[bytes], size: int = BUFFER, first: int = FIRST_PIECE) -> AsyncIterator[bytes]:
    """Regroup a stream of small network chunks into pieces of about ``size`` bytes; the first pieces are
    smaller (``first``, doubling up to ``size``), so storing a small blob starts while the rest of it arrives."""
    pending: list[bytes] = []
    pending_len = 0
    target = min(first, size)
    async for chunk in body:
        pending.append(chunk)
        pending_len += len(chunk)
        if pending_len >= target:
            yield b"".join(pending)
            pending, pending_len = [], 0
            target = min(target * 2, size)
    if pending_len:
        yield b"".join(pending)


def _hash_piece(hasher: Any, piece: bytes) -> asyncio.Future[None] | None:
    """Feed ``piece`` to ``hasher`` (when there is one): a large piece in a worker thread (hashing releases the GIL),
    returned as the future to wait for; a small one here and now, where it takes less time than a thread hand-off."""
    if hasher is None:
        return None
    if len(piece) <= HASH_INLINE:
        hasher.update(piece)
        return None
    return asyncio.ensure_future(asyncio.to_thread(hasher.update, piece))


async def _settle(*work: Awaitable[Any] | None) -> None:
    """Wait for every given piece of work; the first failure is raised (the others may still run: see
    :func:`_drain`)."""
    await asyncio.gather(*(w for w in work if w is not None))


async def _drain(*work: asyncio.Future[Any] | None) -> None:
    """Wait until every given future is done, whatever its outcome."""
    await asyncio.gather(*(w for w in work if w is not None), return_exceptions=True)


def _new_hasher() -> Any:
    """The running hash of a session's bytes: SHA-256, the digest of nearly every blob (another algorithm named at
    the end is checked by re-reading the bytes)."""
    return Digest.of(b"").hasher()


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, f"upload {upload_id[:64]!r} unknown", {"uuid": upload_id[:64]})


def range_header(offset: int) -> str:
    """The ``Range`` header of a session holding ``offset`` bytes (``0-0`` when empty, as Distribution)."""
    return f"0-{max(offset - 1, 0)}"


class UploadStore:
    """Start, append to, finish and cancel upload sessions; mount blobs across repositories."""

    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self.driver = driver
        self.blobs = blobs
        self._sessions: dict[str, _Session] = {}

    def _session(self, upload_id: str) -> _Session:
        now = time.monotonic()
        if len(self._sessions) > 1000:
            for stale in [
                k for k, s in self._sessions.items() if now - s.touched > _IDLE_FORGET and not s.lock.locked()
            ]:
                del self._sessions[stale]
        session = self._sessions.setdefault(upload_id, _Session())
        session.touched = now
        return session

    def data_key(self, name: str, upload_id: str) -> str:
        """Where the bytes of session ``upload_id`` of ``name`` are written: in the session's directory where a
        move is a rename (it exists from the session's start: no other directory is created, and removed, per
        upload), else in ``objects/<id>``, where they stay as the blob's object (S3)."""
        if self.driver.moves_are_cheap:
            return key("upload_staged", name=name, upload=upload_id)
        return key("upload_data", upload=upload_id)

    async def start(self, name: str) -> str:
        """Open a new session in repository ``name``; returns its id."""
        upload_id = str(uuid.uuid4())
        await self.driver.put_content(key("upload_started", name=name, upload=upload_id), f"{time.time():.6f}".encode())
        self._session(upload_id).hasher = _new_hasher()
        return upload_id

    async def check(self, name: str, upload_id: str) -> None:
        """BLOB_UPLOAD_UNKNOWN unless ``upload_id`` is an open session of repository ``name``."""
        if not _UUID_RE.fullmatch(upload_id):
            raise _unknown(upload_id)
        if not await links.exists(self.driver, key("upload_started", name=name, upload=upload_id)):
            raise _unknown(upload_id)

    async def offset(self, name: str, upload_id: str) -> int:
        """Bytes received so far, or BLOB_UPLOAD_UNKNOWN."""
        await self.check(name, upload_id)
        try:
            return (await self.driver.stat(self.data_key(name, upload_id))).size
        except PathNotFound:
            return 0

    async def append(self, name: str, upload_id: str, body: AsyncIterator[bytes], start: int | None = None) -> int:
        """Append a chunk; ``start`` (from ``Content-Range``) must equal the current size, else 416."""
        async with self._exclusive(name, upload_id) as (session, writer):
            return await self._append_locked(name, upload_id, session, writer, body, start)

    @contextlib.asynccontextmanager
    async def _exclusive(self, name: str, upload_id: str) -> AsyncIterator[tuple[_Session, Writer]]:
        """The session, held against this process's other requests for it, and a writer appending to its bytes;
        BLOB_UPLOAD_UNKNOWN unless the session is open. It is checked once held (a request that waited for another
        may find the session finished or cancelled), while the writer opens."""
        if not _UUID_RE.fullmatch(upload_id):
            raise _unknown(upload_id)
        session = self._session(upload_id)
        async with session.lock:
            opened, checked = await asyncio.gather(
                self.driver.writer(self.data_key(name, upload_id), append=True),
                self.check(name, upload_id),
                return_exceptions=True,
            )
            if isinstance(checked, BaseException):
                if not isinstance(opened, BaseException):
                    await opened.close()  # nothing written: changes nothing
                if isinstance(checked, RegistryError):  # no such session: keep no state for it
                    self._sessions.pop(upload_id, None)
                raise checked
            if isinstance(opened, BaseException):
                raise opened
            yield session, opened

    async def _append_locked(
        self,
        name: str,
        upload_id: str,
        session: _Session,
        writer: Writer,
        body: AsyncIterator[bytes],
        start: int | None,
        commit: bool = False,
    ) -> int:
        if start is not None and start != writer.size:
            await writer.close()  # nothing written: the upload stays as it was
            raise RegistryError(
                ErrorCode.RANGE_INVALID,
                f"chunk starts at {start}, but the upload holds {writer.size} bytes",
                headers={"Range": range_header(writer.size), "Location": f"/v2/{name}/blobs/uploads/{upload_id}"},
            )
        if session.offset != writer.size:
            session.hasher = None  # bytes arrived elsewhere: verify by re-reading at the end
        if session.hasher is None and writer.size == 0 and self.driver.appends_in_place:
            session.hasher = _new_hasher()  # nothing received yet: the running hash starts here, whoever started it
        writing: asyncio.Future[None] | None = None
        hashing: asyncio.Future[None] | None = None
        ending: asyncio.Future[None] | None = None
        try:
            # each piece is written and hashed at the same time while the next one arrives; the hash of the last
            # one runs on while the writer closes or commits (for a small blob, while the disk flushes it)
            async for piece in buffered(body):
                await _settle(writing, hashing)
                writing = asyncio.ensure_future(writer.write(piece))
                hashing = _hash_piece(session.hasher, piece)
            await _settle(writing)
            session.offset = mine = writer.size
            ending = asyncio.ensure_future(writer.commit() if commit else writer.close())
            await _settle(hashing, ending)
        except BaseException:
            session.hasher, session.offset = None, -1  # first: a hash cancelled mid-piece may run on in its thread
            await _drain(writing, hashing, ending)
            await writer.close()  # waits for a commit's or close's thread still running
            raise
        if self.driver.appends_in_place and writer.size != mine:
            # another process appended meanwhile (a misbehaving client): verify by re-reading at the end
            session.hasher, session.offset = None, writer.size
        return session.offset

    async def finish(self, name: str, upload_id: str, digest: Digest, body: AsyncIterator[bytes] | None) -> int:
        """Append the last chunk (if any), verify, publish and link the blob; returns its size.

        A digest mismatch removes the session and answers DIGEST_INVALID; nothing is kept.
        """
        async with self._exclusive(name, upload_id) as (session, writer):
            size = await self._append_locked(name, upload_id, session, writer, body or _empty(), None, commit=True)
            actual = await self._digest_of(name, upload_id, session, digest.algorithm)
            if actual != digest.hex:
                await self.discard(name, upload_id)
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    f"uploaded content has digest {digest.algorithm}:{actual}, not {digest}",
                    {"expected": str(digest), "actual": f"{digest.algorithm}:{actual}"},
                )
            await self._publish(name, upload_id, digest, size)
            return size

    async def _digest_of(self, name: str, upload_id: str, session: _Session, algorithm: str) -> str:
        if session.hasher is not None and session.hasher.name == algorithm:
            return str(session.hasher.hexdigest())
        hasher = Digest(algorithm, "").hasher()
        async for piece in self.driver.reader(self.data_key(name, upload_id)):
            await asyncio.to_thread(hasher.update, piece)
        return str(hasher.hexdigest())

    async def _publish(self, name: str, upload_id: str, digest: Digest, size: int) -> None:
        await self.blobs.publish(digest, self.data_key(name, upload_id), size)
        await self.blobs.link(name, digest)
        # the bytes have become the blob (or were deleted as a copy of it): the record is all the session holds
        # the repository's _uploads folder stays for its next upload (as in Distribution): no rmdir now, no mkdir then
        record = key("upload_started", name=name, upload=upload_id)
        await self.driver.delete_record(record, keep=key("uploads", name=name))
        self._sessions.pop(upload_id, None)

    async def discard(self, name: str, upload_id: str) -> None:
        """Forget the session and delete its bytes (where they are in its directory, they go with it)."""
        session = key("upload", name=name, upload=upload_id)
        await links.delete_optional(self.driver, session)
        if not (data := self.data_key(name, upload_id)).startswith(f"{session}/"):
            await links.delete_optional(self.driver, data)
        self._sessions.pop(upload_id, None)

    async def cancel(self, name: str, upload_id: str) -> None:
        """Abandon a session and its bytes."""
        await self.offset(name, upload_id)
        await self.discard(name, upload_id)

    async def mount(self, name: str, digest: Digest, source: str | None) -> bool:
        """Link an existing blob into ``name`` without an upload: from repository ``source`` when given,
        else from anywhere in the registry (automatic mount). False when the blob is not available."""
        await self.blobs.claim([digest])
        if source is not None:
            if not await self.blobs.is_linked(source, digest):
                return False
        elif await self.blobs.size(digest) is None:
            return False
        await self.blobs.link(name, digest)
        return True


async def _empty() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator

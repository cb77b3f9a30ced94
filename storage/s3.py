"""The S3 driver (botocore): keys become objects under ``prefix`` in one bucket.

botocore is synchronous, so every call runs in a worker thread, behind a semaphore that bounds how many
run at once; the event loop never blocks on the network. Directories are implied by key prefixes, as
in S3 itself. ``redirect_url`` presigns GET URLs so clients fetch blob bytes from the bucket directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.exceptions
from botocore.config import Config as BotoConfig

from storage.driver import FileInfo, Writer
from storage.errors import InvalidOffset, PathNotFound, StorageError, StorageUnavailable
from storage.s3_session import s3_only_botocore_session
from storage.s3_settings import S3Settings
from storage.s3_writer import STATE_SUFFIX, TAIL_SUFFIX, MultipartState, S3Writer

__all__ = ["S3Driver", "S3Settings"]

READ_CHUNK = 1 << 20
COPY_AT_ONCE = 5 << 30  # S3's largest CopyObject
COPY_PART = 256 << 20
MAX_PARTS = 10_000
PREFETCH = 2
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_UNAVAILABLE = {"500", "502", "503", "504", "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}


async def prefetched(stream: Any, depth: int = PREFETCH) -> AsyncIterator[bytes]:
    """Chunks of a botocore body, read ahead by a thread of its own (at most ``depth`` chunks in memory), so
    reading from S3 overlaps with whatever the consumer does meanwhile (writing to the client socket).
    A thread per stream, not the shared executor: a long download must not take a worker from the short
    calls. The stream is closed when the consumer stops, early or not.

    A chunk costs one hand-off to the event loop (``call_soon_threadsafe``); the thread waits only when
    ``depth`` chunks are waiting for the consumer, on a semaphore the consumer releases as it takes them."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    room = threading.Semaphore(depth)
    stop = threading.Event()
    done = loop.create_future()

    def pump() -> None:
        try:
            while room.acquire() and not stop.is_set() and (chunk := stream.read(READ_CHUNK)):
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            item: bytes | BaseException | None = None
        except BaseException as exc:  # handed to the consumer
            item = exc
        loop.call_soon_threadsafe(queue.put_nowait, item)
        loop.call_soon_threadsafe(finished)

    def finished() -> None:
        if not done.done():  # a consumer cancelled while it waited has cancelled ``done``
            done.set_result(None)

    threading.Thread(target=pump, name="s3-prefetch", daemon=True).start()
    try:
        while (item := await queue.get()) is not None:
            room.release()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        room.release()  # a pump waiting for room wakes, sees the stop and ends
        await done
        stream.close()


class S3Driver:
    """Stores each key as one object; see the module docstring."""

    name = "s3"
    moves_are_cheap = False
    appends_in_place = False

    def __init__(self, config: S3Settings) -> None:
        self.config = config
        self.bucket = config.bucket
        self._prefix = config.prefix.strip("/")
        session = s3_only_botocore_session()
        boto_config = BotoConfig(
            s3={"addressing_style": config.addressing_style},
            max_pool_connections=config.max_concurrency,
            # total_max_attempts counts the first try, as max_attempts does here (botocore's max_attempts counts
            # only the retries: a hung S3 would hold a request one more read_timeout than configured)
            retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            # No CRC32 of every object and part sent, and none checked on every read (botocore's default since
            # 1.36, which costs a quarter of a stream's throughput and which older S3-compatible stores refuse):
            # blob bytes are checked against their SHA-256 digest before they are published, and by every client
            # that pulls them; S3 still gets the checksums its API requires (e.g. DeleteObjects).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = functools.partial(
            session.create_client,
            "s3",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
        )
        self._client: Any = client(config=boto_config)
        # the calls that make S3 assemble or copy bytes before it answers get their own client (same session and
        # model, ~0.4 MiB) with a longer read timeout
        self._slow_client: Any = client(config=boto_config.merge(BotoConfig(read_timeout=config.assemble_timeout)))
        self._limit = asyncio.Semaphore(config.max_concurrency)
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="s3")

    def s3_key(self, path: str, suffix: str = "") -> str:
        """The object key of ``path`` (``suffix`` names a side object of it)."""
        body = path.lstrip("/")
        return f"{self._prefix}/{body}{suffix}" if self._prefix else f"{body}{suffix}"

    def sse_args(self) -> dict[str, str]:
        if not self.config.sse:
            return {}
        args: dict[str, str] = {"ServerSideEncryption": self.config.sse}
        if self.config.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.config.sse_kms_key_id
        return args

    async def call(self, path: str, operation: str, **kwargs: Any) -> Any:
        """Run one botocore call in a thread; translate its errors into the storage error family."""
        return await self._call(self._client, path, operation, kwargs)

    async def call_assembling(self, path: str, operation: str, **kwargs: Any) -> Any:
        """:meth:`call` for an operation during which S3 assembles or copies bytes before it answers (completing a
        multipart upload, a copy): S3 may stay silent for up to ``assemble_timeout`` seconds."""
        return await self._call(self._slow_client, path, operation, kwargs)

    async def _call(self, client: Any, path: str, operation: str, kwargs: dict[str, Any]) -> Any:
        async with self._limit:
            try:
                call = functools.partial(getattr(client, operation), **kwargs)
                return await asyncio.get_running_loop().run_in_executor(self._pool, call)
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                if code == "NoSuchBucket":  # the bucket is gone or not there yet: never "this key does not exist"
                    raise StorageUnavailable(path, self.name, f"{operation}: {code}") from exc
                if code in _NOT_FOUND or status == "404":
                    raise PathNotFound(path, self.name) from exc
                if code == "InvalidRange" or status == "416":
                    raise InvalidOffset(path, self.name, f"{operation}: range not satisfiable") from exc
                if code in _UNAVAILABLE or status in _UNAVAILABLE:
                    raise StorageUnavailable(path, self.name, code) from exc
                raise StorageError(path, self.name, f"{operation}: {code}") from exc
            except (botocore.exceptions.BotoCoreError, OSError) as exc:
                raise StorageUnavailable(path, self.name, f"{operation}: {exc}") from exc

    async def put_object(self, path: str, data: bytes, suffix: str = "") -> None:
        await self.call(
            path, "put_object", Bucket=self.bucket, Key=self.s3_key(path, suffix), Body=data, **self.sse_args()
        )

    async def _read_object(self, path: str, s3_key: str) -> bytes:
        """The whole body of one object (``path`` names it in errors)."""
        response = await self.call(path, "get_object", Bucket=self.bucket, Key=s3_key)
        with self._body_errors(path):
            return bytes(await asyncio.get_running_loop().run_in_executor(self._pool, response["Body"].read))

    @contextlib.contextmanager
    def _body_errors(self, path: str) -> Iterator[None]:
        """Reading an object's body after its headers came: S3 going away now (connection reset, read timeout)
        is :class:`StorageUnavailable` too, as for the call itself."""
        try:
            yield
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise StorageUnavailable(path, self.name, f"reading the body: {exc}") from exc

    async def _pages(self, path: str, prefix: str, delimiter: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every ListObjectsV2 page below ``prefix`` (continuation tokens followed)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            page = await self.call(path, "list_objects_v2", **kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    async def get_content(self, path: str) -> bytes:
        return await self._read_object(path, self.s3_key(path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self.put_object(path, data)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        # one request: no HEAD first (a blob GET already costs its link and pointer reads); only a refused
        # range costs a stat, to tell "offset at the end" (nothing to read) from "beyond the end"
        ranged = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = await self.call(path, "get_object", Bucket=self.bucket, Key=self.s3_key(path), **ranged)
        except InvalidOffset:
            size = (await self.stat(path)).size
            if offset == size:
                return
            raise InvalidOffset(path, self.name, f"offset {offset} beyond size {size}") from None
        with self._body_errors(path):
            async for chunk in prefetched(response["Body"]):
                yield chunk

    async def writer(self, path: str, append: bool = False) -> Writer:
        """``append``: the state of an unfinished writer and the committed object are asked for at the same time (a new
        upload session has neither: one round trip); the tail is read only when there is a state."""
        if not append:
            await self.delete_side_objects(path)
            return S3Writer(self, path, MultipartState(), b"")
        state, existing = await asyncio.gather(self._optional(path, STATE_SUFFIX), self._optional(path))
        if state is not None:
            with contextlib.suppress(PathNotFound):
                tail = await self._get_side(path, TAIL_SUFFIX)
                return S3Writer(self, path, MultipartState.from_json(state), tail, resumed=True)
        # a state without its tail starts over, and its commit still deletes the stale side objects
        return S3Writer(self, path, MultipartState(), existing or b"", resumed=state is not None)

    async def _optional(self, path: str, suffix: str = "") -> bytes | None:
        """The object of ``path`` (or its side object ``suffix``), None when there is none."""
        try:
            return await self._get_side(path, suffix)
        except PathNotFound:
            return None

    async def _get_side(self, path: str, suffix: str) -> bytes:
        return await self._read_object(path, self.s3_key(path, suffix))

    def side_keys(self, path: str) -> list[str]:
        """The object keys of the multipart state and the tail of an unfinished writer of ``path``."""
        return [self.s3_key(path, STATE_SUFFIX), self.s3_key(path, TAIL_SUFFIX)]

    async def delete_side_objects(self, path: str) -> None:
        """Abort the recorded multipart upload of ``path``, if any, and drop its state and tail."""
        await self._abort_recorded(path, self.s3_key(path))
        await self.delete_keys(self.side_keys(path))

    async def _abort_recorded(self, path: str, object_key: str) -> None:
        """Abort the multipart upload whose state is stored beside ``object_key``, so no parts stay billed."""
        try:
            state = MultipartState.from_json(await self._read_object(path, object_key + STATE_SUFFIX))
        except PathNotFound:
            return
        await self.abort(path, object_key, state)

    async def abort(self, path: str, object_key: str, state: MultipartState) -> None:
        """Abort ``state``'s multipart upload of ``object_key`` (nothing to do when none was started)."""
        if state.upload_id is None:
            return
        with contextlib.suppress(PathNotFound):
            await self.call(
                path, "abort_multipart_upload", Bucket=self.bucket, Key=object_key, UploadId=state.upload_id
            )

    async def stat_file(self, path: str) -> FileInfo:
        if path == "/":
            raise PathNotFound(path, self.name)
        head = await self.call(path, "head_object", Bucket=self.bucket, Key=self.s3_key(path))
        modified = head["LastModified"].timestamp()
        return FileInfo(path=path, size=int(head["ContentLength"]), modified=modified, is_dir=False)

    async def stat(self, path: str) -> FileInfo:
        with contextlib.suppress(PathNotFound):
            return await self.stat_file(path)
        unfinished = await self._unfinished(path)
        if unfinished is not None:
            return unfinished
        listing = await self.call(path, "list_objects_v2", Bucket=self.bucket, Prefix=self._dir_prefix(path), MaxKeys=1)
        if not listing.get("Contents"):
            raise PathNotFound(path, self.name)
        return FileInfo(path=path, size=0, modified=listing["Contents"][0]["LastModified"].timestamp(), is_dir=True)

    async def _unfinished(self, path: str) -> FileInfo | None:
        """An unfinished (closed, uncommitted) writer's content: its size, and when it was last closed."""
        try:
            state = MultipartState.from_json(await self._get_side(path, STATE_SUFFIX))
            tail = await self.call(path, "head_object", Bucket=self.bucket, Key=self.s3_key(path, TAIL_SUFFIX))
        except PathNotFound:
            return None
        size = state.parts_size + int(tail["ContentLength"])
        return FileInfo(path=path, size=size, modified=tail["LastModified"].timestamp(), is_dir=False)

    def _dir_prefix(self, path: str) -> str:
        return self.s3_key(path).rstrip("/") + "/" if path != "/" else (f"{self._prefix}/" if self._prefix else "")

    async def list(self, path: str) -> list[str]:
        prefix = self._dir_prefix(path)
        names: set[str] = set()
        async for page in self._pages(path, prefix, delimiter="/"):
            names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(prefix) :].split(STATE_SUFFIX)[0] for o in page.get("Contents", []))
        names = {n for n in names if n and "~" not in n}
        if not names:
            raise PathNotFound(path, self.name)
        base = "" if path == "/" else path
        return sorted(f"{base}/{name}" for name in names)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        prefix = self._dir_prefix(path)
        base = "" if path == "/" else path
        async for page in self._pages(path, prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if "~" not in name:
                    yield FileInfo(f"{base}/{name}", int(obj["Size"]), obj["LastModified"].timestamp(), is_dir=False)
                elif name.endswith(STATE_SUFFIX) and (
                    info := await self._unfinished(f"{base}/{name[: -len(STATE_SUFFIX)]}")
                ):
                    yield info

    async def move(self, source: str, dest: str) -> None:
        """Copy inside the bucket (one CopyObject up to S3's limit of :data:`COPY_AT_ONCE`, else a multipart copy),
        then delete the source; the destination appears whole or not at all."""
        size = (await self.stat_file(source)).size
        copy_source = {"Bucket": self.bucket, "Key": self.s3_key(source)}
        target = {"Bucket": self.bucket, "Key": self.s3_key(dest)}
        if size <= COPY_AT_ONCE:
            await self.call_assembling(source, "copy_object", CopySource=copy_source, **target, **self.sse_args())
        else:
            await self._copy_in_parts(copy_source, dest, target, size)
        await self.delete_keys([self.s3_key(source)])

    async def _copy_in_parts(self, copy_source: dict[str, str], dest: str, target: dict[str, str], size: int) -> None:
        """A multipart upload of ``dest`` (``target``: its bucket and key) whose parts S3 copies from
        ``copy_source`` (UploadPartCopy), all asked at once (the semaphore bounds them). On any failure it is
        aborted once no part copy is still under way (one finishing after the abort would stay stored)."""
        upload_id = (await self.call(dest, "create_multipart_upload", **target, **self.sse_args()))["UploadId"]
        part_size = max(COPY_PART, -(-size // MAX_PARTS))

        async def copy_part(number: int, start: int) -> dict[str, Any]:
            last = min(start + part_size, size) - 1
            copied = await self.call_assembling(
                dest,
                "upload_part_copy",
                **target,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceRange=f"bytes={start}-{last}",
            )
            return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

        try:
            parts = await asyncio.gather(
                *(copy_part(number, start) for number, start in enumerate(range(0, size, part_size), start=1)),
                return_exceptions=True,
            )
            if failed := next((part for part in parts if isinstance(part, BaseException)), None):
                raise failed
            await self.call_assembling(
                dest, "complete_multipart_upload", **target, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(StorageError):
                await self.call(dest, "abort_multipart_upload", **target, UploadId=upload_id)
            raise

    async def delete(self, path: str) -> None:
        """One listing finds the object, its side objects and everything below it (keys that merely start with
        the same characters, a sibling ``latest-arm64`` of ``latest``, are listed and left alone); one request
        deletes them, after aborting any multipart upload a side object records."""
        if path == "/":
            raise StorageError(path, self.name, "refusing to delete the root")
        own = self.s3_key(path)
        keys = [
            o["Key"]
            async for page in self._pages(path, own)
            for o in page.get("Contents", [])
            if o["Key"] == own or o["Key"].startswith((own + "/", own + "~"))
        ]
        if not keys:
            raise PathNotFound(path, self.name)
        for state_key in [k for k in keys if k.endswith(STATE_SUFFIX)]:
            await self._abort_recorded(path, state_key.removesuffix(STATE_SUFFIX))
        await self.delete_keys(keys)

    async def delete_record(self, path: str, keep: str | None = None) -> None:  # noqa: ARG002 - no directories
        """One DeleteObject: a record has neither side objects nor children to look for (S3 answers the same
        whether the object existed or not)."""
        await self.call(path, "delete_object", Bucket=self.bucket, Key=self.s3_key(path))

    async def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete objects by raw key, 1,000 per request; missing keys are fine."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            await self.call("/", "delete_objects", Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if not self.config.redirect or method not in ("GET", "HEAD"):
            return None
        operation = "get_object" if method == "GET" else "head_object"
        params = {"Bucket": self.bucket, "Key": self.s3_key(path)}
        url = await asyncio.to_thread(
            self._client.generate_presigned_url, operation, Params=params, ExpiresIn=self.config.redirect_ttl
        )
        return str(url)

    def local_path(self, path: str) -> Path | None:  # noqa: ARG002
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
        await asyncio.to_thread(self._slow_client.close)
        self._pool.shutdown(wait=False)

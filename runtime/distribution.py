"""The client side of the OCI distribution protocol: an async registry client on :mod:`runtime.httpclient`.

It speaks to dockyard (open or token mode), CNCF Distribution and any registry docker speaks to:

- **Transport**: HTTPS with certificate checks, except for insecure hosts (``127.0.0.0/8``, ``localhost``,
  ``[::1]`` and those listed in ``insecure_registries``): there HTTPS is tried without verification first and
  plain HTTP is the fallback, as docker does. The scheme that answered ``GET /v2/`` is kept per host. A registry's
  folder in docker's or podman's ``certs.d`` adds its CA certificates and client certificate (:mod:`runtime.certsd`).
- **Authentication**: the ``GET /v2/`` probe learns the host's challenge. ``Basic`` → the stored credentials go
  in every request. ``Bearer`` → a token from the challenge's ``realm`` for the scopes a call needs (``GET`` with
  ``service``, ``scope`` and Basic credentials when known; ``POST`` with the ``refresh_token`` grant when the
  credentials hold an identity token), cached per host and scope set until shortly before it expires. A 401, or
  a 403 whose challenge says ``insufficient_scope``, re-fetches once for the union of the scopes asked and the
  challenge's ``scope``; a second refusal is an error.
- **Manifests**: ``Accept`` lists OCI and Docker manifests and indexes. :meth:`RegistryClient.resolve` follows an
  index or manifest list to the manifest of one platform (default: this host's). Every manifest is checked
  against its digest (the one asked for, or the ``Docker-Content-Digest`` header).
- **Blobs**: :meth:`RegistryClient.pull_blob` streams into ``.<name>.partial`` beside the destination, hashing
  while it writes; an existing partial file is resumed with ``Range`` (a 206 must start where asked; anything
  else restarts from zero), the finished file is renamed into place only when size and digest match, and on a
  mismatch nothing is kept. The partial file is held under ``flock`` so two processes never write it at once.
  Uploads are monolithic for small blobs (``POST ?digest=``, then ``PUT`` when the registry answers 202, as
  Distribution 2.8 does) and ``POST`` + one streamed ``PATCH`` + ``PUT ?digest=`` otherwise; cross-repository
  mounts are ``POST ?mount=&from=``.

Every failure is a :class:`~runtime.manifests.DistributionError` subclass with a one-line message naming the host,
repository and digest or tag involved. :mod:`runtime.progress` renders the per-blob
:class:`~runtime.manifests.Progress` events with rich. The types shared with the image store (manifests,
platforms, errors) live in :mod:`runtime.manifests`, which imports neither the HTTP client nor rich.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urljoin, urlsplit

from runtime.certsd import CERTS_DIRS, trust_for
from runtime.credentials import Credentials
from runtime.credentials import lookup as default_lookup
from runtime.httpclient import Body, FileBody, HttpClient, Response, ResponseHook, TlsTrust, TransportError
from runtime.manifests import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    AuthenticationError,
    BlobVerificationError,
    DistributionError,
    Manifest,
    ManifestError,
    NotFoundError,
    Platform,
    RegistryResponseError,
    RegistryUnreachableError,
    digest_of,
    select_platform,
)
from runtime.references import Reference, is_loopback_host, split_host_port

CLIENT_ID = "dockyard"
USER_AGENT = "dockyard-runtime/0.1"
CHUNK = 4 << 20  # bytes hashed at once when a partial download is resumed
PROGRESS_STEP = 1 << 20  # bytes received between two progress reports of a download
MONOLITHIC_MAX = 1 << 20  # blobs up to this size are uploaded in one request
TOKEN_MARGIN = 10.0  # seconds before expiry at which a cached token is no longer used

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a blob moves."""


def _hasher_for(digest: str) -> Any:
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise DistributionError(f"unsupported digest algorithm in {digest}")
    return hashlib.new(algorithm)


# -- authentication ----------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge of the ``WWW-Authenticate`` header values (``Bearer realm="...",scope="..."``)."""
    found: list[Challenge] = []
    for header in headers:
        for match in re.finditer(
            r"([A-Za-z]+)\s+((?:[A-Za-z][\w-]*\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^\s,]*)\s*,?\s*)*)", header
        ):
            params = {
                m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
                for m in _CHALLENGE_PARAM.finditer(match.group(2))
            }
            found.append(Challenge(match.group(1).lower(), params))
    return found


def pull_scopes(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def push_scopes(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


def _merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes merged per resource (``repository:a:pull`` + ``repository:a:push`` → ``...:pull,push``), sorted."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            continue
        known = merged.setdefault(resource, [])
        known.extend(a for a in actions.split(",") if a and a not in known)
    return tuple(sorted(f"{resource}:{','.join(actions)}" for resource, actions in merged.items()))


def _basic(credentials: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()


@dataclass
class _Endpoint:
    """How one host is reached: base URL, how its TLS is checked, and the challenge of ``GET /v2/``."""

    base: str
    tls: TlsTrust
    challenge: Challenge | None


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float


# -- the partial download file -----------------------------------------------------------------------


class _PartialFile:
    """A resumable download file held under an exclusive ``flock`` (one writer across processes)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    async def acquire(cls, path: Path) -> _PartialFile:
        """Open and lock ``path``; if another process removed or renamed it meanwhile, start over."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return cls(path, fd)
            except FileNotFoundError:
                pass
            os.close(fd)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)

    async def hash_prefix(self, hasher: Any) -> None:
        """Feed the bytes already in the file to ``hasher``."""

        def run() -> None:
            offset = 0
            while chunk := os.pread(self.fd, CHUNK, offset):
                hasher.update(chunk)
                offset += len(chunk)

        await asyncio.to_thread(run)

    def put(self, data: memoryview, position: int, hasher: Any) -> None:
        """Write ``data`` at ``position`` and hash it (called in a worker thread: both release the GIL)."""
        view = data
        while view:
            written = os.pwrite(self.fd, view, position)
            view, position = view[written:], position + written
        hasher.update(data)

    def publish(self, dest: Path) -> None:
        os.fsync(self.fd)
        os.replace(self.path, dest)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        os.close(self.fd)


def partial_path(dest: Path) -> Path:
    """Where the download of ``dest`` is kept until verified: ``.<name>.partial`` beside it."""
    return dest.with_name(f".{dest.name}.partial")


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


# -- the client --------------------------------------------------------------------------------------


class RegistryClient:
    """An async client for OCI registries. Use ``async with RegistryClient() as client:``.

    ``credentials`` maps a host to its credentials (default: docker's ``config.json`` via
    :func:`runtime.credentials.lookup`); ``insecure_registries`` lists hosts (``host`` or ``host:port``) that may
    use plain HTTP or unverified TLS besides loopback ones; ``certs_dirs`` are where per-registry TLS folders are
    looked up (docker's and podman's ``certs.d``); ``on_response`` sees every response (tests record the requests
    with it); the timeouts are in seconds."""

    def __init__(
        self,
        *,
        credentials: Callable[[str], Credentials | None] = default_lookup,
        insecure_registries: Iterable[str] = (),
        on_response: ResponseHook | None = None,
        monolithic_max: int = MONOLITHIC_MAX,
        connect_timeout: float = 30.0,
        read_timeout: float = 120.0,
        certs_dirs: Sequence[Path] = CERTS_DIRS,
    ) -> None:
        self._lookup = credentials
        self._insecure = frozenset(h.lower() for h in insecure_registries)
        self._insecure_networks = [n for n in map(_network, self._insecure) if n is not None]
        self.monolithic_max = monolithic_max
        self._certs_dirs = tuple(certs_dirs)
        self._client = HttpClient(
            user_agent=USER_AGENT, connect_timeout=connect_timeout, read_timeout=read_timeout, on_response=on_response
        )
        self._endpoints: dict[str, _Endpoint] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], _Token] = {}
        self._credentials: dict[str, Credentials | None] = {}
        self._locks: dict[object, asyncio.Lock] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the kept connections (idempotent)."""
        await self._client.close()

    def is_insecure(self, host: str) -> bool:
        """True when ``host`` may use plain HTTP: loopback, listed (``host``, ``host:port``), or an IP address
        inside a listed CIDR range (``10.231.0.0/16``), as docker's ``--insecure-registry`` takes them."""
        name = host.lower()
        if is_loopback_host(name) or name in self._insecure or split_host_port(name)[0] in self._insecure:
            return True
        try:
            address = ipaddress.ip_address(split_host_port(name)[0])
        except ValueError:
            return False
        return any(address in network for network in self._insecure_networks)

    # -- public API: manifests ----------------------------------------------------------------------

    async def resolve(self, ref: Reference, platform: Platform | None = None) -> Manifest:
        """The image manifest ``ref`` names; an index is followed to the entry for ``platform`` (default: the
        host's) and the result remembers the index digest. A single-platform manifest is returned as is."""
        manifest = await self.get_manifest(ref)
        if not manifest.is_index:
            return manifest
        entry = select_platform(manifest, platform or Platform.host(), str(ref))
        child = await self.get_manifest(ref, entry.digest)
        if child.is_index:
            raise ManifestError(f"{ref}: the index entry for {entry.platform} is itself an index")
        return replace(child, index_digest=manifest.digest)

    async def get_manifest(self, ref: Reference, reference: str | None = None) -> Manifest:
        """The manifest or index at ``reference`` (default: ``ref``'s digest or tag), verified against its digest."""
        reference = reference or ref.reference
        where = f"{ref.name}:{reference}" if ":" not in reference else f"{ref.name}@{reference}"
        path = f"/v2/{ref.repository}/manifests/{reference}"
        headers = {"Accept": MANIFEST_ACCEPT}
        async with await self._send("GET", ref.api_host, path, pull_scopes(ref.repository), headers=headers) as resp:
            if resp.status != 200:
                raise await self._failure(resp, f"manifest {where}")
            if (resp.content_length or 0) > MAX_MANIFEST_BYTES:
                raise ManifestError(f"manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes")
            body = await resp.read(MAX_MANIFEST_BYTES + 1)
            if len(body) > MAX_MANIFEST_BYTES:
                raise ManifestError(f"manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes")
            header_digest = resp.headers.get("Docker-Content-Digest")
            header_type = resp.headers.get("Content-Type", "")
        expected = reference if ":" in reference else header_digest
        algorithm = (expected or "sha256:").partition(":")[0] or "sha256"
        if algorithm not in ("sha256", "sha384", "sha512"):
            raise ManifestError(f"manifest {where}: unsupported digest algorithm {algorithm}")
        actual = digest_of(body, algorithm)
        if expected is not None and actual != expected:
            raise ManifestError(f"manifest {where}: the registry sent content with digest {actual}, not {expected}")
        return Manifest.parse(body, actual, header_type, f"manifest {where}")

    async def push_manifest(self, ref: Reference, body: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref``'s tag (or digest); returns its digest."""
        digest = digest_of(body)
        reference = ref.tag or ref.digest or digest
        path = f"/v2/{ref.repository}/manifests/{reference}"
        headers = {"Content-Type": media_type}
        scopes = push_scopes(ref.repository)
        async with await self._send("PUT", ref.api_host, path, scopes, headers=headers, body=body) as resp:
            if resp.status != 201:
                raise await self._failure(resp, f"push of manifest {ref.name}:{reference}")
            answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered.startswith("sha256:") and answered != digest:
            raise ManifestError(
                f"push of manifest {ref.name}:{reference}: the registry stored {answered}, not {digest}"
            )
        return digest

    # -- public API: blobs --------------------------------------------------------------------------

    async def blob_exists(self, ref: Reference, digest: str) -> bool:
        """True when ``ref``'s repository holds blob ``digest`` (``HEAD``)."""
        path = f"/v2/{ref.repository}/blobs/{digest}"
        async with await self._send("HEAD", ref.api_host, path, push_scopes(ref.repository)) as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise await self._failure(resp, f"blob {digest} in {ref.name}")

    async def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> bool:
        """Mount ``digest`` from ``from_repository`` (same registry) into ``ref``'s repository. False when the
        registry declined (its upload session is cancelled); the caller then uploads the blob."""
        path = f"/v2/{ref.repository}/blobs/uploads/?mount={digest}&from={from_repository}"
        scopes = (*push_scopes(ref.repository), *pull_scopes(from_repository))
        async with await self._send("POST", ref.api_host, path, scopes) as resp:
            if resp.status == 201:
                return True
            if resp.status != 202:
                raise await self._failure(resp, f"mount of blob {digest} from {from_repository} into {ref.name}")
            location = resp.headers.get("Location")
            base = resp.url
        if location:
            with contextlib.suppress(DistributionError):
                url = urljoin(base, location)
                async with await self._send("DELETE", ref.api_host, url, scopes):
                    pass
        return False

    async def push_blob(
        self,
        ref: Reference,
        path: Path,
        digest: str,
        progress_cb: ProgressCallback | None = None,
    ) -> None:
        """Upload the file ``path`` as blob ``digest`` into ``ref``'s repository (the registry verifies it)."""
        size = path.stat().st_size
        if size <= self.monolithic_max:
            await self._push_monolithic(ref, path.read_bytes(), digest)
        else:
            await self._push_streamed(ref, path, digest, size, progress_cb)
        if progress_cb is not None:
            progress_cb(size, size)

    async def pull_blob(
        self,
        ref: Reference,
        digest: str,
        dest: Path,
        progress_cb: ProgressCallback | None = None,
        size: int | None = None,
    ) -> None:
        """Download blob ``digest`` of ``ref``'s repository to ``dest``, verified (and ``size`` checked, if given).

        A partial file left by an interrupted download is resumed. On a size or digest mismatch nothing is kept
        and :class:`BlobVerificationError` is raised; on a broken connection the partial file stays for a resume."""
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = await _PartialFile.acquire(partial_path(dest))
        try:
            if dest.exists():  # another process finished it while we waited for the lock
                return
            try:
                await self._fill(ref, digest, size, part, progress_cb)
            except BlobVerificationError:
                part.discard()
                raise
            await asyncio.to_thread(part.publish, dest)  # fsync: the other downloads go on meanwhile
        finally:
            part.close()

    # -- public API: login --------------------------------------------------------------------------

    async def login(self, host: str, username: str, password: str) -> str | None:
        """Check ``username``/``password`` against ``host``; returns the identity (refresh) token the token
        service handed out, if any, for :func:`runtime.credentials.login` to store. Raises AuthenticationError."""
        credentials = Credentials(username, password)
        endpoint = await self._endpoint(host)
        challenge = endpoint.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            headers = {"Authorization": _basic(credentials)}
            async with await self._raw("GET", endpoint.base + "v2/", endpoint, headers, None) as resp:
                if resp.status != 200:
                    raise await self._failure(resp, f"login to {host} as {username}", hint=False)
            return None
        answer = await self._token_answer(host, challenge, (), credentials, offline=True)
        refresh = answer.get("refresh_token")
        self._credentials[host] = credentials
        return refresh if isinstance(refresh, str) and refresh else None

    # -- uploads ------------------------------------------------------------------------------------

    async def _push_monolithic(self, ref: Reference, data: bytes, digest: str) -> None:
        path = f"/v2/{ref.repository}/blobs/uploads/?digest={digest}"
        headers = {"Content-Type": "application/octet-stream"}
        scopes = push_scopes(ref.repository)
        async with await self._send("POST", ref.api_host, path, scopes, headers=headers, body=data) as resp:
            if resp.status == 201:
                self._check_uploaded(resp, ref, digest)
                return
            if resp.status != 202:
                raise await self._failure(resp, f"upload of blob {digest} to {ref.name}")
            location = self._location(resp, ref, digest)
        url = _with_digest(location, digest)
        async with await self._send("PUT", ref.api_host, url, scopes, headers=headers, body=data) as resp:
            if resp.status != 201:
                raise await self._failure(resp, f"upload of blob {digest} to {ref.name}")
            self._check_uploaded(resp, ref, digest)

    async def _push_streamed(
        self, ref: Reference, path: Path, digest: str, size: int, progress_cb: ProgressCallback | None
    ) -> None:
        scopes = push_scopes(ref.repository)
        start = f"/v2/{ref.repository}/blobs/uploads/"
        async with await self._send("POST", ref.api_host, start, scopes, headers={"Content-Length": "0"}) as resp:
            if resp.status != 202:
                raise await self._failure(resp, f"upload of blob {digest} to {ref.name}")
            location = self._location(resp, ref, digest)
        headers = {"Content-Type": "application/octet-stream"}
        body = FileBody(path, size, None if progress_cb is None else lambda sent: _report(progress_cb, sent, size))
        async with await self._send("PATCH", ref.api_host, location, scopes, headers=headers, body=body) as resp:
            if resp.status != 202:
                raise await self._failure(resp, f"upload of blob {digest} to {ref.name}")
            location = self._location(resp, ref, digest)
        url = _with_digest(location, digest)
        async with await self._send("PUT", ref.api_host, url, scopes, headers={"Content-Length": "0"}) as resp:
            if resp.status != 201:
                raise await self._failure(resp, f"upload of blob {digest} to {ref.name}")
            self._check_uploaded(resp, ref, digest)

    @staticmethod
    def _location(resp: Response, ref: Reference, digest: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryResponseError(
                f"upload of blob {digest} to {ref.name}: the registry sent no Location", resp.status
            )
        return urljoin(resp.url, location)

    @staticmethod
    def _check_uploaded(resp: Response, ref: Reference, digest: str) -> None:
        answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise BlobVerificationError(f"upload of blob {digest} to {ref.name}: the registry stored {answered}")

    # -- downloads ----------------------------------------------------------------------------------

    async def _fill(
        self, ref: Reference, digest: str, size: int | None, part: _PartialFile, progress_cb: ProgressCallback | None
    ) -> None:
        """Complete the partial file: resume from what it holds; if a resumed file fails verification, the kept
        prefix may have been bad, so download once more from zero."""
        offset = part.size()
        if size is not None and offset > size:
            part.truncate()
            offset = 0
        hasher = _hasher_for(digest)
        if offset:
            await part.hash_prefix(hasher)
        try:
            await self._stream(ref, digest, size, part, offset, hasher, progress_cb)
        except BlobVerificationError:
            if offset == 0:
                raise
            part.truncate()
            await self._stream(ref, digest, size, part, 0, _hasher_for(digest), progress_cb)

    async def _stream(
        self,
        ref: Reference,
        digest: str,
        size: int | None,
        part: _PartialFile,
        offset: int,
        hasher: Any,
        progress_cb: ProgressCallback | None,
    ) -> None:
        where = f"blob {digest} of {ref.name}"
        if size is not None and offset == size:
            _verify(where, digest, size, offset, hasher)
            return
        resp = await self._open_blob(ref, digest, offset)
        async with resp:
            if resp.status == 200 and offset:
                part.truncate()
                offset, hasher = 0, _hasher_for(digest)
            total = size if size is not None else offset + (resp.content_length or 0)
            done = await self._copy(resp, part, offset, hasher, size, where, lambda n: _report(progress_cb, n, total))
        _verify(where, digest, size, done, hasher)

    async def _open_blob(self, ref: Reference, digest: str, offset: int) -> Response:
        """``GET`` the blob from ``offset``: a 206 whose ``Content-Range`` starts at ``offset``, or a 200 (the
        registry ignored or refused the range: the caller starts from zero)."""
        path = f"/v2/{ref.repository}/blobs/{digest}"
        scopes = pull_scopes(ref.repository)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self._send("GET", ref.api_host, path, scopes, headers=headers)
        if offset and resp.status in (206, 416):
            if resp.status == 206 and _content_range_start(resp.headers.get("Content-Range")) == offset:
                return resp
            await resp.aclose()
            resp = await self._send("GET", ref.api_host, path, scopes)
        if resp.status != 200 and not (offset and resp.status == 206):
            async with resp:
                raise await self._failure(resp, f"blob {digest} of {ref.name}")
        return resp

    async def _copy(
        self,
        resp: Response,
        part: _PartialFile,
        offset: int,
        hasher: Any,
        size: int | None,
        where: str,
        report: Callable[[int], None],
    ) -> int:
        """Stream the body into the file from ``offset``; returns the final size. Stops early when the blob grows
        beyond ``size``. Each piece is received, written and hashed by one worker thread, without a copy; the
        layers of a pull move in parallel, so the cores stay busy."""
        done = offset
        reported = offset
        report(offset)

        def put(view: memoryview) -> None:
            if size is not None and done + len(view) > size:
                raise BlobVerificationError(f"{where}: the registry sent more than the {size} bytes expected")
            part.put(view, done, hasher)

        try:
            while received := await resp.read_into(put):  # pieces of httpclient.BLOCK bytes
                done += received
                if done - reported >= PROGRESS_STEP:
                    reported = done
                    report(done)
        except TransportError as exc:
            raise RegistryUnreachableError(f"{where}: the download broke off ({exc}); pull again to resume") from None
        report(done)
        return done

    # -- requests and authentication ----------------------------------------------------------------

    async def _send(
        self,
        method: str,
        host: str,
        target: str,
        scopes: Sequence[str],
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
    ) -> Response:
        """Send one request (``target`` is a path or an absolute, already encoded URL) with the right credentials;
        on a challenge for more (or other) scopes fetch a new token and send it once more."""
        endpoint = await self._endpoint(host)
        url = urljoin(endpoint.base, target)
        wanted = _merge_scopes(scopes)
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            authorization = await self._authorization(host, endpoint, wanted)
            if authorization is not None:
                request_headers["Authorization"] = authorization
            resp = await self._raw(method, url, endpoint, request_headers, body)
            retry = None if attempt == 2 else self._retry_scopes(host, endpoint, resp, wanted)
            if retry is None:
                return resp
            await resp.aclose()
            wanted = retry
        raise AssertionError("unreachable")

    async def _raw(self, method: str, url: str, endpoint: _Endpoint, headers: dict[str, str], body: Body) -> Response:
        try:
            return await self._client.request(method, url, headers=headers, body=body, tls=endpoint.tls)
        except TransportError as exc:
            raise RegistryUnreachableError(f"{method} {url.partition('?')[0]} failed: {exc}") from None

    def _lock(self, key: object) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _endpoint(self, host: str) -> _Endpoint:
        """Probe ``GET /v2/`` once per host: HTTPS, then (insecure hosts only) plain HTTP."""
        async with self._lock(("endpoint", host)):
            known = self._endpoints.get(host)
            if known is not None:
                return known
            insecure = self.is_insecure(host)
            problems: list[str] = []
            for scheme in ("https", "http") if insecure else ("https",):
                endpoint = _Endpoint(f"{scheme}://{host}/", trust_for(host, not insecure, self._certs_dirs), None)
                try:
                    async with await self._raw("GET", endpoint.base + "v2/", endpoint, {}, None) as resp:
                        await resp.read()
                        endpoint.challenge = _preferred_challenge(resp) if resp.status == 401 else None
                except RegistryUnreachableError as exc:
                    problems.append(str(exc))
                    continue
                self._endpoints[host] = endpoint
                return endpoint
            hint = "" if insecure else " (plain HTTP is only used for loopback and insecure registries)"
            raise RegistryUnreachableError(f"cannot reach registry {host}: {'; '.join(problems)}{hint}")

    def _credentials_for(self, host: str) -> Credentials | None:
        if host not in self._credentials:
            self._credentials[host] = self._lookup(host)
        return self._credentials[host]

    async def _authorization(self, host: str, endpoint: _Endpoint, scopes: tuple[str, ...]) -> str | None:
        challenge = endpoint.challenge
        if challenge is None:
            return None
        credentials = self._credentials_for(host)
        if challenge.scheme == "basic":
            return _basic(credentials) if credentials is not None and credentials.username else None
        if challenge.scheme != "bearer":
            return None
        async with self._lock(("token", host, scopes)):
            token = self._tokens.get((host, scopes))
            if token is None or token.expires_at <= time.monotonic():
                token = await self._fetch_token(host, challenge, scopes, credentials)
                self._tokens[(host, scopes)] = token
        return f"Bearer {token.value}"

    def _retry_scopes(
        self, host: str, endpoint: _Endpoint, resp: Response, wanted: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        """The scopes to retry with after a 401 (or a 403 ``insufficient_scope``), or None for no retry."""
        if resp.status not in (401, 403):
            return None
        challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            if resp.status == 403 and bearer.params.get("error") != "insufficient_scope":
                return None
            endpoint.challenge = bearer
            retry = _merge_scopes([*wanted, *bearer.params.get("scope", "").split()])
            self._tokens.pop((host, retry), None)
            return retry
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        already_basic = endpoint.challenge is not None and endpoint.challenge.scheme == "basic"
        if basic is None or resp.status != 401 or already_basic or self._credentials_for(host) is None:
            return None
        endpoint.challenge = basic
        return wanted

    async def _fetch_token(
        self, host: str, challenge: Challenge, scopes: tuple[str, ...], credentials: Credentials | None
    ) -> _Token:
        answer = await self._token_answer(host, challenge, scopes, credentials, offline=False)
        value = answer.get("token") or answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"the token service of {host} answered without a token", 200)
        expires_in = answer.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        return _Token(value, time.monotonic() + max(lifetime - TOKEN_MARGIN, 1.0))

    async def _token_answer(
        self,
        host: str,
        challenge: Challenge,
        scopes: tuple[str, ...],
        credentials: Credentials | None,
        *,
        offline: bool,
    ) -> dict[str, Any]:
        """Ask the challenge's realm for a token: the OAuth2 refresh grant for identity tokens, else ``GET`` with
        Basic credentials (``offline_token=true`` asks for a refresh token, as ``docker login`` does)."""
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationError(f"{host} sent a Bearer challenge without a realm", 401)
        service = challenge.params.get("service", "")
        parts = urlsplit(realm)
        verify = not (self.is_insecure(parts.netloc) or parts.scheme == "http")
        endpoint = _Endpoint(realm, trust_for(parts.netloc, verify, self._certs_dirs), None)
        who = f" as {credentials.username}" if credentials is not None and credentials.username else ""
        if credentials is not None and credentials.identity_token and not offline:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token}
            form |= {"service": service, "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            request = self._raw("POST", realm, endpoint, headers, urlencode(form).encode())
        else:
            query = [("service", service), *(("scope", s) for s in scopes), ("client_id", CLIENT_ID)]
            headers = {}
            if credentials is not None and credentials.username:
                headers["Authorization"] = _basic(credentials)
                query.append(("account", credentials.username))
                if offline:
                    query.append(("offline_token", "true"))
            separator = "&" if parts.query else "?"
            request = self._raw("GET", realm + separator + urlencode(query), endpoint, headers, None)
        return await self._token_json(request, host, who)

    async def _token_json(self, request: Awaitable[Response], host: str, who: str) -> dict[str, Any]:
        async with await request as resp:
            if resp.status != 200:
                error = await self._failure(resp, f"token for {host}{who}", hint=False)
                raise AuthenticationError(str(error), resp.status, getattr(error, "code", ""))
            try:
                answer = await resp.json()
            except ValueError:
                raise AuthenticationError(f"the token service of {host} answered with invalid JSON", 200) from None
        if not isinstance(answer, dict):
            raise AuthenticationError(f"the token service of {host} answered with invalid JSON", 200)
        return answer

    async def _failure(self, resp: Response, what: str, *, hint: bool = True) -> DistributionError:
        """The error for an unexpected answer, with the spec's error code and message when the body has them; a
        401 suggests ``dockyard login`` (with ``hint``) when the client had no credentials for the host."""
        text = ""
        with contextlib.suppress(TransportError, UnicodeDecodeError):
            text = (await resp.read(64 << 10)).decode()
        code, message = _error_body(text)
        status = resp.status
        if status == 401:
            host = resp.host
            login = f" (log in with: dockyard login {host})" if hint and not self._credentials.get(host) else ""
            return AuthenticationError(
                f"{what}: unauthorized: {message or 'authentication required'}{login}", 401, code
            )
        if status == 403:
            return AuthenticationError(f"{what}: denied: {message or 'access to the resource is denied'}", 403, code)
        if status == 404:
            return NotFoundError(f"{what}: not found ({code or 404}{': ' + message if message else ''})", 404, code)
        detail = f"{code}: {message}" if code else message or " ".join((resp.reason or "no details").split())
        return RegistryResponseError(f"{what}: {resp.host} answered {status} ({detail})", status, code)


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The CIDR range ``text`` names, or None when it is a host name."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _error_body(text: str) -> tuple[str, str]:
    """(code, message) of the first entry of a spec error body, or ("", first line of the text)."""
    try:
        doc = json.loads(text)
        first = doc["errors"][0]
        return str(first.get("code", "")), " ".join(str(first.get("message", "")).split())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        line = text.strip().splitlines()[0] if text.strip() else ""
        return "", line[:200]


def _preferred_challenge(resp: Response) -> Challenge | None:
    challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def _with_digest(location: str, digest: str) -> str:
    """``location`` with ``digest=...`` added to its (opaque, already encoded) query."""
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}digest={digest}"


def _verify(where: str, digest: str, size: int | None, done: int, hasher: Any) -> None:
    actual = f"{digest.partition(':')[0]}:{hasher.hexdigest()}"
    if size is not None and done != size:
        raise BlobVerificationError(f"{where}: got {done} bytes, expected {size}; nothing was kept")
    if actual != digest:
        raise BlobVerificationError(f"{where}: the registry sent content with digest {actual}; nothing was kept")


def _report(progress_cb: ProgressCallback | None, done: int, total: int) -> None:
    if progress_cb is not None:
        progress_cb(done, max(total, done))

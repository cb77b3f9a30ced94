"""A small synchronous registry client for the fault tests (disk full, storage and database outages).

It speaks the distribution API to a live ``dockyard serve`` with ``requests``, every call bounded by a timeout, and
classifies what came back: the fault tests count answers, they do not assert on the first failure. An
:class:`Answer` records the status, the time it took, and whether an error was the spec's JSON error body;
:func:`judge` sorts answers into the outcome counts of the report rows (hangs, non-retryable answers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tests.reliability.load_client import Image
from tests.support.oci import OCI_MANIFEST
from tests.support.oci import digest as sha256

REQUEST_TIMEOUT = 60.0  # a request still open after this is a hang, whatever the fault
RETRYABLE = frozenset({503})


@dataclass(frozen=True)
class Answer:
    """What one request got: ``status`` 0 when the connection failed or timed out (``error`` says how)."""

    status: int
    seconds: float
    sent: float = 0.0  # time.monotonic() when the request started
    code: str = ""  # the first error code of a JSON error body
    retry_after: str | None = None
    error: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    request: str = ""  # "METHOD /path", as evidence in a failure message

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """A 503 with ``Retry-After`` and the spec's error body: what a client may retry."""
        return self.status in RETRYABLE and self.retry_after is not None and bool(self.code)


def _error_code(response: requests.Response) -> str:
    try:
        errors = json.loads(response.content)["errors"]
        return str(errors[0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


@dataclass
class RegistryClient:
    """Requests to ``url``; ``token`` (when set) goes in a bearer ``Authorization`` header."""

    url: str
    token: str = ""
    timeout: float = REQUEST_TIMEOUT
    answers: list[Answer] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Answer:
        """One request; never raises for HTTP or connection failures. Every answer is kept in ``answers``."""
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        started, request = time.monotonic(), f"{method} {path}"
        try:
            response = requests.request(
                method,
                self.url + path,
                data=data,
                headers=headers,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
            body = response.content
        except requests.RequestException as exc:
            answer = Answer(
                0, time.monotonic() - started, started, error=f"{type(exc).__name__}: {exc}", request=request
            )
        else:
            answer = Answer(
                response.status_code,
                time.monotonic() - started,
                started,
                _error_code(response) if response.status_code >= 400 else "",
                response.headers.get("Retry-After"),
                body=body,
                headers=dict(response.headers),
                request=request,
            )
        self.answers.append(answer)
        return answer

    def push_blob(self, name: str, data: bytes) -> Answer:
        """Monolithic upload: ``POST ?digest=`` with the whole body."""
        return self.request("POST", f"/v2/{name}/blobs/uploads/?digest={sha256(data)}", data=data)

    def start_upload(self, name: str) -> tuple[Answer, str]:
        """Open a session; returns the answer and its ``Location`` path ("" when refused)."""
        answer = self.request("POST", f"/v2/{name}/blobs/uploads/")
        return answer, answer.headers.get("Location", "") if answer.status == 202 else ""

    def push_blob_chunked(self, name: str, data: bytes, chunk: int) -> Answer:
        """Session upload: PATCH chunks with ``Content-Range``, then ``PUT ?digest=``; the first failure is returned."""
        answer, location = self.start_upload(name)
        if not location:
            return answer
        for start in range(0, len(data), chunk):
            answer = self.patch(location, data[start : start + chunk], start)
            if answer.status != 202:
                return answer
            location = answer.headers["Location"]
        return self.finish(location, data)

    def patch(self, location: str, piece: bytes, start: int) -> Answer:
        headers = {"Content-Range": f"{start}-{start + len(piece) - 1}", "Content-Type": "application/octet-stream"}
        return self.request("PATCH", location, data=piece, headers=headers)

    def finish(self, location: str, data: bytes) -> Answer:
        separator = "&" if "?" in location else "?"
        return self.request("PUT", f"{location}{separator}digest={sha256(data)}")

    def upload_offset(self, location: str) -> int | None:
        """The session's byte count from ``GET`` status (its ``Range`` header), or None when it answered otherwise."""
        answer = self.request("GET", location)
        if answer.status != 204:
            return None
        span = answer.headers.get("Range", "0-0")
        return int(span.rpartition("-")[2]) + 1 if span != "0-0" else 0

    def put_manifest(self, name: str, reference: str, manifest: bytes) -> Answer:
        return self.request(
            "PUT", f"/v2/{name}/manifests/{reference}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
        )

    def get_manifest(self, name: str, reference: str) -> Answer:
        return self.request("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})

    def get_blob(self, name: str, digest: str) -> Answer:
        return self.request("GET", f"/v2/{name}/blobs/{digest}")


def make_image(name: str, tag: str, layer_sizes: tuple[int, ...], random: Callable[[int], bytes]) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag, "salt": random(8).hex()}).encode()
    return Image(name, tag, config, tuple(random(size) for size in layer_sizes))


def push_image(client: RegistryClient, image: Image) -> Answer:
    """Every blob (monolithic), then the manifest under the tag; the first failure is returned."""
    for blob in image.blobs:
        answer = client.push_blob(image.repo, blob)
        if answer.status != 201:
            return answer
    return client.put_manifest(image.repo, image.tag, image.manifest)


def pulled_intact(client: RegistryClient, image: Image) -> bool:
    """True when the tag's manifest and every blob come back byte-identical."""
    manifest = client.get_manifest(image.repo, image.tag)
    if manifest.status != 200 or manifest.body != image.manifest:
        return False
    return all(
        (answer := client.get_blob(image.repo, sha256(blob))).status == 200 and answer.body == blob
        for blob in image.blobs
    )

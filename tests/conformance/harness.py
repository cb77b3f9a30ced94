"""What the Go conformance suite runs on, ported: its configuration, reggie's client, gomega's matchers
and Ginkgo's ordered specs.

* **Configuration** (``setup.go``'s environment): all four workflows enabled,
  ``OCI_AUTOMATIC_CROSSMOUNT=true`` (:data:`AUTOMATIC_CROSSMOUNT`), ``OCI_DELETE_MANIFEST_BEFORE_BLOBS``
  unset, hence true (:data:`DELETE_MANIFEST_BEFORE_BLOBS`), ``OCI_CROSSMOUNT_NAMESPACE`` unset, hence
  ``conformance-<uuid>`` (:data:`CROSSMOUNT_NAMESPACE`).
* **Client** (:class:`OciClient`, :class:`Response`): reggie's ``NewRequest``/``Do`` (``<name>``,
  ``<reference>`` and ``<digest>`` placeholders, query parameters appended to a ``Location``'s own),
  ``GetRelativeLocation``, ``GetAbsoluteLocation`` and ``Errors``.
* **Body framing**: reggie wraps every body in an ``io.NopCloser``, resty streams such a body as is and
  Go's ``net/http`` then sends it ``Transfer-Encoding: chunked``, dropping the ``Content-Length`` header
  the test set; a request without a body goes out with ``Content-Length: 0`` (POST, PUT, PATCH).
  :class:`OciClient` reproduces that wire format by default. ``OCI_CONFORMANCE_FRAMING=content-length``
  sends every body with its exact ``Content-Length`` instead (what most other clients do).
* **Specs** (:class:`Workflow`, :class:`Runner`): Ginkgo runs the specs of a workflow in order against
  shared variables (``lastResponse``, ``tag``…), and a failed spec does not stop the next ones. Each Go
  spec is one pytest test here, registered in order with :meth:`Workflow.spec`; its variables live in a
  per-workflow state object. Running a test alone (``-k``, ``--lf``, xdist) first replays the specs
  before it that did not run yet, their failures reported but ignored, as in Ginkgo.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from tests.conformance.testdata import ERROR_CODES, TestData

NAMESPACE = "conformance/testrepo"
"""``OCI_NAMESPACE``: the repository every workflow works in."""

CROSSMOUNT_NAMESPACE = f"conformance-{uuid.uuid4()}"
"""``OCI_CROSSMOUNT_NAMESPACE`` unset: Go uses ``conformance-<uuid>``."""

AUTOMATIC_CROSSMOUNT = True
"""``OCI_AUTOMATIC_CROSSMOUNT=true``: the registry is configured to mount blobs without ``from`` and the
suite runs the "automatic content discovery enabled" check (and skips the "disabled" one)."""

RUN_AUTOMATIC_CROSSMOUNT_TEST = True
"""Go: ``runAutomaticCrossmountTest``, true whenever ``OCI_AUTOMATIC_CROSSMOUNT`` is set at all."""

DELETE_MANIFEST_BEFORE_BLOBS = True
"""``OCI_DELETE_MANIFEST_BEFORE_BLOBS`` unset: Go's default is true, so each teardown deletes the
manifests first and then the blobs (the specs for the other order are not even defined)."""

USER_AGENT = "distribution-spec-conformance-tests"

FRAMING = os.environ.get("OCI_CONFORMANCE_FRAMING", "chunked")
if FRAMING not in ("chunked", "content-length"):
    raise ValueError(f"OCI_CONFORMANCE_FRAMING must be 'chunked' or 'content-length', not {FRAMING!r}")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ConformanceWarning(UserWarning):
    """Go: ``Warn(message)`` — the suite accepts the behaviour but reports it."""


def warn(message: str) -> None:
    """Go: ``Warn``."""
    warnings.warn(message, ConformanceWarning, stacklevel=2)


@dataclass(frozen=True)
class Response:
    """A complete response (reggie's ``Response``), with the request that caused it, for messages."""

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes | None
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def header(self, name: str) -> str:
        """Go: ``resp.Header().Get(name)`` — the first value, ``""`` when absent."""
        return self.headers.get(name, "")

    def relative_location(self) -> str:
        """reggie: ``GetRelativeLocation`` — path and query of the ``Location`` header."""
        location = urlsplit(self.header("Location"))
        return f"{location.path}?{location.query}" if location.query else location.path

    def absolute_location(self) -> str:
        """reggie: ``GetAbsoluteLocation`` — the ``Location`` header as is."""
        return self.header("Location")

    def json(self) -> Any:
        """The body parsed as JSON (``json.Unmarshal``); fails the test when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"response body is not JSON ({exc})\n{self.describe()}") from None

    def errors(self) -> list[dict[str, Any]]:
        """reggie: ``Errors`` — the ``errors`` array of an OCI error body; fails when there is none."""
        document = self.json()
        errors = document.get("errors") if isinstance(document, dict) else None
        if not isinstance(errors, list) or not errors:
            raise AssertionError(f"body was valid json but could not be parsed as OCI errors\n{self.describe()}")
        return [e if isinstance(e, dict) else {} for e in errors]

    def tag_list(self) -> list[str]:
        """Go: ``getTagList`` — the ``tags`` of a tags-list body, ``[]`` when it cannot be parsed."""
        try:
            document = json.loads(self.body)
        except ValueError:
            return []
        tags = document.get("tags") if isinstance(document, dict) else None
        return [str(t) for t in tags] if isinstance(tags, list) else []

    def describe(self) -> str:
        """The exchange, for assertion messages."""
        sent = dict(self.request_headers)
        body = "" if self.request_body is None else f"\n  request body: {len(self.request_body)} bytes"
        received = "\n".join(f"  {k}: {v}" for k, v in self.headers.items())
        text = self.body[:600].decode("utf-8", "replace")
        return (
            f"{self.method} {self.url}\n  request headers: {sent}{body}\n-> {self.status}\n{received}\n  body: {text!r}"
        )


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    """A body of unknown length: aiohttp sends it ``Transfer-Encoding: chunked``, as Go does."""
    yield data


class OciClient:
    """Go: reggie's ``Client`` as the suite configures it (default name ``NAMESPACE``)."""

    def __init__(self, client: TestClient[Any, Any], namespace: str = NAMESPACE) -> None:
        self.client = client
        self.default_name = namespace

    def path(
        self,
        template: str,
        *,
        name: str | None = None,
        reference: str | None = None,
        digest: str | None = None,
    ) -> str:
        """reggie: the placeholders of ``NewRequest`` replaced (``WithName``/``WithReference``/``WithDigest``)."""
        path = template.replace("<name>", name or self.default_name)
        if reference is not None:
            path = path.replace("<reference>", reference)
        if digest is not None:
            path = path.replace("<digest>", digest)
        return "/" + path.lstrip("/")

    async def do(
        self,
        method: str,
        template: str,
        *,
        name: str | None = None,
        reference: str | None = None,
        digest: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """reggie: ``client.Do(client.NewRequest(method, template, ...).SetHeader(...).SetQueryParam(...)
        .SetBody(...))``. ``headers`` are those the Go test sets; see the module docstring for framing."""
        url = self.path(template, name=name, reference=reference, digest=digest)
        if query:
            # resty appends its query parameters to those already in the URL (a Location's own).
            url += ("&" if "?" in url else "?") + urlencode(query)
        sent = CIMultiDict({"User-Agent": USER_AGENT, **(headers or {})})
        declared = sent.pop("Content-Length", None)
        data: bytes | AsyncIterator[bytes] | None = None
        if body:
            if FRAMING == "chunked":
                data = _stream(body)
            else:
                sent["Content-Length"] = str(len(body))
                data = body
        elif method in _BODY_METHODS:
            sent["Content-Length"] = "0"
        async with self.client.request(method, url, headers=sent, data=data, allow_redirects=True) as resp:
            received = await resp.read()
            shown = dict(sent)
            if declared is not None and shown.get("Content-Length") != declared:
                shown["Content-Length (set by the Go test, not sent)"] = declared
            return Response(method, url, shown, body, resp.status, resp.headers, received)


def _status_message(resp: Response, expected: str) -> str:
    return f"expected status {expected}, got {resp.status}\n{resp.describe()}"


def expect_status(resp: Response, *allowed: int) -> None:
    """gomega: ``Expect(resp.StatusCode()).To(Equal(a))`` / ``SatisfyAny(Equal(a), Equal(b), ...)``."""
    assert resp.status in allowed, _status_message(resp, " or ".join(map(str, allowed)))


def expect_2xx(resp: Response, *or_also: int) -> None:
    """gomega: ``SatisfyAll(BeNumerically(">=", 200), BeNumerically("<", 300))``, optionally
    ``SatisfyAny``'d with exact codes (typically 404 and 405 in teardowns)."""
    expected = " or ".join(["2xx", *map(str, or_also)])
    assert 200 <= resp.status < 300 or resp.status in or_also, _status_message(resp, expected)


def expect_header(resp: Response, name: str, expected: str) -> None:
    """gomega: ``Expect(resp.Header().Get(name)).To(Equal(expected))``."""
    actual = resp.header(name)
    assert actual == expected, f"expected header {name}: {expected!r}, got {actual!r}\n{resp.describe()}"


def expect_header_not_empty(resp: Response, name: str) -> None:
    """gomega: ``Expect(resp.Header().Get(name)).ToNot(BeEmpty())``."""
    assert resp.header(name), f"expected a non-empty {name} header\n{resp.describe()}"


def expect_optional_header(resp: Response, name: str, expected: str) -> None:
    """Go: ``if h := resp.Header().Get(name); h != "" { Expect(h).To(Equal(expected)) }``."""
    actual = resp.header(name)
    if actual:
        assert actual == expected, f"header {name} is present but {actual!r}, not {expected!r}\n{resp.describe()}"


def expect_conforming_error(resp: Response, code: str | None = None) -> None:
    """Go: ``errorResponses, err := resp.Errors(); Expect(err).To(BeNil()); Expect(errorResponses).ToNot(
    BeEmpty())`` then ``Expect(errorCodes).To(ContainElement(errorResponses[0].Code))`` (or, with ``code``,
    ``Expect(errorResponses[0].Code).To(Equal(code))``)."""
    first = resp.errors()[0].get("code")
    if code is None:
        assert first in ERROR_CODES, f"error code {first!r} is not one of the spec's codes\n{resp.describe()}"
    else:
        assert first == code, f"expected error code {code!r}, got {first!r}\n{resp.describe()}"


def run_only_if(condition: bool, why: str) -> None:
    """Go: ``RunOnlyIf(condition)`` — skip the spec unless ``condition``."""
    if not condition:
        pytest.skip(f"skipped as the Go suite does: {why}")


S = TypeVar("S")
SpecBody = Callable[["Runner[S]"], Awaitable[None]]


@dataclass(frozen=True, eq=False)
class Spec(Generic[S]):
    """One Ginkgo ``Specify`` of a workflow: its context (``Setup``, ``Pull blobs``…), text and body."""

    workflow: str
    context: str
    text: str
    body: SpecBody[S]

    @property
    def title(self) -> str:
        """The Go spec's full name, e.g. ``Pull / Setup / Populate registry with test blob``."""
        return f"{self.workflow} / {self.context} / {self.text}"


@dataclass
class Workflow(Generic[S]):
    """A Go workflow (``g.Context(titlePull, ...)``): its specs in order and the type of its variables."""

    title: str
    state: Callable[[], S]
    specs: list[Spec[S]] = field(default_factory=list)

    def spec(self, context: str, text: str) -> Callable[[SpecBody[S]], SpecBody[S]]:
        """Register the decorated test as the next Go spec ``title / context / text``."""

        def decorate(body: SpecBody[S]) -> SpecBody[S]:
            spec = Spec(self.title, context, text, body)
            self.specs.append(spec)

            @functools.wraps(body)
            async def test(oci: Runner[S]) -> None:
                await oci.run(spec)

            return test

        return decorate


class Runner(Generic[S]):
    """Runs one workflow's specs against one registry, in Go's order, sharing the workflow's variables."""

    def __init__(self, workflow: Workflow[S], client: OciClient, data: TestData) -> None:
        self.workflow = workflow
        self.client = client
        self.data = data
        self.state = workflow.state()
        self._done: set[int] = set()

    async def run(self, spec: Spec[S]) -> None:
        """Run ``spec`` after replaying (and reporting, but ignoring the failures of) earlier specs that
        did not run yet, as Ginkgo would have run them before."""
        index = self.workflow.specs.index(spec)
        for earlier in self.workflow.specs[:index]:
            if id(earlier) not in self._done:
                await self._replay(earlier)
        self._done.add(id(spec))
        await spec.body(self)

    async def _replay(self, spec: Spec[S]) -> None:
        self._done.add(id(spec))
        try:
            await spec.body(self)
        except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"replayed earlier spec {spec.title!r}: {type(exc).__name__}: {first_line}")
        else:
            print(f"replayed earlier spec {spec.title!r}: passed")

    # The reggie calls the specs make, bound to this runner's client.

    async def do(self, method: str, template: str, **kwargs: Any) -> Response:
        """``client.Do(client.NewRequest(...))``; see :meth:`OciClient.do`."""
        return await self.client.do(method, template, **kwargs)

    async def upload_blob(self, blob_digest: str, content: bytes, content_length: str) -> Response:
        """The suite's two-request blob push: ``POST /v2/<name>/blobs/uploads/``, then ``PUT`` to its
        ``Location`` with ``?digest=`` and the whole blob. Returns the PUT's response (the POST's only
        error checked in Go is a transport error)."""
        post = await self.do("POST", "/v2/<name>/blobs/uploads/")
        return await self.do(
            "PUT",
            post.relative_location(),
            query={"digest": blob_digest},
            headers={"Content-Type": "application/octet-stream", "Content-Length": content_length},
            body=content,
        )

    async def put_manifest(self, reference: str, content: bytes, media_type: str) -> Response:
        """``PUT /v2/<name>/manifests/<reference>`` with ``Content-Type: media_type``."""
        return await self.do(
            "PUT",
            "/v2/<name>/manifests/<reference>",
            reference=reference,
            headers={"Content-Type": media_type},
            body=content,
        )

"""``Range`` (blob GET, ``registry.blobresponse.parse_range``) and ``Content-Range`` (upload PATCH/PUT,
``registry.handlers.uploads._chunk_start``) on arbitrary header values.

``Range`` follows RFC 9110 §14 (RFC 7233): a syntactically valid single ``bytes=`` range gets exactly the span an
independent oracle computes, or 416 with ``Content-Range: bytes */size`` when unsatisfiable; another unit or a
multi-range is ignored (None: the whole blob); an invalid range may be ignored or refused with 416. Never another
exception. ``Content-Range`` of an upload chunk (``<start>-<end>``, optionally ``bytes``-prefixed and ``/total``)
yields its start when consistent with ``Content-Length``, else the spec's 416 (BLOB_UPLOAD_INVALID).
"""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given
from hypothesis import strategies as st

from registry.blobresponse import parse_range
from registry.errors import ErrorCode, RegistryError
from registry.handlers.uploads import _chunk_start
from tests.reliability.strategies import FEW, PROPERTY

HUGE = 10**18  # beyond any blob: numbers longer than this compare as "huge" without int() on 5000 digits


def number(digits: str) -> int:
    """An ASCII digit string as an int, capped at HUGE (so the oracle itself never converts huge strings)."""
    digits = digits.lstrip("0") or "0"
    return HUGE if len(digits) > 18 else int(digits)


_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
Outcome = tuple[int, int] | None | str  # a span, "whole blob", or "416"
INVALID = "invalid"  # RFC 9110 lets the server ignore or refuse it


def oracle(header: str | None, size: int) -> Outcome:
    """RFC 9110 §14.1.2 for one ``bytes`` range-spec against a blob of ``size`` bytes."""
    if not header:
        return None
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in spec:
        return None if unit.strip().lower() != "bytes" or "," in spec else INVALID
    match = _SPEC.fullmatch(spec.strip())
    if match is None or not (match[1] or match[2]):
        return INVALID
    if not match[1]:  # suffix-byte-range-spec
        length = number(match[2])
        if length == 0 or size == 0:
            return "416"
        return max(size - length, 0), size - 1
    first = number(match[1])
    last = number(match[2]) if match[2] else size - 1
    if last < first:
        return INVALID
    if first >= size:
        return "416"
    return first, min(last, size - 1)


def assert_416(exc: RegistryError, size: int | None = None) -> None:
    """The spec's answer to a bad range: BLOB_UPLOAD_INVALID with status 416, in a body that serialises; for a
    blob GET (``size`` given) with ``Content-Range: bytes */size``."""
    assert (exc.code, exc.code.status) == (ErrorCode.RANGE_INVALID, 416)
    response = exc.response("GET")
    assert response.status == 416
    if size is not None:
        assert response.headers["Content-Range"] == f"bytes */{size}"


def assert_range(header: str | None, size: int) -> None:
    expected = oracle(header, size)
    got: Outcome
    try:
        got = parse_range(header, size)
    except RegistryError as exc:
        assert_416(exc, size)
        got = "416"
    if expected == INVALID:
        assert got in (None, "416"), (header, size, got)
    else:
        assert got == expected, (header, size, got, expected)
    if isinstance(got, tuple):
        assert 0 <= got[0] <= got[1] < size


digits = st.text("0123456789", min_size=1, max_size=20)
small = st.integers(min_value=0, max_value=200).map(str)
positions = st.one_of(small, digits, st.just(""))
valid_specs = st.builds(lambda a, b: f"{a}-{b}", positions, positions)
units = st.sampled_from(["bytes", "BYTES", "Bytes", " bytes ", "items", "", "byte"])
ascii_headers = st.one_of(
    st.builds(lambda unit, spec: f"{unit}={spec}", units, valid_specs),
    st.builds(lambda a, b: f"bytes={a},{b}", valid_specs, valid_specs),
    st.text(st.sampled_from("bytes=0123456789-, \t*/"), max_size=30),
    st.text(st.characters(max_codepoint=127), max_size=40),
)
sizes = st.integers(min_value=0, max_value=300)


@PROPERTY
@given(ascii_headers, sizes)
@example("bytes=0-0", 0)
@example("bytes=-0", 10)
@example("bytes=5-4", 10)
@example("bytes= 1-2 ", 10)
@example("bytes=-", 10)
@example("bytes=0-18446744073709551616", 10)
def test_range_headers_follow_rfc_9110(header: str, size: int) -> None:
    assert_range(header, size)


@PROPERTY
@given(st.text(max_size=40), sizes)
def test_any_range_header_gets_a_span_whole_blob_or_416(header: str, size: int) -> None:
    """Any text at all (unicode digits included): a span inside the blob, None, or 416; no other exception.
    ASCII-digit spans are checked exactly by the test above; here only the outcome's shape."""
    try:
        span = parse_range(header, size)
    except RegistryError as exc:
        assert_416(exc)
        return
    if span is not None:
        assert 0 <= span[0] <= span[1] < size


# Regressions found by this suite: parse_range used to call int() on str.isdigit() text, which accepts "²" (int()
# refuses it) and any length (int() refuses more than 4300 digits): a 500 on blob GET.
SENDFILE_BUGS = [
    ("bytes=²-", 10),
    ("bytes=0-²", 10),
    ("bytes=-" + "9" * 5000, 10),
    ("bytes=0-" + "9" * 5000, 10),
    ("bytes=" + "9" * 5000 + "-", 10),
]


@pytest.mark.parametrize(("header", "size"), SENDFILE_BUGS, ids=range(len(SENDFILE_BUGS)))
def test_range_header_regressions(header: str, size: int) -> None:
    assert_range(header, size)


# -- Content-Range of upload chunks ---------------------------------------------------------------------------------


def chunk_start(header: str, content_length: int | None) -> int | str | None:
    headers = {"Content-Range": header}
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    request = make_mocked_request("PATCH", "/v2/a/blobs/uploads/x", headers=headers)
    try:
        return _chunk_start(request)
    except RegistryError as exc:
        assert_416(exc)
        return "416"


@FEW
@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "bytes ", "bytes="]),
    st.sampled_from(["", "/*", "/1000000000000000"]),
)
def test_consistent_content_ranges_give_their_start(start: int, length: int, prefix: str, total: str) -> None:
    header = f"{prefix}{start}-{start + length}{total}"
    assert chunk_start(header, length + 1) == start
    assert chunk_start(header, None) == start
    assert chunk_start(header, length + 2) == "416"


@PROPERTY
@given(
    st.one_of(
        st.text(st.sampled_from("bytes =0123456789-/*\xb2\u0661"), max_size=30),
        st.text(max_size=40),
        st.builds(lambda a, b: f"{a}-{b}", digits, digits),
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
)
@example("0-" + "9" * 5000, None)
@example("9" * 5000 + "-" + "9" * 5000, None)
@example("\u0661-\u0662", 2)  # Arabic-Indic digits
@example("0-1/" + "9" * 5000, 2)
def test_any_content_range_gives_a_start_or_416(header: str, content_length: int | None) -> None:
    """Only an ASCII ``start-end`` (``bytes`` prefix and ``/total`` optional) with end >= start and a matching
    Content-Length yields a start; every other value is 416."""
    got = chunk_start(header, content_length)
    match = re.fullmatch(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?", header.strip(), re.ASCII)
    if got != "416":
        assert match is not None, header
        assert got == int(match[1])
        end = int(match[2])  # the server accepted it, so it is short enough
        assert end >= got
        assert content_length is None or content_length == end - got + 1

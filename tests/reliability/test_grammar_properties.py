"""Names, tags, references and digests (``registry/reference.py``) against the distribution-spec grammar.

Valid inputs generated from the spec's regexes are accepted unchanged; any other text is accepted only if the spec
allows it, and otherwise rejected with the spec's error code (NAME_INVALID, TAG_INVALID, DIGEST_INVALID) and an
error body that serialises; never with another exception.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest, check_name, is_tag, parse_digest, parse_reference
from tests.reliability.strategies import (
    FEW,
    HEX_LENGTHS,
    PROPERTY,
    TRAVERSAL,
    any_text,
    spec_digest,
    spec_name,
    spec_tag,
    supported_digest,
    valid_digests,
    valid_names,
    valid_tags,
)


def assert_error(exc: RegistryError, code: ErrorCode) -> None:
    """The expected code, a 400, and a body that the middleware can write (whatever text the input held)."""
    assert exc.code is code, exc
    assert exc.code.status == 400
    response = exc.response("GET")
    assert response.status == 400
    assert response.body is not None
    assert json.loads(response.body)["errors"][0]["code"] == code.code


# -- names -------------------------------------------------------------------------------------------------------


@PROPERTY
@given(valid_names)
def test_spec_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@PROPERTY
@given(st.one_of(any_text, st.sampled_from(TRAVERSAL), valid_names.map(lambda n: n + "/" + n.upper())))
@example("a" * 255)
@example("a" * 256)
@example("a\n")
@example("a/b\x00")
def test_any_name_is_accepted_only_when_the_spec_allows_it(text: str) -> None:
    try:
        accepted = check_name(text)
    except RegistryError as exc:
        assert not spec_name(text), text
        assert_error(exc, ErrorCode.NAME_INVALID)
    else:
        assert accepted == text
        assert spec_name(text), text


# -- tags and references -----------------------------------------------------------------------------------------


@FEW
@given(valid_tags)
def test_spec_tags_are_accepted(tag: str) -> None:
    assert is_tag(tag)
    assert parse_reference(tag) == tag


@PROPERTY
@given(st.one_of(any_text, st.sampled_from(TRAVERSAL)))
@example("t" * 128)
@example("t" * 129)
@example("v1\n")
@example("\u212a")  # KELVIN SIGN: lowercases to ASCII "k"
def test_any_tag_is_accepted_only_when_the_spec_allows_it(text: str) -> None:
    assert is_tag(text) == spec_tag(text), text


@PROPERTY
@given(st.one_of(any_text, st.sampled_from(TRAVERSAL), valid_tags, valid_digests()))
def test_references_are_a_digest_or_a_tag(text: str) -> None:
    """A reference with ``:`` is a digest (DIGEST_INVALID otherwise), without one a tag (TAG_INVALID)."""
    try:
        reference = parse_reference(text)
    except RegistryError as exc:
        if ":" in text:
            assert not supported_digest(text), text
            assert_error(exc, ErrorCode.DIGEST_INVALID)
        else:
            assert not spec_tag(text), text
            assert_error(exc, ErrorCode.TAG_INVALID)
        return
    if ":" in text:
        assert isinstance(reference, Digest)
        assert str(reference) == text
        assert supported_digest(text)
    else:
        assert reference == text
        assert spec_tag(text)


# -- digests -----------------------------------------------------------------------------------------------------


@FEW
@given(valid_digests())
def test_supported_digests_round_trip(text: str) -> None:
    digest = parse_digest(text)
    assert str(digest) == text
    assert len(digest.hex) == HEX_LENGTHS[digest.algorithm]
    assert digest.hasher().name == digest.algorithm


@FEW
@given(st.binary(max_size=256), st.sampled_from(sorted(HEX_LENGTHS)))
def test_digest_of_bytes_parses_back(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert parse_digest(str(digest)) == digest
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()


@PROPERTY
@given(
    st.one_of(
        any_text,
        st.sampled_from(TRAVERSAL),
        valid_digests().map(str.upper),
        valid_digests().map(lambda d: d + "0"),
        valid_digests().map(lambda d: d[:-1]),
        st.from_regex(r"\A[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z", fullmatch=True),
    )
)
@example("sha256:" + "A" * 64)
@example("md5:" + "0" * 32)
@example("sha256:" + "0" * 64 + "\n")
@example("sha384:" + "0" * 96)
def test_any_digest_is_accepted_only_when_supported(text: str) -> None:
    """Anything outside the spec's grammar, an unsupported algorithm, or a wrong-length/uppercase encoding is
    DIGEST_INVALID."""
    try:
        digest = parse_digest(text)
    except RegistryError as exc:
        assert not supported_digest(text), text
        assert_error(exc, ErrorCode.DIGEST_INVALID)
    else:
        assert spec_digest(text)
        assert supported_digest(text)
        assert str(digest) == text


# -- no pathological regex time ------------------------------------------------------------------------------------

ADVERSARIAL = [
    "a" * 100_000 + "!",
    "a-" * 50_000 + "!",
    "a_" * 50_000,
    "a." * 50_000 + "/",
    "a/" * 50_000 + "-",
    "0" * 100_000 + ":",
    "a+" * 50_000 + ":" + "0" * 64,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_long_adversarial_inputs_are_rejected_quickly(text: str) -> None:
    """No catastrophic backtracking: each parser answers a 100 kB near-miss in well under a second."""
    started = time.perf_counter()
    for parse in (check_name, parse_digest, parse_reference):
        with pytest.raises(RegistryError):
            parse(text)
    assert not is_tag(text)
    assert time.perf_counter() - started < 1.0

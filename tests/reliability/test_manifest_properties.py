"""``parse_manifest`` on hostile bodies: arbitrary bytes and JSON values, near-valid manifests and indexes (mutated
fields, wrong types, huge and negative numbers, unicode), deep nesting. Each either parses into a consistent
:class:`ParsedManifest` or raises MANIFEST_INVALID (400, a body that serialises); never any other exception.
Well-formed manifests and indexes generated from the image-spec are always accepted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from registry.errors import ErrorCode, RegistryError
from registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    ParsedManifest,
    parse_manifest,
    subject_of,
)
from registry.reference import parse_digest
from tests.reliability.strategies import FEW, PROPERTY, canonical, json_values, valid_digests

CONTENT_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, *DOCKER_SCHEMA1, "", "application/json"]
content_types = st.one_of(
    st.sampled_from(CONTENT_TYPES),
    st.sampled_from(CONTENT_TYPES).map(lambda t: f"{t.upper()}; charset=utf-8"),
    st.text(max_size=40),
)


def assert_manifest_invalid(exc: RegistryError) -> None:
    assert exc.code is ErrorCode.MANIFEST_INVALID, exc
    response = exc.response("PUT")
    assert response.status == 400
    assert response.body is not None
    assert json.loads(response.body)["errors"][0]["code"] == "MANIFEST_INVALID"


def check(body: bytes, content_type: str) -> ParsedManifest | None:
    """Parse; on refusal assert the error is MANIFEST_INVALID with a writable body and return None."""
    try:
        parsed = parse_manifest(body, content_type)
    except RegistryError as exc:
        assert_manifest_invalid(exc)
        return None
    assert parsed.media_type in MANIFEST_TYPES
    for descriptor in [*parsed.blobs, *parsed.children, *([parsed.subject] if parsed.subject else [])]:
        parse_digest(descriptor.digest)  # every reference the store will follow is a supported digest
        assert isinstance(descriptor.size, int)
        assert descriptor.size >= 0
    subject_of(body)  # the stored-bytes reader never raises either
    return parsed


# -- well-formed documents ---------------------------------------------------------------------------------------

media_types = st.one_of(
    st.sampled_from(["application/vnd.oci.image.layer.v1.tar+gzip", "application/octet-stream", ""]),
    st.text(max_size=20),
)
annotations = st.one_of(st.none(), st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))


@st.composite
def descriptors(draw: st.DrawFn) -> dict[str, Any]:
    found: dict[str, Any] = {
        "mediaType": draw(media_types),
        "digest": draw(valid_digests()),
        "size": draw(st.integers(min_value=0, max_value=2**63 - 1)),
    }
    if (notes := draw(annotations)) is not None:
        found["annotations"] = notes
    return found


@st.composite
def image_manifests(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": draw(st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST])),
        "config": draw(descriptors()),
        "layers": draw(st.lists(descriptors(), max_size=4)),
    }
    if draw(st.booleans()):
        doc["subject"] = draw(descriptors())
    if (notes := draw(annotations)) is not None:
        doc["annotations"] = notes
    return doc


@st.composite
def indexes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": draw(st.sampled_from([OCI_INDEX, DOCKER_LIST])),
        "manifests": draw(st.lists(descriptors(), max_size=4)),
    }


@PROPERTY
@given(st.one_of(image_manifests(), indexes()), st.booleans())
def test_well_formed_manifests_are_accepted(doc: dict[str, Any], header_matches: bool) -> None:
    content_type = doc["mediaType"] if header_matches else "application/octet-stream"
    parsed = check(canonical(doc), content_type)
    assert parsed is not None
    assert parsed.media_type == doc["mediaType"]
    if "manifests" in doc:
        assert [d.digest for d in parsed.children] == [d["digest"] for d in doc["manifests"]]
    else:
        assert parsed.blobs[0].digest == doc["config"]["digest"]
        assert len(parsed.blobs) == 1 + len(doc["layers"])
        assert (parsed.subject is not None) == ("subject" in doc)


# -- hostile documents -------------------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=512), content_types)
@example(b"", "")
@example(b"\xff\xfe{}", OCI_MANIFEST)
@example(b"\xef\xbb\xbf{}", OCI_MANIFEST)  # a UTF-8 byte order mark
@example(b'"\\ud800"', "")
@example(b"NaN", "")
def test_arbitrary_bytes(body: bytes, content_type: str) -> None:
    check(body, content_type)


@PROPERTY
@given(json_values, content_types)
def test_arbitrary_json(value: Any, content_type: str) -> None:
    check(json.dumps(value).encode(), content_type)


HOSTILE_VALUES = st.one_of(
    json_values,
    st.sampled_from(
        [
            -1,
            -(2**63),
            2**63,
            2**64,
            10**100,
            1e308,
            0.5,
            "1",
            "",
            "\u0000",
            "\ud800",
            "sha256:" + "0" * 64,
            [],
            {},
            True,
            None,
        ]
    ),
)
FIELDS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations", "artifactType"]
DESCRIPTOR_FIELDS = ["mediaType", "digest", "size", "urls", "annotations", "artifactType", "platform"]


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest or index with a few fields replaced by hostile values or removed."""
    doc: dict[str, Any] = draw(st.one_of(image_manifests(), indexes()))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        lists = [doc[k] for k in ("layers", "manifests") if isinstance(doc.get(k), list) and doc[k]]
        targets = [doc] + [doc[k] for k in ("config", "subject") if isinstance(doc.get(k), dict)]
        targets += [d for items in lists for d in items if isinstance(d, dict)]
        target = draw(st.sampled_from(targets))
        field = draw(st.sampled_from(FIELDS if target is doc else DESCRIPTOR_FIELDS))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            target.pop(field, None)
        else:
            target[field] = copy.deepcopy(draw(HOSTILE_VALUES))  # sampled [] and {} are shared objects
    return doc


@PROPERTY
@given(near_valid(), content_types)
def test_near_valid_manifests(doc: dict[str, Any], content_type: str) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    check(body, content_type)
    check(json.dumps(doc).encode(), content_type)


@FEW
@given(image_manifests(), st.integers(min_value=-(10**30), max_value=-1))
def test_negative_sizes_are_refused(doc: dict[str, Any], size: int) -> None:
    doc["config"]["size"] = size
    assert check(canonical(doc), OCI_MANIFEST) is None


@FEW
@given(image_manifests(), st.integers().filter(lambda v: v != 2))
def test_other_schema_versions_are_refused(doc: dict[str, Any], version: int) -> None:
    doc["schemaVersion"] = version
    assert check(canonical(doc), doc["mediaType"]) is None


DEEP = 100_000


def test_deeply_nested_json_is_refused() -> None:
    """Far deeper than Python's recursion limit; 100 kB is well inside the default 4 MiB manifest limit."""
    for body in (b"[" * DEEP, b'{"a":' * DEEP, b'{"schemaVersion":2,"config":' + b"[" * DEEP):
        assert check(body, OCI_MANIFEST) is None


def test_huge_numbers_are_refused() -> None:
    """An integer too long for ``int()`` to convert, in the size and in the schema version."""
    digits = "9" * 5000
    sizes = b'{"schemaVersion":2,"config":{"digest":"sha256:' + b"0" * 64 + b'","size":' + digits.encode() + b"}}"
    assert check(sizes, OCI_MANIFEST) is None
    assert check(b'{"schemaVersion":' + digits.encode() + b"}", OCI_MANIFEST) is None
    assert check(b'{"schemaVersion":2e999,"layers":[]}', OCI_MANIFEST) is None

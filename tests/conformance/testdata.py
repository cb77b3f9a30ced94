"""The test data of the OCI conformance suite: a port of ``conformance/setup.go`` (and ``image.go``).

Upstream: opencontainers/distribution-spec, ``conformance/`` as of v1.1.1 (setup.go at commit b5f09eb,
image.go at 3ec8a56). The Go suite builds everything once, in ``init()``; :func:`build_test_data` does the
same, once per test session (:func:`suite_data`).

Manifests are serialised the way Go's ``json.MarshalIndent(v, "", "\\t")`` serialises the structs of
``image.go``: fields in struct order, ``omitempty`` fields dropped when empty, ``[]byte`` fields as
base64, a nil ``newUnspecifiedField`` as ``null``, ``<``/``>``/``&`` escaped. The registry must store
and serve those documents, unknown fields (``data``, ``newUnspecifiedField``) included.

Differences from Go, none of which changes what is checked:

* Go draws the config authors from ``crypto/rand`` and the random blobs from ``math/rand`` seeded with
  the Ginkgo seed (the time), so that digests differ between runs against a long-lived registry. Every
  run here starts from an empty registry, so one seeded :class:`random.Random` (``SEED``) draws both and
  a failure can be replayed byte for byte.
* The ``OCI_BLOB_DIGEST`` / ``OCI_MANIFEST_DIGEST`` / ``OCI_TAG_NAME`` / ``OCI_TAG_LIST`` overrides
  (testing pre-existing content of a remote registry) have no meaning for an in-process registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

SEED = 20250301
"""Seed of every random byte of the test data (Go: ``g.GinkgoRandomSeed()``)."""

NUM_WORKFLOWS = 16
"""Go: ``numWorkflows = 1 << 4`` (the iota after pull, push, contentDiscovery, contentManagement)."""

EMPTY_LAYER_TEST_TAG = "emptylayer"
TEST_TAG_NAME = "tagtest0"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST_CONTENT = b"blablabla"
ARTIFACT_TYPE_FILTER = "artifactType"
TEST_ANNOTATION_KEY = "org.opencontainers.conformance.test"

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_EMPTY_JSON = "application/vnd.oci.empty.v1+json"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

TEST_REF_ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TEST_REF_ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
TEST_REF_ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"

# Go: layerBase64String, "a base64 encoding of a simple tarball" (test.txt in a .tar.gz).
LAYER_BASE64 = (
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA"
)

# Go: errorCodes, the codes a conforming error body may carry.
ERROR_CODES = (
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
)
UNSUPPORTED = "UNSUPPORTED"

_LETTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"


def sha256_digest(data: bytes) -> str:
    """Go: ``godigest.FromBytes(data).String()``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def go_json(value: Any) -> bytes:
    """Go: ``json.MarshalIndent(value, "", "\\t")`` for the plain dicts/lists built here."""
    text = json.dumps(value, indent="\t", ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escape)
    return text.replace("\u2029", "\\u2029").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def descriptor(
    media_type: str,
    digest: str,
    size: int,
    *,
    data: bytes | None = None,
    new_unspecified_field: bytes | None = None,
) -> dict[str, Any]:
    """Go: ``descriptor`` of image.go, marshalled.

    ``mediaType`` has no ``omitempty``; ``urls``, ``annotations``, ``data``, ``platform`` and
    ``artifactType`` are ``omitempty`` (never set by the suite, except ``data``);
    ``newUnspecifiedField`` is not ``omitempty`` (``null`` when unset).
    """
    result: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if data:
        result["data"] = _b64(data)
    result["newUnspecifiedField"] = None if new_unspecified_field is None else _b64(new_unspecified_field)
    return result


def manifest_document(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    *,
    media_type: str | None = MEDIA_TYPE_MANIFEST,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """Go: ``manifest`` of image.go (schemaVersion, mediaType, artifactType, config, layers, subject,
    annotations), marshalled."""
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type:
        doc["mediaType"] = media_type
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config
    doc["layers"] = layers
    if subject is not None:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return go_json(doc)


def index_document(
    manifests: list[dict[str, Any]],
    *,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """Go: ``index`` of image.go (schemaVersion, mediaType, artifactType, manifests, subject,
    annotations), marshalled."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["manifests"] = manifests
    if subject is not None:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return go_json(doc)


@dataclass(frozen=True)
class TestBlob:
    """Go: ``TestBlob`` — content, its length as a string (it goes into a header) and its digest."""

    __test__ = False  # not a pytest test class

    content: bytes
    content_length: str
    digest: str

    @classmethod
    def of(cls, content: bytes) -> TestBlob:
        return cls(content, str(len(content)), sha256_digest(content))


@dataclass(frozen=True)
class ChunkedBlob:
    """Go: ``testBlobB`` and its two chunks, as ``setupChunkedBlob(size)`` lays them out."""

    blob: bytes
    digest: str
    chunk1: bytes
    chunk1_length: str
    chunk1_range: str
    chunk2: bytes
    chunk2_length: str
    chunk2_range: str

    @classmethod
    def build(cls, size: int, seed: int) -> ChunkedBlob:
        """Go: ``setupChunkedBlob``: a random blob of ``size`` bytes cut after ``size/2+1`` bytes."""
        blob = random_blob(size, seed)
        cut = size // 2 + 1
        chunk1, chunk2 = blob[:cut], blob[cut:]
        return cls(
            blob=blob,
            digest=sha256_digest(blob),
            chunk1=chunk1,
            chunk1_length=str(len(chunk1)),
            chunk1_range=f"0-{len(chunk1) - 1}",
            chunk2=chunk2,
            chunk2_length=str(len(chunk2)),
            chunk2_range=f"{len(chunk1)}-{len(blob) - 1}",
        )


def random_blob(size: int, seed: int) -> bytes:
    """Go: ``randomBlob(size, seed)``: reproducible random bytes."""
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class TestData:
    """Everything ``setup.go``'s ``init()`` builds, under the same names (snake_case)."""

    __test__ = False  # not a pytest test class

    seed: int
    configs: tuple[TestBlob, ...]
    manifests: tuple[TestBlob, ...]
    layer_blob_data: bytes
    layer_blob_digest: str
    layer_blob_content_length: str
    empty_layer_manifest_content: bytes
    empty_layer_manifest_digest: str
    test_blob_a: TestBlob
    chunked: ChunkedBlob
    empty_json_blob: bytes
    empty_json_descriptor: dict[str, Any]
    test_ref_blob_a: TestBlob
    test_ref_blob_b: TestBlob
    refs_manifest_a_config_artifact: TestBlob
    refs_manifest_b_config_artifact: TestBlob
    refs_manifest_a_layer_artifact: TestBlob
    refs_manifest_b_layer_artifact: TestBlob
    refs_manifest_c_layer_artifact: TestBlob
    refs_index_artifact: TestBlob
    test_annotation_values: dict[str, str] = field(default_factory=dict)
    dummy_digest: str = sha256_digest(b"hello world")

    def with_chunked_blob(self, size: int) -> TestData:
        """Go: ``setupChunkedBlob(size)`` called again (the push test does it for ``OCI-Chunk-Min-Length``)."""
        return replace(self, chunked=ChunkedBlob.build(size, self.seed + 2))


def _config_blob(rng: random.Random) -> TestBlob:
    """Go: an ``image`` config with a random 16-character author, so that every digest is unique."""
    author = "".join(rng.choice(_LETTERS) for _ in range(16))
    config = {
        "author": author,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return TestBlob.of(go_json(config))


def _config_descriptor(config: TestBlob) -> dict[str, Any]:
    """The config descriptor of the workflow manifests: ``data`` holds the config itself and
    ``newUnspecifiedField`` some bytes no spec defines."""
    return descriptor(
        MEDIA_TYPE_CONFIG,
        config.digest,
        len(config.content),
        data=config.content,
        new_unspecified_field=b"hello world",
    )


def _subject(manifest: TestBlob) -> dict[str, Any]:
    return descriptor(MEDIA_TYPE_MANIFEST, sha256_digest(manifest.content), len(manifest.content))


def build_test_data(seed: int = SEED) -> TestData:
    """Build the suite's data exactly as ``setup.go`` does (see the module docstring for the seed)."""
    rng = random.Random(seed)
    # create a unique config for each workflow category
    configs = tuple(_config_blob(rng) for _ in range(NUM_WORKFLOWS))

    layer_blob_data = base64.b64decode(LAYER_BASE64)
    layer_blob_digest = sha256_digest(layer_blob_data)
    layers = [descriptor(MEDIA_TYPE_LAYER, layer_blob_digest, len(layer_blob_data))]

    # create a unique manifest for each workflow category
    manifests = tuple(TestBlob.of(manifest_document(_config_descriptor(config), layers)) for config in configs)

    # used in push test: no mediaType, config of configs[1], an empty (non-nil) layers list
    empty_layer_manifest_content = manifest_document(_config_descriptor(configs[1]), [], media_type=None)

    # used in referrers test (artifacts with Subject field set)
    empty_json_blob = b"{}"
    empty_json_descriptor = descriptor(MEDIA_TYPE_EMPTY_JSON, sha256_digest(empty_json_blob), len(empty_json_blob))

    test_ref_blob_a = TestBlob.of(b"NHL Peanut Butter on my NHL bagel")
    test_ref_blob_b = TestBlob.of(b"NBA Strawberry Jam on my NBA croissant")
    annotation_values: dict[str, str] = {}

    def annotated(content: bytes, value: str | None) -> TestBlob:
        blob = TestBlob.of(content)
        if value is not None:
            annotation_values[blob.digest] = value
        return blob

    # artifact with Subject ref using config.MediaType = artifactType
    def config_artifact(artifact_type: str, ref_blob: TestBlob, value: str) -> TestBlob:
        content = manifest_document(
            descriptor(artifact_type, ref_blob.digest, len(ref_blob.content)),
            [empty_json_descriptor],
            subject=_subject(manifests[4]),
            annotations={TEST_ANNOTATION_KEY: value},
        )
        return annotated(content, value)

    # artifact with Subject ref using ArtifactType, config.MediaType = emptyJSON
    def layer_artifact(artifact_type: str, ref_blob: TestBlob, subject: TestBlob, value: str | None) -> TestBlob:
        content = manifest_document(
            empty_json_descriptor,
            [descriptor(artifact_type, ref_blob.digest, len(ref_blob.content))],
            artifact_type=artifact_type,
            subject=_subject(subject),
            annotations={TEST_ANNOTATION_KEY: value} if value is not None else None,
        )
        return annotated(content, value)

    refs_a_config = config_artifact(TEST_REF_ARTIFACT_TYPE_A, test_ref_blob_a, "test config a")
    refs_b_config = config_artifact(TEST_REF_ARTIFACT_TYPE_B, test_ref_blob_b, "test config b")
    refs_a_layer = layer_artifact(TEST_REF_ARTIFACT_TYPE_A, test_ref_blob_a, manifests[4], "test layer a")
    refs_b_layer = layer_artifact(TEST_REF_ARTIFACT_TYPE_B, test_ref_blob_b, manifests[4], "test layer b")
    # ManifestCLayerArtifact is the same as B but based on a subject that has not been pushed
    refs_c_layer = layer_artifact(TEST_REF_ARTIFACT_TYPE_B, test_ref_blob_b, manifests[3], None)

    refs_index = annotated(
        index_document(
            [
                descriptor(MEDIA_TYPE_MANIFEST, refs_a_config.digest, len(refs_a_config.content)),
                descriptor(MEDIA_TYPE_MANIFEST, refs_a_layer.digest, len(refs_a_layer.content)),
            ],
            artifact_type=TEST_REF_ARTIFACT_TYPE_INDEX,
            subject=_subject(manifests[4]),
            annotations={TEST_ANNOTATION_KEY: "test index"},
        ),
        "test index",
    )

    return TestData(
        seed=seed,
        configs=configs,
        manifests=manifests,
        layer_blob_data=layer_blob_data,
        layer_blob_digest=layer_blob_digest,
        layer_blob_content_length=str(len(layer_blob_data)),
        empty_layer_manifest_content=empty_layer_manifest_content,
        empty_layer_manifest_digest=sha256_digest(empty_layer_manifest_content),
        test_blob_a=TestBlob.of(random_blob(42, seed + 1)),
        chunked=ChunkedBlob.build(42, seed + 2),
        empty_json_blob=empty_json_blob,
        empty_json_descriptor=empty_json_descriptor,
        test_ref_blob_a=test_ref_blob_a,
        test_ref_blob_b=test_ref_blob_b,
        refs_manifest_a_config_artifact=refs_a_config,
        refs_manifest_b_config_artifact=refs_b_config,
        refs_manifest_a_layer_artifact=refs_a_layer,
        refs_manifest_b_layer_artifact=refs_b_layer,
        refs_manifest_c_layer_artifact=refs_c_layer,
        refs_index_artifact=refs_index,
        test_annotation_values=annotation_values,
    )


@cache
def suite_data() -> TestData:
    """The session's test data (Go builds it once, in ``init()``)."""
    return build_test_data()

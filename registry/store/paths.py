"""The storage layout of the registry, defined here and nowhere else.

::

    /v1
    ├── blobs/<alg>/<hex[0:2]>/<hex>/data            content-addressed bytes, once for the whole registry...
    ├── blobs/<alg>/<hex[0:2]>/<hex>/object          ...or, where moving is a copy (S3), a pointer to its object:
    │                                                  JSON {"key": "/v1/objects/<uuid>", "size": N}
    ├── blobs/<alg>/<hex[0:2]>/<hex>/used            empty marker, rewritten when a push reuses an old blob (for GC)
    ├── objects/<uuid>                               on S3: the bytes of upload session <uuid>, then of its blob
    ├── quarantine/<alg>/<hex>/data                  corrupt blobs moved aside by ``dockyard scrub --repair``
    └── repositories/<name>/                          <name> may have several components (library/busybox)
        ├── _layers/<alg>/<hex>/link                  "this repository holds blob <alg>:<hex>"
        ├── _manifests/revisions/<alg>/<hex>/link     JSON {"digest", "mediaType"}: a manifest of this repository
        ├── _manifests/tags/<tag>/link                the digest the tag points to
        ├── _referrers/<alg>/<hex>/<alg>-<hex>        descriptor JSON of a manifest whose subject is <alg>:<hex>
        ├── _uploads/<uuid>/startedat                 an upload session of this repository and its start time
        └── _uploads/<uuid>/data                      its bytes where a move is a rename (filesystem, memory)

Repository name components always start with ``[a-z0-9]``, so they never collide with the ``_``-prefixed
directories. Manifests are stored as blobs too (their bytes under ``blobs/``), and only linked here.
Publishing an upload renames the session's ``data`` to the blob's ``data`` where the driver renames cheaply
(filesystem, memory: the bytes are written in the session's directory, which exists from the start, so an upload
creates and removes no other directory); on S3, where a rename is a full copy, the bytes are written to
``objects/<uuid>``, the object stays, and the blob's ``object`` points at it.
"""

from __future__ import annotations

from typing import Literal

from registry.reference import Digest

ROOT = "/v1"
REPOSITORIES = f"{ROOT}/repositories"

Kind = Literal[
    "blobs",
    "blob",
    "blob_data",
    "blob_used",
    "blob_object",
    "objects",
    "quarantine",
    "repo",
    "layer_link",
    "layers",
    "revision",
    "revision_link",
    "revisions",
    "tag",
    "tag_link",
    "tags",
    "referrer",
    "referrers",
    "upload",
    "upload_data",
    "upload_staged",
    "upload_started",
    "uploads",
]


def key(
    kind: Kind,
    *,
    name: str = "",
    digest: Digest | None = None,
    tag: str = "",
    upload: str = "",
    referrer: Digest | None = None,
) -> str:
    """Map one kind of record, with its parameters, to its storage key. The only place that builds keys."""
    repo = f"{REPOSITORIES}/{name}"
    d = f"{digest.algorithm}/{digest.hex}" if digest else ""
    match kind:
        case "blobs":
            return f"{ROOT}/blobs"
        case "blob":
            assert digest is not None
            return f"{ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"
        case "blob_data":
            return key("blob", digest=digest) + "/data"
        case "blob_used":
            return key("blob", digest=digest) + "/used"
        case "blob_object":
            return key("blob", digest=digest) + "/object"
        case "objects":
            return f"{ROOT}/objects"
        case "quarantine":
            return f"{ROOT}/quarantine/{d}/data"
        case "repo":
            return repo
        case "layers":
            return f"{repo}/_layers"
        case "layer_link":
            return f"{repo}/_layers/{d}/link"
        case "revisions":
            return f"{repo}/_manifests/revisions"
        case "revision":
            return f"{repo}/_manifests/revisions/{d}"
        case "revision_link":
            return f"{repo}/_manifests/revisions/{d}/link"
        case "tags":
            return f"{repo}/_manifests/tags"
        case "tag":
            return f"{repo}/_manifests/tags/{tag}"
        case "tag_link":
            return f"{repo}/_manifests/tags/{tag}/link"
        case "referrers":
            return f"{repo}/_referrers/{d}"
        case "referrer":
            assert referrer is not None
            return f"{repo}/_referrers/{d}/{referrer.algorithm}-{referrer.hex}"
        case "uploads":
            return f"{repo}/_uploads"
        case "upload":
            return f"{repo}/_uploads/{upload}"
        case "upload_data":
            return f"{ROOT}/objects/{upload}"
        case "upload_staged":
            return f"{repo}/_uploads/{upload}/data"
        case "upload_started":
            return f"{repo}/_uploads/{upload}/startedat"
    raise ValueError(f"unknown record kind {kind!r}")

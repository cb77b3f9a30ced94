"""The storage layout: one table, one mapping function."""

from __future__ import annotations

import pytest

from registry.reference import Digest
from registry.store.paths import key
from storage.paths import check_path

D = Digest("sha256", "ab" + "0" * 62)
S = Digest("sha512", "cd" + "1" * 126)
H = "0" * 62

TABLE = [
    (("blob_data",), {"digest": D}, f"/v1/blobs/sha256/ab/ab{H}/data"),
    (("quarantine",), {"digest": D}, f"/v1/quarantine/sha256/ab{H}/data"),
    (("repo",), {"name": "lib/app"}, "/v1/repositories/lib/app"),
    (("layer_link",), {"name": "a", "digest": D}, f"/v1/repositories/a/_layers/sha256/ab{H}/link"),
    (("revision",), {"name": "a", "digest": D}, f"/v1/repositories/a/_manifests/revisions/sha256/ab{H}"),
    (("revision_link",), {"name": "a", "digest": D}, f"/v1/repositories/a/_manifests/revisions/sha256/ab{H}/link"),
    (("tags",), {"name": "a"}, "/v1/repositories/a/_manifests/tags"),
    (("tag",), {"name": "a", "tag": "v1"}, "/v1/repositories/a/_manifests/tags/v1"),
    (("tag_link",), {"name": "a", "tag": "v1"}, "/v1/repositories/a/_manifests/tags/v1/link"),
    (("referrers",), {"name": "a", "digest": D}, f"/v1/repositories/a/_referrers/sha256/ab{H}"),
    (
        ("referrer",),
        {"name": "a", "digest": D, "referrer": S},
        f"/v1/repositories/a/_referrers/sha256/ab{H}/sha512-{S.hex}",
    ),
    (("uploads",), {"name": "a"}, "/v1/repositories/a/_uploads"),
    (("upload",), {"name": "a", "upload": "u-1"}, "/v1/repositories/a/_uploads/u-1"),
    (("upload_data",), {"upload": "u-1"}, "/v1/objects/u-1"),
    (("upload_staged",), {"name": "a", "upload": "u-1"}, "/v1/repositories/a/_uploads/u-1/data"),
    (("objects",), {}, "/v1/objects"),
    (("blobs",), {}, "/v1/blobs"),
    (("blob",), {"digest": D}, f"/v1/blobs/sha256/ab/ab{H}"),
    (("blob_object",), {"digest": D}, f"/v1/blobs/sha256/ab/ab{H}/object"),
    (("blob_used",), {"digest": D}, f"/v1/blobs/sha256/ab/ab{H}/used"),
    (("upload_started",), {"name": "a", "upload": "u-1"}, "/v1/repositories/a/_uploads/u-1/startedat"),
]


@pytest.mark.parametrize(("kind", "params", "expected"), TABLE)
def test_layout(kind: tuple[str], params: dict[str, object], expected: str) -> None:
    result = key(kind[0], **params)  # type: ignore[arg-type]
    assert result == expected
    assert check_path(result, "test") == result

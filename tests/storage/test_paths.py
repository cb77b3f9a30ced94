"""The key grammar (storage.paths.check_path): one regular expression for valid keys, the component rules for the
error message."""

from __future__ import annotations

import re

import pytest

from storage.errors import InvalidPath
from storage.paths import check_path

VALID = ["/", "/a", "/a/b", "/.a", "/a/..b", "/a/b.", "/a/...", "/a-_.9/Z", "/v1/blobs/sha256/ab/" + "0" * 64]
INVALID = {
    "relative": "keys are absolute",
    "/a/": "keys are absolute",
    "": "keys are absolute",
    "/a/../b": "'..'",
    "/a/./b": "'.'",
    "/.": "'.'",
    "/a/..": "'..'",
    "/a//b": "''",
    "/a b": "'a b'",
    "/a/%2e%2e": "'%2e%2e'",
    "/ü": "'ü'",
    "/a\n": "'a\\n'",
    "/a\n/b": "'a\\n'",
}


@pytest.mark.parametrize("key", VALID)
def test_valid_keys_pass(key: str) -> None:
    assert check_path(key, "test") == key


@pytest.mark.parametrize(("key", "reason"), INVALID.items())
def test_invalid_keys_name_what_is_wrong(key: str, reason: str) -> None:
    with pytest.raises(InvalidPath, match=re.escape(reason)):
        check_path(key, "test")

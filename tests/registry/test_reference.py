"""Names, tags and digests: the spec's grammar."""

from __future__ import annotations

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest, check_name, is_tag, parse_digest, parse_reference

GOOD_NAMES = ["a", "library/busybox", "a-b/c_d/e.f", "a__b", "a---b", "x" * 255, "0/1/2/3"]
BAD_NAMES = ["", "A", "a/", "/a", "a//b", "a..b", "a._b", "_a", "a_", "a/-b", "x" * 256, "a b", "a/../b", "a%2fb"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        check_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1", True),
        ("_x", True),
        ("A.b-c_d", True),
        ("t" * 128, True),
        ("t" * 129, False),
        (".x", False),
        ("-x", False),
        ("a/b", False),
        ("", False),
    ],
)
def test_tags(tag: str, ok: bool) -> None:
    assert is_tag(tag) is ok


def test_digests() -> None:
    good = "sha256:" + "a" * 64
    assert parse_digest(good) == Digest("sha256", "a" * 64)
    assert str(parse_digest("sha512:" + "b" * 128)) == "sha512:" + "b" * 128
    for bad in (
        "sha256:totallywrong",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:" + "a" * 32,
        "sha384:" + "a" * 96,
        "sha256",
        ":abc",
        "SHA256:" + "a" * 64,
    ):
        with pytest.raises(RegistryError) as info:
            parse_digest(bad)
        assert info.value.code is ErrorCode.DIGEST_INVALID, bad


def test_references() -> None:
    assert parse_reference("latest") == "latest"
    assert isinstance(parse_reference("sha256:" + "c" * 64), Digest)
    with pytest.raises(RegistryError):
        parse_reference("sha256:nope")
    with pytest.raises(RegistryError):
        parse_reference("..")

"""Docker-style references: normalisation exactly as ``docker pull`` does it, and one-line errors."""

from __future__ import annotations

import pytest

from runtime.references import InvalidReferenceError, Reference, is_loopback_host, parse, split_host_port

DIGEST = "sha256:" + "ab" * 32

NORMALISED = [
    # (input, registry, repository, tag, digest)
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("library/busybox", "docker.io", "library/busybox", "latest", None),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
    ("index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None),
    ("someone/app", "docker.io", "someone/app", "latest", None),
    ("127.0.0.1:5000/ns/app:1.0", "127.0.0.1:5000", "ns/app", "1.0", None),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
    (f"host.example/ns/app@{DIGEST}", "host.example", "ns/app", None, DIGEST),
    ("host/ns/app", "docker.io", "host/ns/app", "latest", None),  # no '.', ':' or localhost: not a host
    (f"host.example:443/ns/app:v2@{DIGEST}", "host.example:443", "ns/app", "v2", DIGEST),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c:tag_1.x-y", "localhost:5000", "a/b/c", "tag_1.x-y", None),
    ("Registry/app", "Registry", "app", "latest", None),  # upper case in the first component: a host
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None),  # no slash: a Docker Hub name and tag
    ("a.b-c/g", "a.b-c", "g", "latest", None),
    ("ns/a.b_c__d-e---f", "docker.io", "ns/a.b_c__d-e---f", "latest", None),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), NORMALISED)
def test_parse_normalises_like_docker(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse(text) == Reference(registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("127.0.0.1:5000/ns/app:1.0", "127.0.0.1:5000/ns/app:1.0"),
        (f"host.example/ns/app:v1@{DIGEST}", f"host.example/ns/app:v1@{DIGEST}"),
        (f"host.example/ns/app@{DIGEST}", f"host.example/ns/app@{DIGEST}"),
    ],
)
def test_str_is_the_fully_qualified_form_and_parses_back(text: str, expected: str) -> None:
    ref = parse(text)
    assert str(ref) == expected
    assert parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("someone/app:1", "someone/app:1"),
        ("127.0.0.1:5000/ns/app:1.0", "127.0.0.1:5000/ns/app:1.0"),
    ],
)
def test_familiar_spelling(text: str, familiar: str) -> None:
    assert parse(text).familiar == familiar


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty reference"),
        ("Busybox", "must be lowercase"),
        ("127.0.0.1:5000/NS/app", "must be lowercase"),
        ("ab" * 32, "64-byte hexadecimal"),
        ("host/app:", "bad tag"),
        ("host/app:-tag", "bad tag"),
        ("host/app:" + "t" * 129, "bad tag"),
        ("host/app@sha256:abc", "bad digest"),
        ("host/app@sha256:" + "AB" * 32, "64 lower-case hex"),
        ("host/app@sha256:" + "ab" * 33, "64 lower-case hex"),
        ("host/app@", "empty digest"),
        ("host//app", "bad repository"),
        ("host/app/", "bad repository"),
        ("host/-app", "bad repository"),
        ("host/app_", "bad repository"),
        ("-host.example/app", "bad registry"),
        ("a_b.example/app", "bad registry"),
        ("host/" + "a" * 260, "more than 255"),
        ("host/a b", "bad repository"),
    ],
)
def test_invalid_references_raise_one_line_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse(text)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


def test_parse_without_default_tag_keeps_the_reference_untagged() -> None:
    assert parse("127.0.0.1:5000/app", default_tag=None).tag is None


def test_reference_helpers() -> None:
    ref = parse("127.0.0.1:5000/ns/app:1.0")
    assert ref.name == "127.0.0.1:5000/ns/app"
    assert ref.reference == "1.0"
    assert ref.with_digest(DIGEST).reference == DIGEST
    assert str(ref.with_digest(DIGEST)) == f"127.0.0.1:5000/ns/app@{DIGEST}"
    assert str(ref.with_tag("2.0")) == "127.0.0.1:5000/ns/app:2.0"
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert ref.api_host == "127.0.0.1:5000"
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("bad tag")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:8080", True),
        ("[::1]:5000", True),
        ("128.0.0.1:5000", False),
        ("127.0.0.1.example:5000", False),
        ("registry.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert split_host_port("[::1]:5000") == ("::1", 5000)
    assert split_host_port("[::1]") == ("::1", None)
    assert split_host_port("registry.example") == ("registry.example", None)

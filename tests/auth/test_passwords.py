"""Password hashing, htpasswd parsing and token secrets (no database)."""

from __future__ import annotations

import subprocess

import pytest

from auth.passwords import (
    HtpasswdError,
    hash_password,
    is_bcrypt_hash,
    new_token_secret,
    parse_htpasswd,
    parse_token_secret,
    token_digest,
    token_matches,
    verify_password,
)
from tests.support.tools import require_tool


def test_hash_then_verify() -> None:
    hashed = hash_password("correct horse", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert is_bcrypt_hash(hashed)
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct horsE", hashed)
    assert not verify_password("", hashed)


def test_hashes_are_salted() -> None:
    assert hash_password("same password", rounds=4) != hash_password("same password", rounds=4)


@pytest.mark.parametrize("prefix", ["$2a$", "$2y$"])
def test_other_bcrypt_spellings_verify(prefix: str) -> None:
    hashed = prefix + hash_password("päss wörd", rounds=4)[4:]
    assert verify_password("päss wörd", hashed)
    assert not verify_password("pass word", hashed)


@pytest.mark.interop
def test_hash_made_by_real_htpasswd_verifies() -> None:
    htpasswd = require_tool("htpasswd")
    line = subprocess.run(
        [htpasswd, "-B", "-b", "-C", "5", "-n", "alice", "s3cret pass"], capture_output=True, text=True, check=True
    ).stdout.strip()
    name, hashed = line.split(":", 1)
    assert name == "alice"
    assert hashed.startswith("$2y$05$")
    assert verify_password("s3cret pass", hashed)
    assert not verify_password("s3cret pas", hashed)


def test_passwords_longer_than_bcrypt_reads_are_refused_not_truncated() -> None:
    seventy_two = "x" * 72
    hashed = hash_password(seventy_two, rounds=4)
    assert verify_password(seventy_two, hashed)
    assert not verify_password(seventy_two + "y", hashed)
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("é" * 37, rounds=4)  # 74 bytes in UTF-8


@pytest.mark.parametrize(
    "hashed",
    ["", "plain", "$apr1$abc$def", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "$2b$04$short", "$2x$04$" + "a" * 53],
)
def test_malformed_hashes_never_verify_nor_raise(hashed: str) -> None:
    assert not is_bcrypt_hash(hashed)
    assert not verify_password("password", hashed)


def test_parse_htpasswd_skips_blank_lines_and_comments() -> None:
    a = hash_password("password-a", rounds=4)
    b = "$2y$" + hash_password("password-b", rounds=4)[4:]
    text = f"# users\r\n\r\nalice:{a}\r\n  bob:{b}  \n"
    assert parse_htpasswd(text) == [("alice", a), ("bob", b)]
    assert parse_htpasswd("") == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bob:$apr1$Mzr8vxLv$JY7d/I4MjWVaYKbndP91J.", "line 2: the hash of user 'bob' is not bcrypt"),
        ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "line 2: the hash of user 'bob' is not bcrypt"),
        ("bob", "line 2: expected 'name:hash'"),
        (":$2y$05$P78/LT3LoKZHyLlJfP6q8elFGEOS.T2Zobi/kWLJvfr9qCpGg5b3.", "line 2: expected 'name:hash'"),
        ("alice:$2y$05$P78/LT3LoKZHyLlJfP6q8elFGEOS.T2Zobi/kWLJvfr9qCpGg5b3.", "line 2: user 'alice' appears more"),
    ],
)
def test_parse_htpasswd_names_the_bad_line(line: str, message: str) -> None:
    text = f"alice:{hash_password('password-a', rounds=4)}\n{line}\n"
    with pytest.raises(HtpasswdError) as raised:
        parse_htpasswd(text)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_token_secrets_are_random_and_carry_their_public_id() -> None:
    token_id, secret = new_token_secret()
    other_id, other = new_token_secret()
    assert token_id != other_id
    assert secret != other
    assert secret.startswith(f"dyp_{token_id}_")
    assert len(secret) == len("dyp_") + 16 + 1 + 43
    assert parse_token_secret(secret) == token_id


@pytest.mark.parametrize(
    "secret", ["", "password", "dyp_", "dyp_0123456789abcdef_short", "dyp_XYZ3456789abcdef_" + "a" * 43]
)
def test_other_strings_are_not_token_shaped(secret: str) -> None:
    assert parse_token_secret(secret) is None


def test_token_digest_is_sha256_and_compared_exactly() -> None:
    _token_id, secret = new_token_secret()
    digest = token_digest(secret)
    assert len(digest) == 64
    assert secret not in digest
    assert token_matches(secret, digest)
    assert not token_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), digest)

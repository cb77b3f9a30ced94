"""The signing key file and key rotation (auth/keys.py)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from auth.keys import KeyFileError, KeyRing, SigningKey, generate, load_or_create


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc7638_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 section 3 for an EC key, written out independently of auth.keys: the required members crv, kty,
    x, y in lexicographic order, no whitespace, SHA-256, base64url without padding."""
    numbers = public_key.public_numbers()
    x = b64url(numbers.x.to_bytes(32, "big"))
    y = b64url(numbers.y.to_bytes(32, "big"))
    canonical = '{"crv":"P-256","kty":"EC","x":"' + x + '","y":"' + y + '"}'
    return b64url(hashlib.sha256(canonical.encode()).digest())


def self_signed(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )


def pem_of(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, certificate: x509.Certificate) -> bytes:
    key = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key + certificate.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def assert_one_line_key_error(path: Path, *fragments: str) -> None:
    with pytest.raises(KeyFileError) as info:
        load_or_create(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_creates_key_file_0600_in_private_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "token.pem"
    key = load_or_create(path)
    assert mode_of(path) == 0o600
    assert mode_of(tmp_path / "a") == 0o700
    assert mode_of(tmp_path / "a" / "b") == 0o700
    assert path.read_bytes().count(b"-----BEGIN PRIVATE KEY-----") == 1
    assert path.read_bytes().count(b"-----BEGIN CERTIFICATE-----") == 1
    assert [entry.name for entry in path.parent.iterdir()] == ["token.pem"]
    assert isinstance(key.private_key.curve, ec.SECP256R1)


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    load_or_create(directory / "token.pem")
    assert mode_of(directory) == 0o755


def test_reload_gives_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    first = load_or_create(path)
    second = load_or_create(path)
    assert second.kid == first.kid
    assert second.x5c == first.x5c
    assert second.certificate_pem() == first.certificate_pem()
    assert generate().kid != first.kid


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token.pem"
    with ThreadPoolExecutor(max_workers=8) as pool:
        kids = set(pool.map(lambda _: load_or_create(path).kid, range(16)))
    assert len(kids) == 1
    assert [entry.name for entry in path.parent.iterdir()] == ["token.pem"]


def test_kid_is_the_rfc7638_thumbprint(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "token.pem")
    assert key.kid == rfc7638_thumbprint(key.private_key.public_key())
    assert "=" not in key.kid
    assert len(key.kid) == 43


def test_kid_of_a_known_key() -> None:
    # Private scalar 1: the public key is the P-256 base point, whose coordinates are fixed by SEC 2.
    private_key = ec.derive_private_key(1, ec.SECP256R1())
    key = SigningKey(private_key, self_signed(private_key))
    x = bytes.fromhex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
    y = bytes.fromhex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
    assert key.public_jwk() == {"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}
    canonical = b'{"crv":"P-256","kty":"EC","x":"' + b64url(x).encode() + b'","y":"' + b64url(y).encode() + b'"}'
    assert key.kid == b64url(hashlib.sha256(canonical).digest())


def test_x5c_and_certificate_describe_the_key(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "token.pem")
    (leaf,) = key.x5c
    certificate = x509.load_der_x509_certificate(base64.b64decode(leaf, validate=True))
    assert certificate == key.certificate
    assert x509.load_pem_x509_certificate(key.certificate_pem()) == key.certificate
    assert certificate.subject == certificate.issuer
    certificate.verify_directly_issued_by(certificate)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert certificate.public_key().public_bytes(serialization.Encoding.DER, spki) == (
        key.private_key.public_key().public_bytes(serialization.Encoding.DER, spki)
    )
    now = datetime.datetime.now(datetime.UTC)
    assert certificate.not_valid_before_utc < now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - now > datetime.timedelta(days=365)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o700 | 0o004])
def test_loose_permissions_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token.pem"
    load_or_create(path)
    path.chmod(mode)
    assert_one_line_key_error(path, "too open", "chmod 600", f"{mode:04o}")


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    kid = load_or_create(path).kid
    path.chmod(0o400)
    assert load_or_create(path).kid == kid


def corrupt_contents() -> list[tuple[str, bytes]]:
    real = generate().to_pem()
    key_part, cert_part = real.split(b"-----BEGIN CERTIFICATE-----")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ("empty", b""),
        ("garbage", os.urandom(300)),
        ("truncated", real[: len(real) // 2]),
        ("key only", key_part),
        ("certificate only", b"-----BEGIN CERTIFICATE-----" + cert_part),
        ("two keys", key_part + key_part + b"-----BEGIN CERTIFICATE-----" + cert_part),
        ("bad base64", real.replace(b"MI", b"!!", 1)),
        ("certificate of another key", pem_of(ec_key, self_signed(ec.generate_private_key(ec.SECP256R1())))),
        ("P-384 key", pem_of(p384, self_signed(p384))),
        ("RSA key", pem_of(rsa_key, self_signed(rsa_key))),
    ]


CORRUPT = corrupt_contents()


@pytest.mark.parametrize(("label", "content"), CORRUPT, ids=[label for label, _ in CORRUPT])
def test_corrupt_key_file_is_one_line_error(tmp_path: Path, label: str, content: bytes) -> None:
    path = write_private(tmp_path / "token.pem", content)
    assert_one_line_key_error(path)
    assert path.read_bytes() == content, f"{label}: a corrupt key file must never be overwritten"


def test_directory_in_place_of_key_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    path.mkdir(mode=0o700)
    assert_one_line_key_error(path)


def test_key_ring_starts_with_only_the_current_key(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path / "token.pem", overlap=600)
    assert ring.current.kid == load_or_create(tmp_path / "token.pem").kid
    assert [key.kid for key in ring.verification_keys(now=1e12)] == [ring.current.kid]


def test_rotation_keeps_the_old_key_during_the_overlap(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token.pem"
    ring = KeyRing.load(path, overlap=600)
    old = ring.current
    rotated = ring.rotate(now=1_000_000)
    assert rotated.current.kid != old.kid
    assert load_or_create(path).kid == rotated.current.kid

    def kids(now: float) -> list[str]:
        return [key.kid for key in rotated.verification_keys(now)]

    assert kids(1_000_000) == [rotated.current.kid, old.kid]
    assert kids(1_000_599.9) == [rotated.current.kid, old.kid]
    assert kids(1_000_600) == [rotated.current.kid]
    assert kids(2_000_000) == [rotated.current.kid]


def test_rotation_is_persistent(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    first = KeyRing.load(path, overlap=600)
    second = first.rotate(now=1_000_000)
    third = second.rotate(now=1_000_300)
    retired_dir = tmp_path / "token.pem.retired"
    assert mode_of(retired_dir) == 0o700
    assert sorted(entry.name for entry in retired_dir.iterdir()) == [
        f"1000000-{first.current.kid}.pem",
        f"1000300-{second.current.kid}.pem",
    ]
    assert all(mode_of(entry) == 0o600 for entry in retired_dir.iterdir())
    reloaded = KeyRing.load(path, overlap=600)
    assert reloaded.current.kid == third.current.kid

    def at(now: float) -> list[str]:
        return [key.kid for key in reloaded.verification_keys(now)]

    assert at(1_000_550) == [third.current.kid, first.current.kid, second.current.kid]
    assert at(1_000_650) == [third.current.kid, second.current.kid]
    assert at(1_000_900) == [third.current.kid]


def test_loose_retired_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    KeyRing.load(path, overlap=600).rotate(now=1_000_000)
    (retired,) = (tmp_path / "token.pem.retired").iterdir()
    retired.chmod(0o644)
    with pytest.raises(KeyFileError, match="too open"):
        KeyRing.load(path, overlap=600)


def test_unrelated_files_beside_retired_keys_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "token.pem"
    KeyRing.load(path, overlap=600).rotate(now=1_000_000)
    (tmp_path / "token.pem.retired" / "README").write_text("retired signing keys\n")
    assert len(KeyRing.load(path, overlap=600).retired) == 1

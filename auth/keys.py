"""The token signing key: an EC P-256 key with a self-signed certificate, kept in one PEM file, and its rotation.

The key file holds a PKCS#8 private key and the X.509 certificate for it (what a CNCF Distribution configured with
dockyard as its token realm takes as ``rootcertbundle``). It is created on first use with mode 0600 (its directory
0700); a file that group or others may access is refused, as ssh refuses a loose private key.

Rotation keeps the old keys beside the key file, so tokens they signed stay valid for an overlap::

    <path>                                  the current key and certificate
    <path>.retired/<retired_at>-<kid>.pem   a retired key; retired_at is whole seconds since the epoch
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["KeyFileError", "KeyRing", "RetiredKey", "SigningKey", "generate", "load_or_create"]

CERTIFICATE_LIFETIME = datetime.timedelta(days=3650)
# The certificate is back-dated a little, so a verifier whose clock is behind still finds it valid.
CERTIFICATE_BACKDATE = datetime.timedelta(hours=1)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_RETIRED_NAME = re.compile(r"(\d+)-([A-Za-z0-9_-]+)\.pem")


class KeyFileError(Exception):
    """A key file that cannot be used (loose permissions, corrupt, wrong key type); the message is one line."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SigningKey:
    """An EC P-256 private key and a certificate for its public key.

    ``kid`` is the RFC 7638 JWK thumbprint of the public key (base64url, no padding); ``x5c`` is the certificate
    chain as standard base64 of DER, leaf first (here the single self-signed certificate).
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        """Raise KeyFileError unless the key is on P-256 and ``certificate`` certifies its public key."""
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise KeyFileError(f"signing key is on curve {private_key.curve.name}, expected P-256")
        if _spki(certificate.public_key()) != _spki(private_key.public_key()):
            raise KeyFileError("certificate does not match the signing key")
        self.private_key = private_key
        self.certificate = certificate
        self.kid = _b64url(hashlib.sha256(_thumbprint_input(self.public_jwk())).digest())
        self.x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half, for verifying signatures."""
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517/7518): ``kty``, ``crv``, ``x``, ``y`` (32 bytes each, base64url)."""
        numbers = self.public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }

    def certificate_pem(self) -> bytes:
        """The certificate in PEM, e.g. for a Distribution ``rootcertbundle``."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def to_pem(self) -> bytes:
        """The key file's content: the PKCS#8 private key (unencrypted) followed by the certificate."""
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate_pem()

    @classmethod
    def from_pem(cls, data: bytes, source: str) -> SigningKey:
        """Parse a key file's content; raise KeyFileError naming ``source`` when it is not one P-256 key plus
        its certificate."""
        found = _pem_blocks(data)
        blocks = dict(found)
        if len(found) != 2 or set(blocks) != {b"PRIVATE KEY", b"CERTIFICATE"}:
            raise KeyFileError(f"{source}: expected one PRIVATE KEY and one CERTIFICATE PEM block")
        try:
            private_key = serialization.load_pem_private_key(blocks[b"PRIVATE KEY"], password=None)
            certificate = x509.load_pem_x509_certificate(blocks[b"CERTIFICATE"])
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"{source}: unreadable key or certificate ({_first_line(exc)})") from None
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise KeyFileError(f"{source}: the private key is not an EC key")
        try:
            return cls(private_key, certificate)
        except KeyFileError as exc:
            raise KeyFileError(f"{source}: {exc}") from None


def generate(common_name: str = "dockyard token signer") -> SigningKey:
    """A new P-256 key with a self-signed certificate valid for ten years (back-dated one hour)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERTIFICATE_BACKDATE)
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_signing_key_usage(), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return SigningKey(private_key, certificate)


def load_or_create(path: Path) -> SigningKey:
    """The signing key stored at ``path``, created there (mode 0600, missing directories 0700) if absent.

    Several processes starting at once agree on one key: the file appears atomically, and a process that loses
    the race reads the winner's. Raises KeyFileError when the file is accessible by group or others, is not a
    regular file, or does not hold a P-256 key with its certificate.
    """
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = generate()
    if not _publish(path, key.to_pem(), replace=False):
        return _load(path)
    return key


def _load(path: Path) -> SigningKey:
    """Read and check an existing key file; FileNotFoundError when there is none."""
    try:
        data = _read_private(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    return SigningKey.from_pem(data, str(path))


def _read_private(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file that neither group nor others may access."""
    with open(path, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"{path}: not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: permissions {stat.S_IMODE(mode):04o} are too open; "
                f"a private key must be readable by its owner only (chmod 600 {path})"
            )
        return fh.read()


def _publish(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to ``path`` with mode 0600 so that readers only ever see a complete file.

    With ``replace`` the file is replaced; without it, an existing file wins and False is returned.
    """
    _make_private_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (a key that vanishes after a crash would invalidate every token)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RetiredKey:
    """A former signing key, still accepted for verification until ``retired_at`` plus the ring's overlap."""

    key: SigningKey
    retired_at: float


class KeyRing:
    """The current signing key plus retired ones whose tokens are still accepted during ``overlap`` seconds."""

    def __init__(self, path: Path, current: SigningKey, retired: list[RetiredKey], overlap: float) -> None:
        self.path = path
        self.current = current
        self.retired = retired
        self.overlap = overlap

    @classmethod
    def load(cls, path: Path, overlap: float) -> KeyRing:
        """The ring stored at ``path`` (the current key is created if absent) and ``<path>.retired/``.

        Raises KeyFileError for a loose or corrupt key file, retired ones included.
        """
        current = load_or_create(path)
        return cls(path, current, _load_retired(_retired_dir(path)), overlap)

    def verification_keys(self, now: float) -> list[SigningKey]:
        """The keys whose signatures are accepted at ``now``: the current one first, then each retired key
        whose retirement lies less than ``overlap`` seconds before ``now``."""
        alive = [item.key for item in self.retired if item.retired_at + self.overlap > now]
        return [self.current, *alive]

    def rotate(self, now: float | None = None) -> KeyRing:
        """Retire the current key at ``now`` (default: the current time), make a new current key, return the new
        ring. The old key is saved among the retired ones before the new one replaces it, so a crash in between
        leaves at worst the old key both current and retired."""
        retired_at = time.time() if now is None else now
        retired = RetiredKey(self.current, float(int(retired_at)))
        name = f"{int(retired_at)}-{self.current.kid}.pem"
        _publish(_retired_dir(self.path) / name, self.current.to_pem(), replace=True)
        new = generate()
        _publish(self.path, new.to_pem(), replace=True)
        return KeyRing(self.path, new, [*self.retired, retired], self.overlap)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700 (``Path.mkdir`` gives parents the umask's
    default); existing directories are left as they are."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for entry in reversed(missing):
        with contextlib.suppress(FileExistsError):
            entry.mkdir(mode=0o700)


def _retired_dir(path: Path) -> Path:
    return path.with_name(path.name + ".retired")


def _load_retired(directory: Path) -> list[RetiredKey]:
    """Every retired key in ``directory`` (none if it does not exist), oldest first; other files are ignored."""
    if not directory.is_dir():
        return []
    found: list[RetiredKey] = []
    for entry in sorted(directory.iterdir()):
        match = _RETIRED_NAME.fullmatch(entry.name)
        if match is None:
            continue
        found.append(RetiredKey(_load(entry), float(match.group(1))))
    return sorted(found, key=lambda item: item.retired_at)


def _spki(public_key: object) -> bytes:
    """The DER SubjectPublicKeyInfo of an EC public key (b"" for any other kind, which then matches nothing)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (label, block) pairs of the PEM blocks in ``data``."""
    return [(match.group(1), match.group(0)) for match in _PEM_BLOCK.finditer(data)]


def _signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _thumbprint_input(jwk: dict[str, str]) -> bytes:
    """RFC 7638: the required members of an EC JWK, sorted, as JSON without whitespace."""
    required = {member: jwk[member] for member in ("crv", "kty", "x", "y")}
    return json.dumps(required, sort_keys=True, separators=(",", ":")).encode("ascii")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

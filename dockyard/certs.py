"""``dockyard certs selfsigned``: a self-signed TLS certificate and key for a quick HTTPS start.

The certificate is an ECDSA P-256 key with the names given (``--host``, repeatable; IP addresses become IP
subject alternative names), valid for ``--days``, usable as its own CA (so clients can trust it directly:
docker's ``/etc/docker/certs.d/HOST:PORT/ca.crt``, podman's ``/etc/containers/certs.d``). The key file is
created 0600. Existing files are not overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import click

from dockyard.cli import cli


def _general_name(host: str) -> object:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def self_signed(hosts: list[str], days: int, *, client: bool = False) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a new self-signed certificate for ``hosts`` (at least one): a server
    certificate, or with ``client`` a client certificate (extended key usage clientAuth, as a registry's
    ``certs.d`` folder holds one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])])
    now = datetime.datetime.now(datetime.UTC)
    names = [_general_name(h) for h in hosts]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise click.ClickException(f"{path} exists (use --force to replace it)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


@cli.group()
def certs() -> None:
    """TLS certificates for serving HTTPS."""


@certs.command("selfsigned")
@click.option("--host", "hosts", multiple=True, required=True, help="DNS name or IP address (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Directory.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing cert.pem/key.pem.")
def certs_selfsigned(hosts: tuple[str, ...], out: Path, days: int, force: bool) -> None:
    """Write OUT/cert.pem and OUT/key.pem (0600), then print the config lines that use them."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create {out}: {exc.strerror}") from None
    cert_pem, key_pem = self_signed(list(hosts), days)
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    _write(key_path, key_pem, 0o600, force)
    _write(cert_path, cert_pem, 0o644, force)
    click.echo(f"wrote {cert_path} and {key_path} for {', '.join(hosts)} (valid {days} days)")
    click.echo(f"config:\n  tls:\n    cert: {cert_path.resolve()}\n    key: {key_path.resolve()}")

"""Per-registry TLS trust where docker and podman keep it: a folder named after the registry (``HOST`` or
``HOST:PORT``, as in image references) under ``/etc/docker/certs.d`` or ``/etc/containers/certs.d``.

In that folder, as docker reads it: every ``*.crt`` is a CA certificate trusted for that registry (besides the
system's trust store), and ``NAME.cert`` with ``NAME.key`` is a client certificate presented to it. So a registry
whose certificate ``dockyard certs selfsigned`` made is trusted once its ``cert.pem`` is copied to
``/etc/docker/certs.d/HOST:PORT/ca.crt``, for docker, podman and dockyard alike.

The first of the folders that exists wins. A ``.cert`` without its ``.key`` (or the reverse) is a
:class:`~runtime.manifests.DistributionError` naming both files, as docker refuses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runtime.httpclient import TlsTrust
from runtime.manifests import DistributionError

CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))


def trust_for(host: str, verify: bool, dirs: Sequence[Path] = CERTS_DIRS) -> TlsTrust:
    """How to check ``host``'s TLS: the folder of ``host`` in the first of ``dirs`` that has one, if any (its CA
    certificates count only with ``verify``; a client certificate is presented either way)."""
    folder = next((base / host for base in dirs if (base / host).is_dir()), None)
    if folder is None:
        return TlsTrust(verify=verify)
    ca_files = tuple(sorted(folder.glob("*.crt"))) if verify else ()
    return TlsTrust(verify=verify, ca_files=ca_files, client_cert=_client_pair(folder))


def _client_pair(folder: Path) -> tuple[Path, Path] | None:
    """The (certificate, key) pair of ``folder``: the first ``NAME.cert`` by name, with its ``NAME.key``."""
    certs = sorted(folder.glob("*.cert"))
    for key in sorted(folder.glob("*.key")):
        if not key.with_suffix(".cert").is_file():
            raise DistributionError(f"{folder}: client key {key.name} has no certificate {key.stem}.cert")
    for cert in certs:
        if not cert.with_suffix(".key").is_file():
            raise DistributionError(f"{folder}: client certificate {cert.name} has no key {cert.stem}.key")
    return (certs[0], certs[0].with_suffix(".key")) if certs else None

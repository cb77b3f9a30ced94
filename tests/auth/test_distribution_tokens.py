"""A real CNCF Distribution 2.8 (Debian's ``docker-registry``) accepts dockyard's tokens, and only those.

Distribution is configured with dockyard's certificate as its ``rootcertbundle``: it finds the signing key through the
token's ``x5c`` chain, checks ``iss``, ``aud`` (its ``service``), ``exp``/``nbf`` (with 60 s of leeway) and the
``access`` claim against what each request needs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from auth.keys import KeyRing
from auth.scopes import ResourceAccess
from auth.tokens import TokenIssuer
from tests.support.registries import distribution_registry

pytestmark = pytest.mark.interop

REALM = "http://127.0.0.1:1/auth/token"
SERVICE = "dockyard-test-registry"
ISSUER = "dockyard-test-issuer"
REPO = "t/app"


def repository(name: str, *actions: str) -> list[ResourceAccess]:
    return [ResourceAccess("repository", name, actions)]


@dataclass
class Distribution:
    """A running ``docker-registry`` and the dockyard issuer whose certificate it trusts."""

    url: str
    log: Path
    issuer: TokenIssuer

    def request(self, method: str, path: str, token: str | None = None, body: bytes | None = None) -> requests.Response:
        """``method path`` with ``token`` as bearer token (none when None) and ``body`` as octet-stream."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        return requests.request(method, self.url + path, headers=headers, data=body, timeout=10)

    def token(self, access: list[ResourceAccess]) -> str:
        return self.issuer.issue("alice", SERVICE, access).token

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    workdir = tmp_path_factory.mktemp("distribution")
    ring = KeyRing.load(workdir / "keys" / "token.pem", overlap=600)
    bundle = workdir / "bundle.pem"
    bundle.write_bytes(ring.current.certificate_pem())
    auth = (
        "auth:\n  token:\n"
        f"    realm: {REALM}\n"
        f"    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n"
        f"    rootcertbundle: {bundle}\n"
    )
    with distribution_registry(workdir, auth=auth) as registry:
        yield Distribution(f"http://{registry.host}", registry.log, TokenIssuer(ring, issuer=ISSUER))


def upload_blob(registry: Distribution, name: str, token: str, body: bytes) -> requests.Response:
    """A monolithic upload: ``POST ?digest=`` with the bytes. Distribution 2.8 does not finish an upload in the
    POST (the spec lets a registry answer 202 instead of 201); the same bytes then go in one ``PUT ?digest=``."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    started = registry.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", token, body)
    if started.status_code != 202:
        return started
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    path = location.removeprefix(registry.url) + f"{separator}digest={digest}"
    return registry.request("PUT", path, token, body)


def test_without_token_the_registry_challenges_with_our_realm(distribution: Distribution) -> None:
    response = distribution.request("GET", "/v2/")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{REALM}"')
    assert f'service="{SERVICE}"' in challenge


def test_dockyard_token_pushes_and_pulls_a_blob(distribution: Distribution) -> None:
    token = distribution.token(repository(REPO, "pull", "push"))
    assert distribution.request("GET", "/v2/", token).status_code == 200, distribution.log_tail()
    body = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    uploaded = upload_blob(distribution, REPO, token, body)
    assert uploaded.status_code == 201, f"{uploaded.status_code} {uploaded.text}\n{distribution.log_tail()}"
    assert uploaded.headers["Docker-Content-Digest"] == digest
    fetched = distribution.request("GET", f"/v2/{REPO}/blobs/{digest}", token)
    assert fetched.status_code == 200
    assert fetched.content == body


def test_token_for_another_repository_is_refused(distribution: Distribution) -> None:
    owner = distribution.token(repository(REPO, "pull", "push"))
    body = os.urandom(512)
    assert upload_blob(distribution, REPO, owner, body).status_code == 201
    digest = "sha256:" + hashlib.sha256(body).hexdigest()

    other = distribution.token(repository("t/other", "pull", "push"))
    assert distribution.request("GET", f"/v2/{REPO}/blobs/{digest}", other).status_code in (401, 403)
    refused = distribution.request("POST", f"/v2/{REPO}/blobs/uploads/", other)
    assert refused.status_code in (401, 403)
    assert 'error="insufficient_scope"' in refused.headers.get("WWW-Authenticate", "")


def test_pull_token_cannot_push(distribution: Distribution) -> None:
    token = distribution.token(repository(REPO, "pull"))
    assert upload_blob(distribution, REPO, token, b"pull only").status_code in (401, 403)


def test_token_signed_by_another_dockyard_key_is_refused(distribution: Distribution, tmp_path: Path) -> None:
    stranger = TokenIssuer(KeyRing.load(tmp_path / "other.pem", overlap=600), issuer=ISSUER)
    token = stranger.issue("alice", SERVICE, repository(REPO, "pull", "push")).token
    assert distribution.request("GET", "/v2/", token).status_code == 401
    assert upload_blob(distribution, REPO, token, b"stranger").status_code == 401


def test_expired_token_is_refused(distribution: Distribution) -> None:
    # Distribution allows 60 s of clock skew: this token expired well before that.
    past = time.time() - 3600
    issuer = TokenIssuer(distribution.issuer.keys, issuer=ISSUER, clock=lambda: past)
    token = issuer.issue("alice", SERVICE, repository(REPO, "pull", "push")).token
    assert distribution.request("GET", "/v2/", token).status_code == 401
    assert upload_blob(distribution, REPO, token, b"expired").status_code == 401


def test_token_for_another_service_or_issuer_is_refused(distribution: Distribution) -> None:
    keys = distribution.issuer.keys
    access = repository(REPO, "pull", "push")
    wrong_audience = distribution.issuer.issue("alice", "another-service", access).token
    wrong_issuer = TokenIssuer(keys, issuer="another-issuer").issue("alice", SERVICE, access).token
    for token in (wrong_audience, wrong_issuer):
        assert distribution.request("GET", "/v2/", token).status_code == 401


def test_refresh_token_is_not_accepted_as_a_registry_token(distribution: Distribution) -> None:
    refresh = distribution.issuer.issue_refresh("alice", SERVICE)
    assert distribution.request("GET", "/v2/", refresh).status_code == 401

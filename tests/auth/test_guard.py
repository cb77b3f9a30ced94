"""Token mode through the HTTP API: challenges, the token service, who may pull and push, and the attacks
that must all fail. Real clients against a live server are in tests/interop/test_auth_clients.py."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from auth.guard import GUARD, Guard
from auth.keys import load_or_create
from auth.scopes import ResourceAccess
from auth.tokens import TokenIssuer
from registry.app import create_app
from registry.config import AuthSettings, MemoryStorage, Settings
from tests.registry.conftest import Client, ClientFactory
from tests.support.oci import OCI_MANIFEST, digest, image_manifest

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "root": "root-secret-333"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Registry:
    client: Client
    guard: Guard
    state: Path

    async def token(self, *scopes: str, user: str | None = None, password: str | None = None) -> str:
        headers = basic(user, password or PASSWORDS[user]) if user else {}
        query = [("service", "dockyard"), *[("scope", s) for s in scopes]]
        resp = await self.client.get("/auth/token", params=query, headers=headers)
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])

    async def push(self, name: str, tag: str, token: str, layer: bytes = b"layer") -> int:
        """Push a one-layer image with ``token``; the status of the first refused request, or 201."""
        config = json.dumps({"tag": tag, "name": name}).encode()
        for blob in (config, layer):
            resp = await self.client.post(
                f"/v2/{name}/blobs/uploads/?digest={digest(blob)}", data=blob, headers=bearer(token)
            )
            if resp.status != 201:
                return resp.status
        body = json.dumps(image_manifest(config, [layer])).encode()
        resp = await self.client.put(
            f"/v2/{name}/manifests/{tag}", data=body, headers={**bearer(token), "Content-Type": OCI_MANIFEST}
        )
        return resp.status

    async def pull_status(self, name: str, tag: str, token: str | None) -> int:
        headers = {"Accept": OCI_MANIFEST, **(bearer(token) if token else {})}
        return (await self.client.get(f"/v2/{name}/manifests/{tag}", headers=headers)).status


@pytest.fixture
async def registry(aiohttp_client: ClientFactory, tmp_path: Path) -> Registry:
    auth = AuthSettings(mode="token", state_dir=tmp_path / "state", bcrypt_rounds=4, login_failures=4)
    settings = Settings(storage=MemoryStorage(), auth=auth)
    client = await aiohttp_client(create_app(settings))
    guard: Guard = client.server.app[GUARD]  # type: ignore[union-attr]
    for name, password in PASSWORDS.items():
        await guard.accounts.add_user(name, password, admin=name == "root", actor="test")
    await guard.accounts.add_org("acme", actor="test")
    await guard.accounts.set_member("acme", "bob", "write", actor="test")
    return Registry(client, guard, tmp_path / "state")


async def error_of(resp: Any) -> str:
    return str((await resp.json())["errors"][0]["code"])


async def test_challenge_names_realm_service_and_scope(registry: Registry) -> None:
    resp = await registry.client.get("/v2/")
    assert resp.status == 401
    realm = registry.client.make_url("/auth/token")  # the URL the client used, no auth.public_url configured
    assert resp.headers["WWW-Authenticate"] == f'Bearer realm="{realm}",service="dockyard"'
    resp = await registry.client.get("/v2/alice/app/manifests/v1")
    assert resp.status == 401
    assert 'scope="repository:alice/app:pull"' in resp.headers["WWW-Authenticate"]
    resp = await registry.client.post("/v2/alice/app/blobs/uploads/")
    assert 'scope="repository:alice/app:pull,push"' in resp.headers["WWW-Authenticate"]
    resp = await registry.client.delete(f"/v2/alice/app/manifests/{digest(b'x')}")
    assert 'scope="repository:alice/app:delete"' in resp.headers["WWW-Authenticate"]
    resp = await registry.client.get("/v2/_catalog")
    assert 'scope="registry:catalog:*"' in resp.headers["WWW-Authenticate"]
    assert (await registry.client.get("/healthz")).status == 200


async def test_token_response_shape_and_claims(registry: Registry) -> None:
    resp = await registry.client.get(
        "/auth/token",
        params={"service": "dockyard", "scope": "repository:alice/app:pull,push", "offline_token": "true"},
        headers=basic("alice", PASSWORDS["alice"]),
    )
    body = await resp.json()
    assert resp.status == 200
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" in body
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["aud"] == "dockyard"
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256"
    assert header["x5c"]


async def test_grants_are_the_intersection(registry: Registry) -> None:
    token = await registry.token("repository:bob/app:pull,push,delete", "repository:alice/x:push,delete", user="alice")
    claims = jwt.decode(token, options={"verify_signature": False})
    # bob/app does not exist (so it is private to bob); alice owns alice/
    assert claims["access"] == [{"type": "repository", "name": "alice/x", "actions": ["push", "delete"]}]
    anonymous = await registry.token("repository:alice/x:pull,push")
    assert jwt.decode(anonymous, options={"verify_signature": False})["access"] == []


async def test_push_to_own_namespace_and_org_pull_by_anyone(registry: Registry) -> None:
    alice = await registry.token("repository:alice/app:pull,push", user="alice")
    assert await registry.push("alice/app", "v1", alice) == 201
    bob = await registry.token("repository:acme/tool:pull,push", user="bob")
    assert await registry.push("acme/tool", "v1", bob) == 201
    anonymous = await registry.token("repository:alice/app:pull")
    assert await registry.pull_status("alice/app", "v1", anonymous) == 200  # public by default
    repo = await registry.guard.accounts.repository("alice/app")
    assert repo is not None
    assert repo.visibility == "public"


async def test_push_to_someone_elses_namespace_is_denied(registry: Registry) -> None:
    bob = await registry.token("repository:alice/app:pull,push", user="bob")
    resp = await registry.client.post("/v2/alice/app/blobs/uploads/", headers=bearer(bob))
    assert resp.status == 403
    assert await error_of(resp) == "DENIED"
    top = await registry.token("repository:busybox:pull,push", user="alice")
    assert await registry.push("busybox", "latest", top) == 403  # top level: site admins only
    admin = await registry.token("repository:busybox:pull,push", user="root")
    assert await registry.push("busybox", "latest", admin) == 201
    read_member = await registry.guard.accounts.add_user("carol", "carol-secret-1", actor="test")
    await registry.guard.accounts.set_member("acme", read_member.name, "read", actor="test")
    carol = await registry.token("repository:acme/tool:pull,push", user="carol", password="carol-secret-1")
    assert await registry.push("acme/tool", "v2", carol) == 403


async def test_private_repository_is_invisible_to_outsiders(registry: Registry) -> None:
    alice = await registry.token("repository:alice/secret:pull,push", user="alice")
    assert await registry.push("alice/secret", "v1", alice) == 201
    assert (
        await registry.push("alice/open", "v1", await registry.token("repository:alice/open:pull,push", user="alice"))
        == 201
    )
    await registry.guard.accounts.set_visibility("alice/secret", "private", actor="test")
    for who in (None, "bob"):
        token = await registry.token("repository:alice/secret:pull", "registry:catalog:*", user=who)
        resp = await registry.client.get("/v2/alice/secret/manifests/v1", headers=bearer(token))
        assert resp.status == 401  # as Docker Hub answers outsiders: no hint that it exists
        assert await error_of(resp) == "UNAUTHORIZED"
        assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
        tags = await registry.client.get("/v2/alice/secret/tags/list", headers=bearer(token))
        assert tags.status == 401
        catalog = await (await registry.client.get("/v2/_catalog", headers=bearer(token))).json()
        assert catalog["repositories"] == ["alice/open"]
    token = await registry.token("repository:alice/secret:pull", "registry:catalog:*", user="alice")
    assert await registry.pull_status("alice/secret", "v1", token) == 200
    catalog = await (await registry.client.get("/v2/_catalog", headers=bearer(token))).json()
    assert catalog["repositories"] == ["alice/open", "alice/secret"]


async def test_delete_needs_the_namespace_admin(registry: Registry) -> None:
    bob = await registry.token("repository:acme/tool:pull,push,delete", user="bob")
    assert await registry.push("acme/tool", "v1", bob) == 201
    resp = await registry.client.delete("/v2/acme/tool/manifests/v1", headers=bearer(bob))
    assert resp.status == 403
    root = await registry.token("repository:acme/tool:delete", user="root")
    assert (await registry.client.delete("/v2/acme/tool/manifests/v1", headers=bearer(root))).status == 202


async def test_cross_mount_needs_pull_on_the_source(registry: Registry) -> None:
    alice = await registry.token("repository:alice/secret:pull,push", user="alice")
    assert await registry.push("alice/secret", "v1", alice, layer=b"alice's private layer") == 201
    await registry.guard.accounts.set_visibility("alice/secret", "private", actor="test")
    bob = await registry.token("repository:bob/copy:pull,push", "repository:alice/secret:pull", user="bob")
    layer = digest(b"alice's private layer")
    resp = await registry.client.post(
        f"/v2/bob/copy/blobs/uploads/?mount={layer}&from=alice/secret", headers=bearer(bob)
    )
    assert resp.status == 202  # not mounted: an upload session instead
    resp = await registry.client.post(f"/v2/bob/copy/blobs/uploads/?mount={layer}", headers=bearer(bob))
    assert resp.status == 202  # no automatic mount from anywhere in token mode
    own = await registry.token("repository:alice/other:pull,push", "repository:alice/secret:pull", user="alice")
    resp = await registry.client.post(
        f"/v2/alice/other/blobs/uploads/?mount={layer}&from=alice/secret", headers=bearer(own)
    )
    assert resp.status == 201


async def test_personal_access_tokens_log_in_and_read_only_cannot_push(registry: Registry) -> None:
    _, secret = await registry.guard.accounts.create_token("alice", "ci", actor="test")
    _, read_only = await registry.guard.accounts.create_token("alice", "ro", read_only=True, actor="test")
    token = await registry.token("repository:alice/app:pull,push", user="alice", password=secret)
    assert await registry.push("alice/app", "v1", token) == 201
    limited = await registry.token("repository:alice/app:pull,push", user="alice", password=read_only)
    assert jwt.decode(limited, options={"verify_signature": False})["access"][0]["actions"] == ["pull"]
    assert await registry.push("alice/app", "v2", limited) == 403


async def test_oauth_password_and_refresh_grants(registry: Registry) -> None:
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORDS["alice"],
        "service": "dockyard",
        "client_id": "test",
        "access_type": "offline",
        "scope": "repository:alice/app:pull,push",
    }
    resp = await registry.client.post("/auth/token", data=form)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    refresh = body["refresh_token"]
    again = await registry.client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "dockyard",
            "scope": "repository:alice/app:pull",
        },
    )
    assert again.status == 200
    token = (await again.json())["access_token"]
    assert await registry.pull_status("alice/app", "v1", token) == 404  # allowed; nothing pushed yet
    assert (await registry.client.post("/auth/token", data={"grant_type": "client_credentials"})).status == 400
    wrong = await registry.client.post("/auth/token", data={**form, "password": "nope-nope"})
    assert wrong.status == 401
    await registry.guard.accounts.remove_user("alice", actor="test")
    dead = await registry.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh, "service": "dockyard"}
    )
    assert dead.status == 401


# -- attacks ----------------------------------------------------------------------------------------


async def test_no_token_garbage_and_alg_none(registry: Registry) -> None:
    assert (await registry.client.get("/v2/alice/app/tags/list")).status == 401
    garbage = await registry.client.get("/v2/alice/app/tags/list", headers=bearer("not.a.jwt"))
    assert garbage.status == 401
    assert 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]
    claims = {
        "iss": "dockyard",
        "sub": "alice",
        "aud": "dockyard",
        "exp": int(time.time()) + 300,
        "nbf": int(time.time()) - 5,
        "iat": int(time.time()),
        "jti": "x",
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}],
    }

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    resp = await registry.client.post("/v2/alice/app/blobs/uploads/", headers=bearer(unsigned))
    assert resp.status == 401


async def test_token_from_another_key_is_refused(registry: Registry, tmp_path: Path) -> None:
    from auth.keys import KeyRing

    other = TokenIssuer(KeyRing.load(tmp_path / "other" / "key.pem", 0), issuer="dockyard")
    forged = other.issue("alice", "dockyard", [ResourceAccess("repository", "alice/app", ("pull", "push"))]).token
    resp = await registry.client.post("/v2/alice/app/blobs/uploads/", headers=bearer(forged))
    assert resp.status == 401
    assert load_or_create(tmp_path / "other" / "key.pem").kid != registry.guard.issuer.keys.current.kid


async def test_expired_token_is_refused(registry: Registry) -> None:
    an_hour_ago = TokenIssuer(registry.guard.issuer.keys, issuer="dockyard", clock=lambda: time.time() - 3600)
    token = an_hour_ago.issue("alice", "dockyard", [ResourceAccess("repository", "alice/app", ("pull",))]).token
    assert (await registry.client.get("/v2/alice/app/tags/list", headers=bearer(token))).status == 401


async def test_token_for_one_repository_does_not_open_another(registry: Registry) -> None:
    token = await registry.token("repository:alice/a:pull,push", user="alice")
    assert await registry.push("alice/a", "v1", token) == 201
    resp = await registry.client.post("/v2/alice/b/blobs/uploads/", headers=bearer(token))
    assert resp.status in (401, 403)
    pull_only = await registry.token("repository:alice/a:pull", user="alice")
    assert await registry.push("alice/a", "v2", pull_only) == 403


async def test_tampered_access_claim_is_refused(registry: Registry) -> None:
    token = await registry.token("repository:alice/app:pull", user="bob")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["access"] = [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    resp = await registry.client.post(
        "/v2/alice/app/blobs/uploads/", headers=bearer(f"{header}.{forged_payload}.{signature}")
    )
    assert resp.status == 401


async def test_replay_after_the_user_is_deleted(registry: Registry) -> None:
    token = await registry.token("repository:alice/app:pull,push", user="alice")
    assert await registry.push("alice/app", "v1", token) == 201
    await registry.guard.accounts.remove_user("alice", actor="test")
    resp = await registry.client.get("/v2/alice/app/manifests/v1", headers=bearer(token))
    assert resp.status == 401


async def test_brute_force_is_slowed_then_refused(registry: Registry) -> None:
    statuses = []
    started = time.monotonic()
    for attempt in range(6):
        resp = await registry.client.get(
            "/auth/token", params={"service": "dockyard"}, headers=basic("alice", f"guess-{attempt}")
        )
        statuses.append(resp.status)
    assert statuses[:4] == [401, 401, 401, 401]
    assert statuses[4:] == [429, 429]
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4  # growing delays before answering the failures
    resp = await registry.client.get(
        "/auth/token", params={"service": "dockyard"}, headers=basic("alice", PASSWORDS["alice"])
    )
    assert resp.status == 429  # even the right password: the account is locked for the window
    assert int(resp.headers["Retry-After"]) >= 1
    assert await error_of(resp) == "TOOMANYREQUESTS"


async def test_wrong_service_and_bad_scope(registry: Registry) -> None:
    resp = await registry.client.get("/auth/token", params={"service": "elsewhere"})
    assert resp.status == 403
    resp = await registry.client.get("/auth/token", params={"service": "dockyard", "scope": "nonsense"})
    assert resp.status == 400


# -- the account API -------------------------------------------------------------------------------


async def test_account_api(registry: Registry) -> None:
    client = registry.client
    root = basic("root", PASSWORDS["root"])
    resp = await client.post("/api/v1/users", json={"name": "dave", "password": "dave-secret-1"}, headers=root)
    assert resp.status == 201, await resp.text()
    resp = await client.post(
        "/api/v1/users", json={"name": "eve", "password": "eve-secret-1"}, headers=basic("alice", PASSWORDS["alice"])
    )
    assert resp.status == 403
    alice_token = await registry.token(user="alice")
    me = await (await client.get("/api/v1/me", headers=bearer(alice_token))).json()
    assert me["user"]["name"] == "alice"
    resp = await client.post("/api/v1/orgs", json={"name": "wonder"}, headers=bearer(alice_token))
    assert resp.status == 201
    resp = await client.put("/api/v1/orgs/wonder/members/dave", json={"role": "write"}, headers=bearer(alice_token))
    assert resp.status == 200
    members = await (await client.get("/api/v1/orgs/wonder/members", headers=bearer(alice_token))).json()
    assert {(m["user"], m["role"]) for m in members} == {("alice", "admin"), ("dave", "write")}
    resp = await client.patch(
        "/api/v1/repositories/wonder/app", json={"visibility": "private"}, headers=bearer(alice_token)
    )
    assert resp.status == 200
    assert (await resp.json())["visibility"] == "private"
    made = await (await client.post("/api/v1/tokens", json={"name": "laptop"}, headers=bearer(alice_token))).json()
    assert made["secret"].startswith("dyp_")
    listed = await (await client.get("/api/v1/tokens", headers=bearer(alice_token))).json()
    assert [t["name"] for t in listed] == ["laptop"]
    assert (await client.delete(f"/api/v1/tokens/{made['token']['id']}", headers=bearer(alice_token))).status == 200
    events = await (await client.get("/api/v1/audit", headers=root)).json()
    actions = [e["action"] for e in events]
    assert "org.member.set" in actions
    assert all(PASSWORDS["alice"] not in json.dumps(e) and made["secret"] not in json.dumps(e) for e in events)
    assert (await client.get("/api/v1/me")).status == 401


async def test_passwords_never_reach_the_log(registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await registry.token("repository:alice/app:pull", user="alice")
    await registry.client.get("/auth/token", params={"service": "dockyard"}, headers=basic("alice", "wrong-password-x"))
    assert PASSWORDS["alice"] not in caplog.text
    assert "wrong-password-x" not in caplog.text


def test_app_without_auth_has_no_token_routes() -> None:
    app = create_app(Settings(storage=MemoryStorage()))
    assert all(not getattr(r, "resource", None) or "/auth/token" not in str(r.resource) for r in app.router.routes())
    assert isinstance(app, web.Application)

"""The accounts issue's attack list as one counted corpus against an in-process token-mode app (the detailed, one
attack per test versions are in tests/auth/test_guard.py, tests/auth/test_tokens.py and tests/catalog/test_web.py;
their fixtures are reused here): forged tokens, access across accounts, brute force, oversized credentials, CSRF on
every web form, session fixation, and the constant-time comparison call sites.
"""

from __future__ import annotations

import ast
import base64
import hmac
import json
import time
from pathlib import Path
from typing import Any

from auth.keys import KeyRing
from auth.scopes import ResourceAccess
from auth.tokens import TokenIssuer
from tests.auth.test_guard import PASSWORDS, Registry, basic, bearer, registry  # noqa: F401  (the fixture)
from tests.catalog.conftest import Client, token_catalog_client  # noqa: F401  (the fixture)
from tests.catalog.test_web import form_token, html, push_as, sign_in
from tests.reliability.tally import Tally

SECTION = "Hostile input"
REPO = Path(__file__).resolve().parents[2]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(reg: Registry, tmp_path: Path, genuine: str) -> dict[str, str]:
    """Tokens for alice's push that must all be refused, by how they were made."""
    claims = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "=="))
    claims["access"] = [{"type": "repository", "name": "alice/app", "actions": ["pull", "push", "delete"]}]
    header, _, signature = genuine.split(".")
    public = reg.guard.issuer.keys.current.kid.encode()
    hs_header = _b64({"alg": "HS256", "typ": "JWT", "kid": reg.guard.issuer.keys.current.kid})
    hs_body = f"{hs_header}.{_b64(claims)}"
    hs_sig = base64.urlsafe_b64encode(hmac.digest(public, hs_body.encode(), "sha256")).rstrip(b"=").decode()
    other = TokenIssuer(KeyRing.load(tmp_path / "other.pem", 0), issuer="dockyard")
    push = [ResourceAccess("repository", "alice/app", ("pull", "push"))]
    keys = reg.guard.issuer.keys
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "HS256 keyed with public material": f"{hs_body}.{hs_sig}",
        "another key": other.issue("alice", "dockyard", push).token,
        "expired": TokenIssuer(keys, issuer="dockyard", clock=lambda: time.time() - 3600)
        .issue("alice", "dockyard", push)
        .token,
        "wrong audience": reg.guard.issuer.issue("alice", "elsewhere", push).token,
        "wrong issuer": TokenIssuer(keys, issuer="someone-else").issue("alice", "dockyard", push).token,
        "tampered access claim": f"{header}.{_b64(claims)}.{signature}",
        "garbage": "not.a.jwt",
        "oversized": "a" * 100_000,
    }


async def test_token_forgery_and_cross_account_access(registry: Registry, tmp_path: Path, tally: Tally) -> None:  # noqa: F811
    reg = registry
    alice = await reg.token("repository:alice/app:pull,push", user="alice")
    assert await reg.push("alice/app", "v1", alice) == 201
    await reg.guard.accounts.set_visibility("alice/app", "private", actor="test")
    pull_only = await reg.token("repository:alice/app:pull", user="bob")  # bob asks; gets nothing on alice/app
    forged = forged_tokens(reg, tmp_path, await reg.token("repository:alice/app:pull", user="alice"))
    attempts: list[int] = []
    for token in forged.values():
        attempts.append((await reg.client.post("/v2/alice/app/blobs/uploads/", headers=bearer(token))).status)
        attempts.append(await reg.pull_status("alice/app", "v1", token))
    attempts.append(await reg.pull_status("alice/app", "v1", None))  # anonymous, private repository
    attempts.append(await reg.pull_status("alice/app", "v1", pull_only))  # another account
    attempts.append(await reg.push("alice/app", "v2", pull_only))
    attempts.append(await reg.push("acme/app", "v1", alice))  # an org alice is no member of
    oversized = [
        basic("alice", "p" * 1_000_000)["Authorization"],
        basic("u" * 100_000, "x")["Authorization"],
        "Basic " + "=" * 50_000,
        "Bearer " + "b" * 200_000,
    ]
    for value in oversized:
        resp = await reg.client.get("/auth/token", params={"service": "dockyard"}, headers={"Authorization": value})
        attempts.append(resp.status)
    accepted = sum(s < 300 for s in attempts)
    server_errors = sum(s >= 500 for s in attempts)
    tally.record(
        SECTION,
        "forged tokens (alg none, HS256/public key, other key, expired, audience, issuer, tampered, oversized), "
        "cross-account and anonymous access to a private repository, oversized credentials",
        tried=len(attempts),
        accepted=accepted,
        server_errors=server_errors,
    )
    assert accepted == server_errors == 0, attempts


async def test_brute_force_is_refused(registry: Registry, tally: Tally) -> None:  # noqa: F811
    statuses = []
    for attempt in range(8):
        resp = await registry.client.get(
            "/auth/token", params={"service": "dockyard"}, headers=basic("alice", f"guess-{attempt}")
        )
        statuses.append(resp.status)
    right = await registry.client.get(
        "/auth/token", params={"service": "dockyard"}, headers=basic("alice", PASSWORDS["alice"])
    )
    tally.record(
        SECTION,
        "password brute force on /auth/token (then the right password)",
        tried=len(statuses) + 1,
        accepted=sum(s == 200 for s in statuses) + (right.status == 200),
        throttled=statuses.count(429) + (right.status == 429),
    )
    assert statuses.count(429) >= 4
    assert right.status == 429


async def test_csrf_on_every_form_and_session_fixation(token_catalog_client: Client, tally: Tally) -> None:  # noqa: F811
    c = token_catalog_client
    await push_as(c, "alice", "alice/app", "v1")
    forms = {
        "/r/alice/app/-/description": {"description": "csrf was here"},
        "/r/alice/app/-/visibility": {"visibility": "private"},
        "/r/alice/app/-/tags/v1/delete": {},
        "/logout": {},
    }
    planted = "eyJ1IjoiYWxpY2UifQ.AAAA"  # a session cookie set before sign-in (fixation attempt)
    c.session.cookie_jar.update_cookies({"dockyard_session": planted})
    login = await c.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    statuses = [login.status]  # sign-in without the double-submit token
    await sign_in(c, "alice")
    session = c.session.cookie_jar.filter_cookies(c.make_url("/"))["dockyard_session"].value
    cross_site = {"Origin": "https://evil.example", "Referer": "https://evil.example/x"}
    for path, fields in forms.items():
        statuses.append((await c.post(path, data=fields, headers=cross_site, allow_redirects=False)).status)
        wrong = {**fields, "csrf_token": "A" * 43}
        statuses.append((await c.post(path, data=wrong, allow_redirects=False)).status)
    page = await html(c, "/r/alice/app")
    unchanged = "csrf was here" not in page and "badge-public" in page and "Signed in as" in page
    tally.record(
        SECTION,
        "CSRF on every web form (missing/wrong token, cross-site Origin) and session fixation",
        tried=len(statuses) + 1,
        accepted=sum(s < 400 for s in statuses) + (not unchanged),
        fixated=int(session == planted),
    )
    assert all(s == 403 for s in statuses), statuses
    assert unchanged
    assert session != planted
    assert form_token(page)


# Where a secret is compared, and the constant-time function each site must call.
CONSTANT_TIME_SITES = {
    "auth/passwords.py": {"checkpw", "compare_digest"},  # bcrypt for passwords, HMAC compare for token digests
    "catalog/web/csrf.py": {"compare_digest"},
    "catalog/web/sessions.py": {"compare_digest"},
}


def called_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }


def test_secrets_are_compared_in_constant_time(tally: Tally) -> None:
    """Code review as a test: every module that compares a password, token digest, CSRF token or session MAC calls
    the constant-time function, and token signatures are checked by PyJWT's ES256 verification (never ``==``)."""
    missing = [f"{p}: {need - called_names(REPO / p)}" for p, need in CONSTANT_TIME_SITES.items()]
    missing = [m for m in missing if not m.endswith("set()")]
    tokens = (REPO / "auth/tokens.py").read_text(encoding="utf-8")
    if "decode_complete(token, key.public_key, algorithms=[ALGORITHM])" not in tokens:
        missing.append("auth/tokens.py: signature not verified by PyJWT with the ES256 public key")
    tally.record(SECTION, "constant-time comparison call sites (code review)", tried=4, missing=len(missing))
    assert missing == []

"""No secret in any log line: a live token-mode ``dockyard serve`` with the access log on and ``log_level: debug``
gets docker-style token requests (Basic, good and bad passwords), the OAuth2 password and refresh grants, bearer
tokens on ``/v2``, personal access tokens, the web sign-in form (good and bad) and the session cookie; then its whole
output (stdout and stderr, as ``tests/support/server.py`` keeps it) is searched for every password, token, refresh
token, session cookie value and Authorization header value it saw.

Limitation: this checks one focused server run, not the logs of the whole suite (each test's server logs live in its
own tmp dir; a suite-wide hook would have to know every secret every test used).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import requests

from tests.reliability.tally import Tally
from tests.support.registries import ALICE, TOKEN_ENV, add_user
from tests.support.server import live_registry

SECTION = "Hostile input"
WRONG = "wrong-password-Zq9"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def exercise(url: str, user: str, password: str) -> set[str]:
    """Log in every way the server knows; every secret value sent or received."""
    secrets = {password, WRONG, basic(user, password), basic(user, WRONG)}
    token_url = f"{url}/auth/token"
    query = {"service": "dockyard", "scope": f"repository:{user}/app:pull,push", "offline_token": "true"}
    got = requests.get(token_url, params=query, headers={"Authorization": basic(user, password)}, timeout=30).json()
    requests.get(token_url, params=query, headers={"Authorization": basic(user, WRONG)}, timeout=30)
    secrets |= {got["token"], got["refresh_token"], f"Bearer {got['token']}"}
    grant = {"grant_type": "password", "username": user, "password": password, "service": "dockyard"}
    oauth = requests.post(token_url, data={**grant, "access_type": "offline", "client_id": "t"}, timeout=30).json()
    requests.post(token_url, data={**grant, "password": WRONG, "client_id": "t"}, timeout=30)
    refresh = {"grant_type": "refresh_token", "refresh_token": oauth["refresh_token"], "service": "dockyard"}
    refreshed = requests.post(token_url, data={**refresh, "client_id": "t", "scope": query["scope"]}, timeout=30)
    secrets |= {oauth["access_token"], oauth["refresh_token"], refreshed.json()["access_token"]}
    bearer = {"Authorization": f"Bearer {got['token']}"}
    requests.get(f"{url}/v2/{user}/app/tags/list", headers=bearer, timeout=30)
    requests.get(f"{url}/v2/{user}/app/tags/list?token={got['token']}", timeout=30)  # a token in a query string
    made = requests.post(f"{url}/api/v1/tokens", json={"name": "ci"}, headers=bearer, timeout=30).json()
    pat = made["secret"]
    pat_token = requests.get(token_url, params=query, headers={"Authorization": basic(user, pat)}, timeout=30)
    secrets |= {pat, basic(user, pat), pat_token.json()["token"]}
    secrets |= web_sign_in(url, user, password)
    return secrets


def web_sign_in(url: str, user: str, password: str) -> set[str]:
    """The sign-in form, wrong then right; the CSRF and session cookie values."""
    web = requests.Session()
    page = web.get(f"{url}/login", timeout=30).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    form = {"username": user, "password": WRONG, "csrf_token": match.group(1), "next": "/"}
    assert web.post(f"{url}/login", data=form, timeout=30).status_code == 401
    signed = web.post(f"{url}/login", data={**form, "password": password}, allow_redirects=False, timeout=30)
    assert signed.status_code == 303
    web.get(f"{url}/", timeout=30)
    return {match.group(1), web.cookies["dockyard_session"]}


def test_no_secret_reaches_the_server_output(tmp_path: Path, tally: Tally) -> None:
    user, password = ALICE
    add_user(tmp_path / "registry-data", user, password)
    env = {**TOKEN_ENV, "DOCKYARD_LOG_LEVEL": "debug", "DOCKYARD_ACCESS_LOG": "true"}
    with live_registry(tmp_path, env=env) as registry:
        secrets = exercise(registry.url, user, password)
    output = registry.log.read_text(encoding="utf-8", errors="replace")
    assert "/auth/token" in output  # the access log did record the requests
    assert re.search(r"^operation .* completed$", output, re.MULTILINE)  # aiosqlite's DEBUG lines: debug is on
    found = sorted(s[:12] + "…" for s in secrets if s in output)
    tally.record(
        SECTION,
        "secrets in server logs (passwords, tokens, refresh tokens, PATs, session cookies, Authorization headers)",
        tried=len(secrets),
        leaked=len(found),
    )
    assert found == []

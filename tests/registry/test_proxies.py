"""X-Forwarded-* headers are believed only from ``trusted_proxies``; ``auth.public_url`` wins over both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.app import create_app
from registry.config import AuthSettings, MemoryStorage, Settings

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com", "X-Forwarded-For": "192.0.2.7"}


async def realm(aiohttp_client: Any, tmp_path: Path, headers: dict[str, str], **settings: Any) -> str:
    auth = AuthSettings(mode="token", state_dir=tmp_path / "state", bcrypt_rounds=4, **settings.pop("auth", {}))
    client = await aiohttp_client(create_app(Settings(storage=MemoryStorage(), auth=auth, **settings)))
    resp = await client.get("/v2/", headers=headers)
    assert resp.status == 401
    challenge = resp.headers["WWW-Authenticate"]
    return challenge.split('realm="', 1)[1].split('"', 1)[0]


async def test_trusted_proxy_headers_set_the_realm(aiohttp_client: Any, tmp_path: Path) -> None:
    got = await realm(aiohttp_client, tmp_path, FORWARDED, trusted_proxies=["127.0.0.0/8"])
    assert got == "https://registry.example.com/auth/token"


async def test_untrusted_peer_headers_are_ignored(aiohttp_client: Any, tmp_path: Path) -> None:
    got = await realm(aiohttp_client, tmp_path, FORWARDED, trusted_proxies=["10.0.0.0/8"])
    assert got.startswith("http://127.0.0.1:")
    assert "example.com" not in got


async def test_no_trusted_proxies_means_no_forwarding(aiohttp_client: Any, tmp_path: Path) -> None:
    got = await realm(aiohttp_client, tmp_path, FORWARDED)
    assert got.startswith("http://127.0.0.1:")


async def test_public_url_wins(aiohttp_client: Any, tmp_path: Path) -> None:
    got = await realm(
        aiohttp_client,
        tmp_path,
        FORWARDED,
        trusted_proxies=["127.0.0.1"],
        auth={"public_url": "https://hub.example.org/"},
    )
    assert got == "https://hub.example.org/auth/token"


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Forwarded-Host", "evil.example.com/path"), ("X-Forwarded-Host", 'a"b'), ("X-Forwarded-Proto", "gopher")],
)
async def test_malformed_forwarded_values_are_ignored(
    aiohttp_client: Any, tmp_path: Path, header: str, value: str
) -> None:
    got = await realm(aiohttp_client, tmp_path, {header: value}, trusted_proxies=["127.0.0.1"])
    assert got.startswith("http://127.0.0.1:")

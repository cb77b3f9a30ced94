"""Issuing and verifying registry tokens, and the attacks verification must stop (auth/tokens.py)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth.keys import KeyRing, SigningKey, generate
from auth.scopes import ResourceAccess
from auth.tokens import Claims, TokenError, TokenIssuer

ISSUER = "dockyard-test"
SERVICE = "registry.test"
T0 = 1_800_000_000
PULL_PUSH = [ResourceAccess("repository", "acme/app", ("pull", "push"))]


@dataclass
class FakeClock:
    """A settable clock for TokenIssuer(clock=...)."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A token's decoded header and claims, and its encoded signature."""
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def es256(claims: dict[str, Any], key: SigningKey, **header: Any) -> str:
    """A token for arbitrary claims (PyJWS checks none of them), signed correctly with ``key``; the header is
    dockyard's unless ``header`` overrides members."""
    headers = {"typ": "JWT", "kid": key.kid, "x5c": key.x5c, **header}
    payload = json.dumps(claims).encode()
    return jwt.PyJWS().encode(payload, key.private_key, algorithm="ES256", headers=headers)


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 crafted by hand (PyJWT refuses a PEM as an HMAC secret, an attacker does not)."""
    signing_input = f"{b64url_json({'typ': 'JWT', 'alg': 'HS256', 'kid': kid})}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def ring_of(key: SigningKey) -> KeyRing:
    """A ring holding only ``key`` (never written to disk)."""
    return KeyRing(Path("/nonexistent/token.pem"), key, [], overlap=0)


def valid_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": T0 + 300,
        "nbf": T0,
        "iat": T0,
        "jti": "abc",
        "access": [access.as_claim() for access in PULL_PUSH],
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing.load(tmp_path / "token.pem", overlap=600)


@pytest.fixture
def issuer(ring: KeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=ISSUER, clock=clock)


def rejected(issuer: TokenIssuer, token: str, match: str | None = None, audience: str = SERVICE) -> str:
    """Assert verify() refuses ``token`` with a one-line reason that does not repeat the token."""
    with pytest.raises(TokenError, match=match) as info:
        issuer.verify(token, audience)
    message = str(info.value)
    assert "\n" not in message
    if token:
        assert token not in message
    signature = token.split(".")[-1]
    if len(signature) > 8:
        assert signature not in message
    return message


# --- issuing ------------------------------------------------------------------------------------------------


def test_issue_produces_the_distribution_token_format(issuer: TokenIssuer, ring: KeyRing) -> None:
    issued = issuer.issue("alice", SERVICE, PULL_PUSH)
    header, claims, _ = split(issued.token)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": ring.current.kid, "x5c": ring.current.x5c}
    assert claims.keys() == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "alice"
    assert claims["aud"] == SERVICE
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (T0, T0, T0 + 300)
    assert claims["access"] == [{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}]
    assert issued.expires_in == 300
    assert issued.issued_at == datetime.datetime.fromtimestamp(T0, datetime.UTC)


def test_jti_is_unique(issuer: TokenIssuer) -> None:
    ids = {split(issuer.issue("alice", SERVICE, []).token)[1]["jti"] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(jti) >= 16 for jti in ids)


def test_token_verifies_with_a_standard_jwt_library(issuer: TokenIssuer, ring: KeyRing, clock: FakeClock) -> None:
    clock.now = datetime.datetime.now(datetime.UTC).timestamp()
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    public = ring.current.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    decoded = jwt.decode(token, public, algorithms=["ES256"], audience=SERVICE, issuer=ISSUER)
    assert decoded["sub"] == "alice"
    from_jwk = jwt.PyJWK(ring.current.public_jwk(), algorithm="ES256").key
    assert isinstance(from_jwk, ec.EllipticCurvePublicKey)
    assert from_jwk.public_numbers() == public.public_numbers()


# --- verifying ----------------------------------------------------------------------------------------------


def test_verify_round_trips(issuer: TokenIssuer) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    claims = issuer.verify(token, SERVICE)
    jti = split(token)[1]["jti"]
    assert claims == Claims(ISSUER, "alice", SERVICE, T0 + 300, T0, T0, jti, PULL_PUSH)


def test_anonymous_token_has_an_empty_subject_and_may_grant_nothing(issuer: TokenIssuer) -> None:
    claims = issuer.verify(issuer.issue("", SERVICE, []).token, SERVICE)
    assert claims.subject == ""
    assert claims.access == []


def test_validity_window_honours_the_leeway(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    clock.now = T0 + 300 + 29
    assert issuer.verify(token, SERVICE).subject == "alice"
    clock.now = T0 + 300 + 30
    rejected(issuer, token, "expired")
    clock.now = T0 - 30
    assert issuer.verify(token, SERVICE).subject == "alice"


def test_custom_lifetime(ring: KeyRing, clock: FakeClock) -> None:
    issuer = TokenIssuer(ring, issuer=ISSUER, lifetime=60, leeway=0, clock=clock)
    issued = issuer.issue("alice", SERVICE, [])
    assert issued.expires_in == 60
    clock.now = T0 + 59
    issuer.verify(issued.token, SERVICE)
    clock.now = T0 + 60
    rejected(issuer, issued.token, "expired")


# --- attacks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b", "a.b.c", "a.b.c.d", "...", "eyJhbGciOiJFUzI1NiJ9..", "\x00\x01", "é.é.é", "x" * 70000],
)
def test_garbage_is_rejected(issuer: TokenIssuer, token: str) -> None:
    rejected(issuer, token)


def test_header_that_is_not_an_object_is_rejected(issuer: TokenIssuer) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    _, payload, signature = token.split(".")
    rejected(issuer, f"{b64url_json(['ES256'])}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_rejected(issuer: TokenIssuer, ring: KeyRing, alg: str) -> None:
    header = {"typ": "JWT", "alg": alg, "kid": ring.current.kid, "x5c": ring.current.x5c}
    unsigned = f"{b64url_json(header)}.{b64url_json(valid_claims())}."
    rejected(issuer, unsigned, "algorithm")
    rejected(issuer, unsigned + "c2lnbmF0dXJl", "algorithm")


def test_missing_alg_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    token = es256(valid_claims(), ring.current)
    header, _, _ = split(token)
    del header["alg"]
    _, payload, signature = token.split(".")
    rejected(issuer, f"{b64url_json(header)}.{payload}.{signature}", "algorithm")


@pytest.mark.parametrize("secret_of", ["certificate_pem", "public_key_pem", "public_key_der", "jwk"])
def test_hs256_with_public_material_as_secret_is_rejected(issuer: TokenIssuer, ring: KeyRing, secret_of: str) -> None:
    key = ring.current
    public = key.private_key.public_key()
    secrets = {
        "certificate_pem": key.certificate_pem(),
        "public_key_pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "public_key_der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(key.public_jwk()).encode(),
    }
    rejected(issuer, hs256(valid_claims(), secrets[secret_of], key.kid), "algorithm")


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "HS512"])
def test_other_algorithms_are_rejected(issuer: TokenIssuer, ring: KeyRing, alg: str) -> None:
    token = es256(valid_claims(), ring.current)
    header, _, _ = split(token)
    _, payload, signature = token.split(".")
    rejected(issuer, f"{b64url_json({**header, 'alg': alg})}.{payload}.{signature}", "algorithm")


def test_another_key_claiming_our_kid_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    impostor = generate()
    forged = es256(valid_claims(), impostor, kid=ring.current.kid, x5c=impostor.x5c)
    rejected(issuer, forged, "signature")
    # Even carrying our own certificate in x5c: the key is never taken from the token.
    forged = es256(valid_claims(), impostor, kid=ring.current.kid, x5c=ring.current.x5c)
    rejected(issuer, forged, "signature")


def test_another_key_with_its_own_kid_is_rejected(issuer: TokenIssuer) -> None:
    other = TokenIssuer(ring_of(generate()), issuer=ISSUER, clock=issuer.clock)
    rejected(issuer, other.issue("alice", SERVICE, PULL_PUSH).token, "unknown key")


@pytest.mark.parametrize("kid", [None, "", "unknown", 42, ["x"]])
def test_missing_or_unknown_kid_is_rejected(issuer: TokenIssuer, ring: KeyRing, kid: object) -> None:
    token = es256(valid_claims(), ring.current)
    header, _, _ = split(token)
    header = {name: value for name, value in {**header, "kid": kid}.items() if value is not None}
    _, payload, signature = token.split(".")
    reason = rejected(issuer, f"{b64url_json(header)}.{payload}.{signature}")
    assert reason in ("token signed by an unknown key", "malformed token")


def test_wrong_signature_is_rejected(issuer: TokenIssuer) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 1
    rejected(issuer, f"{head}.{payload}.{b64url(bytes(raw))}", "signature")
    rejected(issuer, f"{head}.{payload}.", "signature")
    rejected(issuer, f"{head}.{payload}.{signature[:-4]}")


def test_expired_token_is_rejected(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    clock.now = T0 + 3600
    rejected(issuer, token, "expired")


def test_token_not_yet_valid_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    rejected(issuer, es256(valid_claims(nbf=T0 + 120, exp=T0 + 600), ring.current), "not yet valid")
    assert issuer.verify(es256(valid_claims(nbf=T0 + 30), ring.current), SERVICE).not_before == T0 + 30


def test_token_issued_in_the_future_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    rejected(issuer, es256(valid_claims(iat=T0 + 120, exp=T0 + 600), ring.current), "future")


def test_wrong_audience_is_rejected(issuer: TokenIssuer) -> None:
    token = issuer.issue("alice", "other.service", PULL_PUSH).token
    rejected(issuer, token, "audience")
    rejected(issuer, issuer.issue("alice", SERVICE, PULL_PUSH).token, "audience", audience="other.service")


def test_wrong_issuer_is_rejected(issuer: TokenIssuer, ring: KeyRing, clock: FakeClock) -> None:
    other = TokenIssuer(ring, issuer="someone-else", clock=clock)
    rejected(issuer, other.issue("alice", SERVICE, PULL_PUSH).token, "issuer")


def test_tampered_access_claim_is_rejected(issuer: TokenIssuer) -> None:
    token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    head, _, signature = token.split(".")
    _, claims, _ = split(token)
    for forged_access in (
        [{"type": "repository", "name": "acme/app", "actions": ["pull", "push", "delete"]}],
        [{"type": "repository", "name": "other/app", "actions": ["pull", "push"]}],
        [{"type": "registry", "name": "catalog", "actions": ["*"]}],
    ):
        forged = {**claims, "access": forged_access}
        rejected(issuer, f"{head}.{b64url_json(forged)}.{signature}", "signature")
    # Re-encoding the very same claims differently also breaks the signature.
    rejected(issuer, f"{head}.{b64url(json.dumps(claims, indent=1).encode())}.{signature}", "signature")


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"])
def test_missing_claim_is_rejected(issuer: TokenIssuer, ring: KeyRing, claim: str) -> None:
    rejected(issuer, es256(valid_claims(**{claim: None}), ring.current), claim)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": str(T0 + 300)},
        {"exp": True},
        {"exp": float(T0 + 300)},
        {"nbf": "0"},
        {"iat": None, "exp": T0 + 300},
        {"sub": 1},
        {"sub": None},
        {"aud": [SERVICE]},
        {"iss": {"name": ISSUER}},
        {"jti": ""},
        {"jti": 7},
    ],
)
def test_ill_typed_claims_are_rejected(issuer: TokenIssuer, ring: KeyRing, overrides: dict[str, Any]) -> None:
    rejected(issuer, es256(valid_claims(**overrides), ring.current))


@pytest.mark.parametrize(
    "access",
    [
        "repository:acme/app:pull",
        {"type": "repository", "name": "acme/app", "actions": ["pull"]},
        [None],
        ["repository:acme/app:pull"],
        [{"type": "repository", "name": "acme/app"}],
        [{"type": "repository", "name": "acme/app", "actions": "pull"}],
        [{"type": "repository", "name": "acme/app", "actions": [1]}],
        [{"name": "acme/app", "actions": ["pull"]}],
    ],
)
def test_malformed_access_claim_is_rejected(issuer: TokenIssuer, ring: KeyRing, access: object) -> None:
    rejected(issuer, es256(valid_claims(access=access), ring.current), "access")


def test_claims_that_are_not_an_object_are_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    headers = {"kid": ring.current.kid, "x5c": ring.current.x5c}
    for payload in (b"[1,2,3]", b'"claims"', b"not json", b"\xff\xfe"):
        forged = jwt.PyJWS().encode(payload, ring.current.private_key, algorithm="ES256", headers=headers)
        rejected(issuer, forged, "claims")


@pytest.mark.parametrize("header", [{"crit": ["exp"]}, {"crit": ["b64"], "b64": True}, {"crit": []}])
def test_critical_header_extensions_are_rejected(issuer: TokenIssuer, ring: KeyRing, header: dict[str, Any]) -> None:
    rejected(issuer, es256(valid_claims(), ring.current, **header))


# --- refresh tokens -----------------------------------------------------------------------------------------


def test_refresh_token_round_trips_and_is_distinguishable(issuer: TokenIssuer, ring: KeyRing) -> None:
    token = issuer.issue_refresh("alice", SERVICE)
    header, claims, _ = split(token)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": ring.current.kid}
    assert claims["typ"] == "refresh"
    assert "access" not in claims
    assert claims["exp"] == T0 + 30 * 86400
    assert issuer.verify_refresh(token, SERVICE) == "alice"


def test_refresh_token_expires(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue_refresh("alice", SERVICE)
    clock.now = T0 + 30 * 86400 - 1
    assert issuer.verify_refresh(token, SERVICE) == "alice"
    clock.now = T0 + 30 * 86400 + 30
    with pytest.raises(TokenError, match="expired"):
        issuer.verify_refresh(token, SERVICE)


def test_refresh_token_is_not_an_access_token(issuer: TokenIssuer) -> None:
    rejected(issuer, issuer.issue_refresh("alice", SERVICE), "not an access token")


def test_access_token_is_not_a_refresh_token(issuer: TokenIssuer) -> None:
    with pytest.raises(TokenError, match="not a refresh token"):
        issuer.verify_refresh(issuer.issue("alice", SERVICE, PULL_PUSH).token, SERVICE)
    with pytest.raises(TokenError, match="not a refresh token"):
        issuer.verify_refresh(issuer.issue("alice", SERVICE, []).token, SERVICE)


def test_refresh_token_with_access_claim_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    forged = es256(valid_claims(typ="refresh"), ring.current)
    with pytest.raises(TokenError, match="not a refresh token"):
        issuer.verify_refresh(forged, SERVICE)
    rejected(issuer, forged, "not an access token")


def test_refresh_token_checks_audience_issuer_and_signature(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue_refresh("alice", SERVICE)
    with pytest.raises(TokenError, match="audience"):
        issuer.verify_refresh(token, "other.service")
    other = TokenIssuer(ring_of(generate()), issuer=ISSUER, clock=clock)
    with pytest.raises(TokenError, match="unknown key"):
        issuer.verify_refresh(other.issue_refresh("alice", SERVICE), SERVICE)
    head, _, signature = token.split(".")
    _, claims, _ = split(token)
    with pytest.raises(TokenError, match="signature"):
        issuer.verify_refresh(f"{head}.{b64url_json({**claims, 'sub': 'admin'})}.{signature}", SERVICE)


def test_refresh_token_needs_a_subject(issuer: TokenIssuer, ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="subject"):
        issuer.issue_refresh("", SERVICE)
    forged = es256(valid_claims(sub="", typ="refresh", access=None), ring.current)
    with pytest.raises(TokenError, match="subject"):
        issuer.verify_refresh(forged, SERVICE)


# --- key rotation -------------------------------------------------------------------------------------------


def test_rotation_overlap(tmp_path: Path, clock: FakeClock) -> None:
    ring = KeyRing.load(tmp_path / "token.pem", overlap=600)
    issuer = TokenIssuer(ring, issuer=ISSUER, lifetime=3600, clock=clock)
    old_token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    old_refresh = issuer.issue_refresh("alice", SERVICE)
    issuer.keys = ring.rotate(now=T0 + 60)
    new_token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    assert split(new_token)[0]["kid"] == issuer.keys.current.kid != ring.current.kid

    clock.now = T0 + 60 + 599
    assert issuer.verify(old_token, SERVICE).subject == "alice"
    assert issuer.verify_refresh(old_refresh, SERVICE) == "alice"
    assert issuer.verify(new_token, SERVICE).subject == "alice"

    clock.now = T0 + 60 + 600
    rejected(issuer, old_token, "unknown key")
    with pytest.raises(TokenError, match="unknown key"):
        issuer.verify_refresh(old_refresh, SERVICE)
    assert issuer.verify(new_token, SERVICE).subject == "alice"


def test_rotation_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token.pem"
    issuer = TokenIssuer(KeyRing.load(path, overlap=600), issuer=ISSUER, lifetime=3600, clock=clock)
    old_token = issuer.issue("alice", SERVICE, PULL_PUSH).token
    issuer.keys.rotate(now=T0)
    restarted = TokenIssuer(KeyRing.load(path, overlap=600), issuer=ISSUER, lifetime=3600, clock=clock)
    clock.now = T0 + 599
    assert restarted.verify(old_token, SERVICE).subject == "alice"
    clock.now = T0 + 600
    rejected(restarted, old_token, "unknown key")


def test_empty_issuer_is_refused(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="issuer"):
        TokenIssuer(ring, issuer="")

"""POST /api/v1/verify against forged, tampered, expired and garbage credentials.

Every attack must be answered 200 with `verified: false` and the failing check named; a request
without a credential is a 4xx problem. Tokens are forged by hand or with PyJWT and real keys
(our issuers' own PEM files from the key store), never by mocking the verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi.testclient import TestClient
from test_verify_interop import did_key

from app.core.config import Settings
from app.core.keys import (
    PrivateKey,
    b64url,
    b64url_decode,
    jwk_thumbprint,
    public_jwk,
    public_key_from_jwk,
)
from conftest import World, check

VERIFY = "/api/v1/verify"

# Tests that end before the verifier reads the database (request parsing, unreadable tokens) run
# on SQLite only: the PostgreSQL variant would repeat them at the cost of a migration each.
BEFORE_ANY_QUERY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# --- helpers ----------------------------------------------------------------------------------


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature bytes of a compact JWS (not verified)."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def private_key_for(settings: Settings, kid: str) -> PrivateKey:
    """The real private key behind one of our issuers' kids, read from the key store's PEM files.

    The file is named after the signing key's uuid, which the API does not show; the kid's
    fragment is the key's RFC 7638 thumbprint, so the PEM whose public half has it is the one.
    """
    fragment = kid.partition("#")[2]
    for path in Path(settings.keys_dir).glob("*.pem"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if jwk_thumbprint(public_jwk(key.public_key())) == fragment:  # type: ignore[arg-type]
            return key  # type: ignore[return-value]
    raise AssertionError(f"no PEM in {settings.keys_dir} holds the key {kid}")


def issuer_kid(issuer: dict[str, Any]) -> str:
    kid: str = issuer["issuer"]["keys"][0]["kid"]
    return kid


def issuer_did(issuer: dict[str, Any]) -> str:
    did: str = issuer["issuer"]["id"]
    return did


def sign(payload: dict[str, Any], key: PrivateKey, algorithm: str, **header: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"typ": "JWT", **header})


def assert_fails(result: dict[str, Any], name: str, status: str = "invalid") -> dict[str, Any]:
    assert result["verified"] is False, result
    assert result["status"] == status, result
    failing = check(result, name)
    assert failing["result"] == "fail", result
    return failing


@pytest.fixture
def issued(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    return world.issued()


# --- the baseline -----------------------------------------------------------------------------


def test_freshly_issued_credential_verifies(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    issuer, credential = issued
    result = world.verify(credential["jwt"])
    assert result["verified"] is True, result
    assert result["status"] == "valid"
    for name in ("format", "signature", "issuer", "validity_period", "schema", "record"):
        assert check(result, name)["result"] == "pass", (name, result)
    assert result["credential"]["issuer"]["id"] == issuer_did(issuer)


def test_credential_json_of_our_own_record_verifies(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    result = world.verify(credential["credential"])
    assert result["verified"] is True, result


# --- tampering --------------------------------------------------------------------------------


def test_tampered_payload_fails_signature(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    header_b64, _payload_b64, signature_b64 = credential["jwt"].split(".")
    _header, payload, _sig = split(credential["jwt"])
    payload["credentialSubject"]["achievement"]["name"] = "PhD in Everything"
    forged = f"{header_b64}.{segment(payload)}.{signature_b64}"
    result = world.verify(forged)
    failing = assert_fails(result, "signature")
    assert "signature" in failing["detail"].lower()
    assert check(result, "issuer")["result"] == "skipped"
    # The summary shows what the token claims, not what was signed: it must not be trusted.
    assert result["credential"]["achievement"]["name"] == "PhD in Everything"


def test_tampered_json_credential_of_ours_fails_record(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    tampered = json.loads(json.dumps(credential["credential"]))
    tampered["credentialSubject"]["achievement"]["name"] = "PhD in Everything"
    result = world.verify(tampered)
    assert_fails(result, "record")


def test_tampered_signature_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    header_b64, payload_b64, signature_b64 = credential["jwt"].split(".")
    signature = bytearray(b64url_decode(signature_b64))
    signature[len(signature) // 2] ^= 0x01
    forged = f"{header_b64}.{payload_b64}.{b64url(bytes(signature))}"
    result = world.verify(forged)
    assert_fails(result, "signature")
    assert check(result, "record")["result"] == "fail"


def test_truncated_signature_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    header_b64, payload_b64, signature_b64 = credential["jwt"].split(".")
    result = world.verify(f"{header_b64}.{payload_b64}.{signature_b64[:20]}")
    assert_fails(result, "signature")


# --- algorithm attacks ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None"])
def test_alg_none_unsigned_token_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], alg: str
) -> None:
    issuer, credential = issued
    _header, payload, _sig = split(credential["jwt"])
    header = {"alg": alg, "kid": issuer_kid(issuer), "typ": "JWT"}
    for forged in (
        f"{segment(header)}.{segment(payload)}.",
        f"{segment(header)}.{segment(payload)}",
    ):
        response = world.client.post(VERIFY, json={"credential": forged})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["verified"] is False, result
        assert result["status"] == "invalid", result
        # A two-part token is not even a JWS; a three-part one with an empty signature is read,
        # and refused at the signature check.
        failing = "signature" if forged.endswith(".") else "format"
        assert check(result, failing)["result"] == "fail", result


@pytest.mark.parametrize(
    ("algorithm", "secret_form"),
    [
        ("ES256", "pem"),
        ("EdDSA", "pem"),
        ("RS256", "pem"),  # the classic target: RS256 verifiers handed an HMAC token
        ("RS256", "der"),
        ("RS256", "jwk"),
    ],
)
def test_hs256_signed_with_issuer_public_key_fails(
    world: World, algorithm: str, secret_form: str
) -> None:
    """Algorithm confusion: an HMAC "signature" keyed with the issuer's public key."""
    issuer, credential = world.issued() if algorithm == "ES256" else _issued_with(world, algorithm)
    kid = issuer_kid(issuer)
    jwks = world.client.get(f"/issuers/{issuer['issuer']['slug']}/jwks.json").json()
    (jwk,) = [k for k in jwks["keys"] if kid.endswith("#" + k["kid"]) or k["kid"] == kid]
    public = public_key_from_jwk(jwk)
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(jwk).encode(),
    }[secret_form]
    _header, payload, _sig = split(credential["jwt"])
    payload["credentialSubject"]["achievement"]["name"] = "Forged with HS256"
    signing_input = f"{segment({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    result = world.verify(f"{signing_input}.{b64url(mac)}")
    failing = assert_fails(result, "signature")
    assert "HS256" in failing["detail"], failing
    assert "not a public-key signature algorithm" in failing["detail"], failing


@pytest.mark.parametrize("claimed_issuer", ["ours", "foreign"])
def test_hs256_with_embedded_symmetric_jwk_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], claimed_issuer: str
) -> None:
    """The attacker ships the HMAC secret itself as an `oct` jwk: a symmetric key proves nothing."""
    _issuer, credential = issued
    _header, payload, _sig = split(credential["jwt"])
    if claimed_issuer == "foreign":
        payload["issuer"] = {"id": "https://foreign.example/issuer", "type": ["Profile"]}
        payload["iss"] = payload["issuer"]["id"]
        payload["id"] = payload["jti"] = "urn:uuid:2f0b4a40-3f4b-4a55-8d59-8b0f6c1d2e3f"
    secret = b"attacker-chosen-secret-of-32-bytes!"
    header = {"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": b64url(secret)}}
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    failing = assert_fails(world.verify(f"{signing_input}.{b64url(mac)}"), "signature")
    assert "HS256" in failing["detail"]


def _issued_with(world: World, algorithm: str) -> tuple[dict[str, Any], dict[str, Any]]:
    issuer = world.issuer(name=f"{algorithm} Academy", algorithm=algorithm)
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    return issuer, world.credential(key, achievement["uuid"])


def test_alg_header_switched_to_another_asymmetric_algorithm_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    """The issuer's real P-256 key signs over SHA-384 and the header says ES384.

    PyJWT refuses to produce this, so it is built by hand. The key, not the header, picks the
    algorithm: ES256 only.
    """
    issuer, credential = issued
    kid = issuer_kid(issuer)
    key = private_key_for(settings, kid)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    _header, payload, _sig = split(credential["jwt"])
    signing_input = f"{segment({'alg': 'ES384', 'kid': kid, 'typ': 'JWT'})}.{segment(payload)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    failing = assert_fails(world.verify(f"{signing_input}.{b64url(raw)}"), "signature")
    assert "ES256" in failing["detail"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "ES256", "kid": 12345, "typ": "JWT"}, id="kid-number"),
        pytest.param({"alg": "ES256", "kid": ["a", "b"], "typ": "JWT"}, id="kid-list"),
        pytest.param({"alg": "ES256", "crit": ["exp"], "exp": 1}, id="crit-unknown"),
        pytest.param({"alg": "ES256", "crit": "b64"}, id="crit-not-a-list"),
        pytest.param({"alg": "ES256", "b64": False, "crit": ["b64"]}, id="unencoded-payload"),
    ],
)
def test_malformed_header_fails_format_not_500(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], header: dict[str, Any]
) -> None:
    """Header members PyJWT itself refuses while reading must still be a 200 verification result."""
    _issuer, credential = issued
    _header_b64, payload_b64, signature_b64 = credential["jwt"].split(".")
    result = world.verify(f"{segment(header)}.{payload_b64}.{signature_b64}")
    assert result["verified"] is False, result
    assert result["status"] == "invalid", result
    assert any(c["result"] == "fail" for c in result["checks"]), result


# --- wrong or unknown keys --------------------------------------------------------------------


def test_unknown_kid_fragment_of_our_issuer_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    issuer, credential = issued
    key = private_key_for(settings, issuer_kid(issuer))
    _header, payload, _sig = split(credential["jwt"])
    result = world.verify(sign(payload, key, "ES256", kid=f"{issuer_did(issuer)}#no-such-key"))
    failing = assert_fails(result, "signature")
    assert "no-such-key" in failing["detail"]


def test_kid_without_fragment_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    issuer, credential = issued
    key = private_key_for(settings, issuer_kid(issuer))
    _header, payload, _sig = split(credential["jwt"])
    result = world.verify(sign(payload, key, "ES256", kid=issuer_did(issuer)))
    assert_fails(result, "signature")


def test_kid_of_unknown_issuer_slug_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    issuer, credential = issued
    kid = issuer_kid(issuer)
    key = private_key_for(settings, kid)
    fragment = kid.partition("#")[2]
    _header, payload, _sig = split(credential["jwt"])
    ghost = issuer_did(issuer) + "-ghost#" + fragment
    result = world.verify(sign(payload, key, "ES256", kid=ghost))
    assert_fails(result, "signature")


def test_no_kid_on_our_issuers_credential_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    issuer, credential = issued
    key = private_key_for(settings, issuer_kid(issuer))
    _header, payload, _sig = split(credential["jwt"])
    result = world.verify(jwt.encode(payload, key, algorithm="ES256", headers={"typ": "JWT"}))
    # Our issuers sign only with register keys named by kid: without one, nothing speaks for them.
    assert "registered keys" in assert_fails(result, "issuer")["detail"]


def _two_issuers(world: World) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Issuer A with a credential, and issuer B (another tenant of the same service)."""
    a = world.issuer(name="Alpha Academy", slug="alpha")
    achievement = world.achievement(a["api_key"]["key"])
    credential = world.credential(a["api_key"]["key"], achievement["uuid"])
    b = world.issuer(name="Bravo Bootcamp", slug="bravo")
    return a, b, credential


def test_kid_of_another_issuer_cannot_sign_for_issuer(world: World, settings: Settings) -> None:
    """B signs with its own real key and kid a payload claiming issuer A: issuer check fails."""
    a, b, credential = _two_issuers(world)
    b_kid = issuer_kid(b)
    _header, payload, _sig = split(credential["jwt"])
    assert payload["issuer"]["id"] == payload["iss"] == issuer_did(a)
    forged = sign(payload, private_key_for(settings, b_kid), "ES256", kid=b_kid)
    result = world.verify(forged)
    failing = assert_fails(result, "issuer")
    assert check(result, "signature")["result"] == "pass"  # B's signature itself is genuine
    assert issuer_did(b) in failing["detail"]
    assert check(result, "record")["result"] == "fail"  # and it is not the token A issued


def test_kid_of_another_issuer_on_fresh_credential_id_fails(
    world: World, settings: Settings
) -> None:
    """B invents a new credential 'from A' (no record to compare against): issuer still fails."""
    _a, b, credential = _two_issuers(world)
    b_kid = issuer_kid(b)
    _header, payload, _sig = split(credential["jwt"])
    payload["id"] = payload["jti"] = "urn:uuid:8a5c5d3e-8d7f-4c2a-9a57-0e2b8f1b6c11"
    result = world.verify(sign(payload, private_key_for(settings, b_kid), "ES256", kid=b_kid))
    assert_fails(result, "issuer")


def test_iss_claim_disagreeing_with_credential_issuer_fails(
    world: World, settings: Settings
) -> None:
    """B signs with B's kid and sets iss to B, but the credential's issuer says A."""
    a, b, credential = _two_issuers(world)
    b_kid = issuer_kid(b)
    _header, payload, _sig = split(credential["jwt"])
    payload["iss"] = issuer_did(b)
    result = world.verify(sign(payload, private_key_for(settings, b_kid), "ES256", kid=b_kid))
    # OB 3.0 §8.2.4.1: iss must be the credential's issuer; a token saying both is unreadable.
    failing = assert_fails(result, "format")
    assert "'iss' claim" in failing["detail"]
    assert issuer_did(a) in failing["detail"]


def test_other_issuers_key_under_our_issuers_did_fails(world: World, settings: Settings) -> None:
    """B's real key, with B's key id grafted onto A's DID: A has no such key."""
    a, b, credential = _two_issuers(world)
    b_kid = issuer_kid(b)
    grafted = issuer_did(a) + "#" + b_kid.partition("#")[2]
    _header, payload, _sig = split(credential["jwt"])
    result = world.verify(sign(payload, private_key_for(settings, b_kid), "ES256", kid=grafted))
    assert_fails(result, "signature")


def test_embedded_jwk_claiming_our_issuer_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """An attacker re-signs with their own key, shipped as a `jwk` header, claiming our issuer."""
    _issuer, credential = issued
    attacker = ec.generate_private_key(ec.SECP256R1())
    _header, payload, _sig = split(credential["jwt"])
    payload["credentialSubject"]["achievement"]["name"] = "Attacker's badge"
    forged = sign(payload, attacker, "ES256", jwk=public_jwk(attacker.public_key()))
    result = world.verify(forged)
    failing = assert_fails(result, "issuer")
    # The key cannot be our issuer's, whatever it signed: it is not even tried.
    assert check(result, "signature")["result"] == "skipped"
    assert "registered keys" in failing["detail"]


def test_embedded_jwk_with_our_kid_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Our real kid plus the attacker's `jwk`: the kid wins and the attacker's signature fails."""
    issuer, credential = issued
    attacker = ec.generate_private_key(ec.SECP256R1())
    _header, payload, _sig = split(credential["jwt"])
    forged = sign(
        payload,
        attacker,
        "ES256",
        kid=issuer_kid(issuer),
        jwk=public_jwk(attacker.public_key()),
    )
    assert_fails(world.verify(forged), "signature")


def test_attacker_did_key_claiming_our_issuer_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _issuer, credential = issued
    attacker = ec.generate_private_key(ec.SECP256R1())
    did = did_key(attacker.public_key())
    _header, payload, _sig = split(credential["jwt"])
    result = world.verify(sign(payload, attacker, "ES256", kid=f"{did}#{did[len('did:key:') :]}"))
    assert_fails(result, "issuer")


def test_our_key_signing_an_unrecorded_credential_id_fails(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]], settings: Settings
) -> None:
    """Our issuer's real key signing a credential id this service never issued: record fails."""
    issuer, credential = issued
    kid = issuer_kid(issuer)
    _header, payload, _sig = split(credential["jwt"])
    payload["id"] = payload["jti"] = settings.url(
        "/credentials/8a5c5d3e-8d7f-4c2a-9a57-0e2b8f1b6c11"
    )
    result = world.verify(sign(payload, private_key_for(settings, kid), "ES256", kid=kid))
    assert_fails(result, "record")
    assert check(result, "signature")["result"] == "pass"


# --- validity period --------------------------------------------------------------------------


def test_expired_credential(world: World) -> None:
    now = datetime.now(UTC)
    _issuer, credential = world.issued(
        valid_from=(now - timedelta(days=30)).isoformat(),
        valid_until=(now - timedelta(days=1)).isoformat(),
    )
    result = world.verify(credential["jwt"])
    failing = assert_fails(result, "validity_period", status="expired")
    assert "Expired" in failing["detail"]
    assert check(result, "signature")["result"] == "pass"
    assert result["credential"]["valid_until"] is not None


def test_not_yet_valid_credential(world: World) -> None:
    _issuer, credential = world.issued(
        valid_from=(datetime.now(UTC) + timedelta(days=7)).isoformat()
    )
    result = world.verify(credential["jwt"])
    assert_fails(result, "validity_period", status="not_yet_valid")
    assert check(result, "signature")["result"] == "pass"


def test_still_valid_credential_with_expiry(world: World) -> None:
    _issuer, credential = world.issued(
        valid_until=(datetime.now(UTC) + timedelta(days=365)).isoformat()
    )
    result = world.verify(credential["jwt"])
    assert result["verified"] is True, result
    assert check(result, "validity_period")["result"] == "pass"


@BEFORE_ANY_QUERY
@pytest.mark.parametrize("value", [1e20, -1e300, 10**30, "2024-13-45T99:00:00Z"])
def test_out_of_range_dates_in_unsigned_json_fail_not_500(world: World, value: Any) -> None:
    """Anyone can post unsigned JSON: absurd dates must give a result, not a server error."""
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": "https://foreign.example/issuer",
        "validFrom": value,
        "credentialSubject": {"id": "did:example:1"},
    }
    result = world.verify(credential)
    assert result["verified"] is False
    assert check(result, "validity_period")["result"] == "fail"


# --- garbage ----------------------------------------------------------------------------------


@BEFORE_ANY_QUERY
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("not a jwt at all", id="random-string"),
        pytest.param("q9Xz0-uQ1v_wLrS3", id="random-token"),
        pytest.param("!!!.@@@.###", id="three-parts-not-base64"),
        pytest.param("abc.def.ghi", id="three-parts-base64-not-json"),
        pytest.param(f"{segment({'alg': 'ES256'})}.{b64url(b'[1, 2]')}.", id="payload-not-object"),
        pytest.param(f"{segment({'alg': 'ES256'})}.{segment({'sub': 'x'})}.", id="payload-no-vc"),
        pytest.param("a.b.c.d.e", id="five-parts-jwe-shape"),
        pytest.param("x" * (600 * 1024), id="oversized"),
    ],
)
def test_garbage_string_fails_format(world: World, garbage: str) -> None:
    result = world.verify(garbage)
    assert_fails(result, "format")
    assert all(c["result"] == "skipped" for c in result["checks"] if c["check"] != "format"), result


@BEFORE_ANY_QUERY
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param({}, id="empty-object"),
        pytest.param({"hello": "world"}, id="not-a-vc"),
        pytest.param({"type": ["OpenBadgeCredential"], "issuer": "x"}, id="no-vc-type"),
    ],
)
def test_garbage_json_fails_format(world: World, garbage: dict[str, Any]) -> None:
    assert_fails(world.verify(garbage), "format")


def test_unsigned_json_vc_fails_signature(
    world: World, issued: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """A well-formed credential JSON that is not ours and carries no proof."""
    _issuer, credential = issued
    unsigned = json.loads(json.dumps(credential["credential"]))
    unsigned["id"] = "https://elsewhere.example/credentials/1"
    unsigned["issuer"] = {"id": "https://elsewhere.example/issuer", "type": ["Profile"]}
    assert_fails(world.verify(unsigned), "signature")


# --- the HTTP envelope ------------------------------------------------------------------------


def _assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem.get("title") or problem.get("detail")


@BEFORE_ANY_QUERY
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b"{}", "application/json", id="no-credential"),
        pytest.param(b'{"jwt": "eyJ..."}', "application/json", id="wrong-member"),
        pytest.param(b'{"credential": null}', "application/json", id="null-credential"),
        pytest.param(b'{"credential": 42}', "application/json", id="number-credential"),
        pytest.param(b'{"credential": ""}', "application/json", id="empty-string"),
        pytest.param(b'{"credential": "   "}', "application/json", id="blank-string"),
        pytest.param(b'["eyJ.a.b"]', "application/json", id="json-array"),
        pytest.param(b"{not json", "application/json", id="unreadable-json"),
        pytest.param(b"\xff\xfe\x00", "application/json", id="not-utf8-json"),
        pytest.param(b"", "application/json", id="empty-body"),
        pytest.param(b"", "application/vc+jwt", id="empty-raw-jwt"),
        pytest.param(b"\xff\xfe", "text/plain", id="not-utf8-text"),
    ],
)
def test_request_without_usable_credential_is_a_problem(
    client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post(VERIFY, content=content, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, response.text
    _assert_problem(response, response.status_code)


@BEFORE_ANY_QUERY
@pytest.mark.parametrize("content_type", ["application/xml", "image/png"])
def test_wrong_content_type_is_a_problem(client: TestClient, content_type: str) -> None:
    response = client.post(VERIFY, content=b"<credential/>", headers={"Content-Type": content_type})
    _assert_problem(response, 415)


@BEFORE_ANY_QUERY
def test_malformed_multipart_is_a_problem(client: TestClient) -> None:
    """multipart/form-data carries badge image uploads (tests/test_badges.py); garbage is a 400."""
    response = client.post(
        VERIFY,
        content=b"<credential/>",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    _assert_problem(response, 400)


@pytest.mark.parametrize(
    "content_type", ["application/vc+jwt", "application/jwt", "text/plain; charset=utf-8"]
)
def test_raw_jwt_body_verifies(
    client: TestClient, issued: tuple[dict[str, Any], dict[str, Any]], content_type: str
) -> None:
    _issuer, credential = issued
    response = client.post(
        VERIFY, content=credential["jwt"] + "\n", headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True, response.json()


@BEFORE_ANY_QUERY
def test_raw_garbage_body_is_a_verification_result(client: TestClient) -> None:
    response = client.post(VERIFY, content="garbage", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["verified"] is False
    assert check(result, "format")["result"] == "fail"

"""Trustworthy verdicts: each finding of the outside audit, reproduced, with the verdict it now gets.

Forged "Verified" through keys nobody vouches for, claims that disagree, the record check's hole,
status lists that answer for other issuers' credentials, lists too short to be honest, algorithms
we cannot check, VCDM 1.1 claims, proofs we do not check, and fetches made for forged tokens.
Every token is signed with a real key; foreign issuers are served over HTTPS on loopback.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi.testclient import TestClient
from test_remote import (  # noqa: F401  # fixtures, imported to be used here
    INDEX,
    LIST_PATH,
    ForeignIssuer,
    MakeClient,
    _credential,
    _entry,
    _list_token,
    _serve_list,
    foreign,
    make_client,
    site,
    verify,
)
from test_verify_interop import did_jwk, did_key, did_key_url
from test_verify_negative import issuer_kid, private_key_for, split

from app.core.config import Settings
from app.core.keys import b64url, public_jwk
from app.status import bitstring
from conftest import ADMIN, World, check, ob_credential

HARVARD = {"type": ["Profile"], "name": "Harvard University", "url": "https://www.harvard.edu"}


def harvard(issuer_id: str, **extra: Any) -> dict[str, Any]:
    """An OB 3.0 credential whose issuer calls itself Harvard University."""
    claims = ob_credential(issuer_id, **extra)
    claims["issuer"] = {"id": issuer_id, **HARVARD}
    return claims


def es256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign(claims: dict[str, Any], key: Any, alg: str = "ES256", **header: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": "JWT", **header})


def assert_unconfirmed(result: dict[str, Any], name: str = "Harvard University") -> None:
    assert result["verified"] is False, result
    assert result["status"] == "issuer_unconfirmed", result
    for passed in ("format", "signature", "issuer", "validity_period", "schema", "data_model"):
        assert check(result, passed)["result"] == "pass", (passed, result)
    trust = check(result, "trust")
    assert trust["result"] == "fail"
    assert f"'{name}' is self-declared" in trust["detail"]
    assert result["credential"]["issuer"]["trust"]["level"] == "self_asserted"


# --- a forged "Verified" ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer_id", ["https://www.harvard.edu", "https://mit.edu", "did:web:www.harvard.edu"]
)
def test_embedded_jwk_never_speaks_for_an_https_or_did_web_issuer(
    world: World, issuer_id: str
) -> None:
    key = es256()
    result = world.verify(sign(harvard(issuer_id), key, jwk=public_jwk(key.public_key())))
    assert result["status"] == "invalid", result
    assert check(result, "issuer")["result"] == "fail"
    assert result["credential"]["issuer"]["trust"]["level"] == "self_asserted"


def test_legacy_vc_claim_with_embedded_jwk_claiming_mit_is_invalid(world: World) -> None:
    key = es256()
    claims = {
        "vc": {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            "type": ["VerifiableCredential"],
            "issuer": {"id": "https://mit.edu", "name": "MIT"},
            "issuanceDate": "2024-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:learner"},
        },
        "iss": "https://mit.edu",
        "nbf": 1704067200,
    }
    result = world.verify(sign(claims, key, jwk=public_jwk(key.public_key())))
    assert result["status"] == "invalid", result
    assert check(result, "issuer")["result"] == "fail"


@pytest.mark.parametrize(
    "spell",
    [
        lambda did: did.replace("%3A", "%3a"),
        lambda did: did.replace("testserver", "TestServer"),
        lambda did: did.replace("did:web:", "DID:WEB:"),
        lambda did: did.replace("issuers", "issuers").replace("testserver", "test%73erver"),
    ],
    ids=["lower-percent", "host-case", "scheme-case", "encoded-host"],
)
def test_our_did_in_another_spelling_is_held_to_our_register(
    world: World, settings: Settings, spell: Any
) -> None:
    issuer = world.issuer(name="Northwind Data School")
    did = issuer["issuer"]["id"]
    key = es256()
    claims = harvard(spell(did))
    for forged in (
        sign(claims, key, jwk=public_jwk(key.public_key())),
        sign(claims, key, kid=spell(did) + "#attacker"),
    ):
        result = world.verify(forged)
        assert result["status"] == "invalid", result
        assert check(result, "issuer")["result"] == "fail" or (
            check(result, "signature")["result"] == "fail"
        ), result


def test_our_did_with_a_port_in_lower_case_percent_is_ours(
    tmp_path: Any, database_url: str
) -> None:
    """The audit's own example: `did:web:127.0.0.1%3a18300:issuers:northwind`."""
    from app.main import create_app
    from conftest import make_settings

    settings = make_settings(database_url, tmp_path / "keys", base_url="http://127.0.0.1:18300")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:18300") as client:
        World(client).issuer(name="Northwind", slug="northwind")
        key = es256()
        claims = harvard("did:web:127.0.0.1%3a18300:issuers:northwind")
        token = sign(claims, key, jwk=public_jwk(key.public_key()))
        result = World(client).verify(token)
    assert result["status"] == "invalid", result
    assert "registered keys" in check(result, "issuer")["detail"]


@pytest.mark.parametrize("method", ["did:key", "did:jwk", "embedded"])
def test_self_made_identifiers_claiming_harvard_are_unconfirmed(world: World, method: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    if method == "did:key":
        token = sign(harvard(did_key(public)), key, "EdDSA", kid=did_key_url(public))
    elif method == "did:jwk":
        token = sign(harvard(did_jwk(public)), key, "EdDSA", kid=did_jwk(public) + "#0")
    else:  # the key rides in the header, and the issuer id is that key's own did:jwk
        token = sign(harvard(did_jwk(public)), key, "EdDSA", jwk=public_jwk(public))
    assert_unconfirmed(world.verify(token))


@pytest.mark.parametrize("method", ["did:key", "did:jwk", "embedded"])
def test_self_made_identifiers_claiming_harvard_show_the_amber_page(
    world: World, method: str
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    issuer_id = did_key(public) if method == "did:key" else did_jwk(public)
    header = {"kid": did_key_url(public)} if method == "did:key" else {"jwk": public_jwk(public)}
    token = sign(harvard(issuer_id), key, "EdDSA", **header)
    page = world.client.post("/verify", data={"credential": token})
    assert page.status_code == 200
    html = page.text
    assert 'data-status="issuer_unconfirmed"' in html
    assert "Issuer not confirmed" in html
    assert "self-declared" in html
    assert "Verified" not in html.split("<main", 1)[1].split("</h1>", 1)[0]


def test_a_listed_did_key_issuer_is_valid_with_the_listed_name(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    did = did_key(public)
    token = sign(harvard(did), key, "EdDSA", kid=did_key_url(public))
    assert_unconfirmed(world.verify(token))
    listed = world.client.post(
        "/api/v1/trust/issuers",
        json={"identifier": did, "name": "Harvard Extension School (listed)"},
        headers=ADMIN,
    )
    assert listed.status_code == 201, listed.text
    result = world.verify(token)
    assert result["status"] == "valid", result
    assert result["verified"] is True
    trust = result["credential"]["issuer"]["trust"]
    assert trust["level"] == "listed"
    assert trust["name"] == "Harvard Extension School (listed)"
    page = world.client.post("/verify", data={"credential": token}).text
    assert "Harvard Extension School (listed)" in page
    assert 'data-status="valid"' in page
    removed = world.client.delete(f"/api/v1/trust/issuers/{listed.json()['id']}", headers=ADMIN)
    assert removed.status_code == 204
    assert world.verify(token)["status"] == "issuer_unconfirmed"


def test_foreign_did_web_issuer_is_valid_with_its_domain(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    claims = ob_credential(foreign.did)
    claims["issuer"]["url"] = f"https://127.0.0.1:{foreign.site.port}/about"
    token = jwt.encode(
        claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
    )
    result = verify(make_client(), token)
    assert result["status"] == "valid", result
    trust = result["credential"]["issuer"]["trust"]
    assert trust["level"] == "domain"
    assert trust["domain"] == "127.0.0.1"
    assert trust["domain_matches_url"] is True
    assert "published by 127.0.0.1" in check(result, "trust")["detail"]


def test_foreign_did_web_issuer_whose_url_is_elsewhere_says_so(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    claims = ob_credential(foreign.did)
    claims["issuer"]["url"] = "https://www.harvard.edu"
    token = jwt.encode(
        claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
    )
    client = make_client()
    result = verify(client, token)
    assert result["status"] == "valid", result
    assert result["credential"]["issuer"]["trust"]["domain_matches_url"] is False
    assert "on another domain" in check(result, "trust")["detail"]


def test_our_own_credential_is_registered(world: World) -> None:
    _issuer, credential = world.issued()
    result = world.verify(credential["jwt"])
    assert result["status"] == "valid", result
    assert result["credential"]["issuer"]["trust"]["level"] == "registered"
    assert "registered with testserver" in check(result, "trust")["detail"]
    assert "skipped" in check(result, "data_model")["detail"]


# --- claims that disagree, and claims that are missing -----------------------------------------


def _did_key_token(mutate: Any) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    claims = ob_credential(did_key(public), validUntil="2999-01-01T00:00:00Z")
    mutate(claims)
    return sign(claims, key, "EdDSA", kid=did_key_url(public))


@pytest.mark.parametrize(
    ("claim", "mutate"),
    [
        ("jti", lambda c: c.update(jti="urn:uuid:00000000-0000-0000-0000-000000000000")),
        ("sub", lambda c: c.update(sub="did:example:someone-else")),
        ("nbf", lambda c: c.update(nbf=c["nbf"] + 86400)),
        ("exp", lambda c: c.update(exp=c["exp"] - 86400)),
        ("iss", lambda c: c.update(iss="did:example:other")),
        ("iss", lambda c: c.pop("iss")),
        ("jti", lambda c: c.pop("jti")),
        ("sub", lambda c: c.pop("sub")),
        ("nbf", lambda c: c.pop("nbf")),
        ("exp", lambda c: c.pop("exp")),
        ("exp", lambda c: (c.pop("validUntil"), None)),
        ("nbf", lambda c: c.update(nbf="2024-01-01")),
    ],
    ids=[
        "jti-differs",
        "sub-differs",
        "nbf-differs",
        "exp-differs",
        "iss-differs",
        "iss-missing",
        "jti-missing",
        "sub-missing",
        "nbf-missing",
        "exp-missing",
        "exp-without-validUntil",
        "nbf-not-numeric",
    ],
)
def test_claims_must_be_present_and_equal_to_the_credential(
    world: World, claim: str, mutate: Any
) -> None:
    result = world.verify(_did_key_token(mutate))
    assert result["status"] == "invalid", result
    format_check = check(result, "format")
    assert format_check["result"] == "fail"
    assert f"'{claim}' claim" in format_check["detail"]
    assert "8.2.4.1" in format_check["detail"]


@pytest.mark.parametrize("value", ["2024-01-01", "2024-01-01T00:00:00", 1704067200, "yesterday"])
def test_malformed_valid_from_is_invalid_never_expired(world: World, value: Any) -> None:
    result = world.verify(_did_key_token(lambda c: c.update(validFrom=value)))
    assert result["status"] == "invalid", result


def test_vcdm11_token_whose_claims_carry_issuer_and_date_is_read(world: World) -> None:
    """VC-JWT 1.1 §6.3.1: `iss` and `nbf` set issuer and issuanceDate when the vc leaves them empty."""
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    claims = {
        "vc": {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            "type": ["VerifiableCredential"],
            "issuer": "",
            "issuanceDate": "",
            "credentialSubject": {"id": "did:example:learner"},
        },
        "iss": did,
        "nbf": 1704067200,
        "sub": "did:example:learner",
        "jti": f"urn:uuid:{uuid.uuid4()}",
    }
    result = world.verify(sign(claims, key, "EdDSA", kid=did_key_url(key.public_key())))
    assert result["status"] == "issuer_unconfirmed", result  # read, genuine, a did:key
    assert result["credential"]["issuer"]["id"] == did
    assert result["credential"]["valid_from"] == "2024-01-01T00:00:00Z"


# --- the record check's hole, and lists that answer for others ----------------------------------


def test_our_issuers_badge_under_a_status_list_id_fails_record(
    world: World, settings: Settings
) -> None:
    issuer, credential = world.issued()
    slug = issuer["issuer"]["slug"]
    kid = issuer_kid(issuer)
    _header, claims, _sig = split(credential["jwt"])
    claims["id"] = claims["jti"] = f"{settings.base_url}/status/{slug}/revocation/1"
    result = world.verify(sign(claims, private_key_for(settings, kid), kid=kid))
    assert result["status"] == "invalid", result
    record = check(result, "record")
    assert record["result"] == "fail"
    assert "not a status list" in record["detail"]


def test_foreign_credential_naming_our_status_list_learns_nothing(
    world: World, settings: Settings
) -> None:
    issuer, _credential = world.issued()
    slug = issuer["issuer"]["slug"]
    url = f"{settings.base_url}/status/{slug}/revocation/1"
    entry = {
        "id": f"{url}#5",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "5",
        "statusListCredential": url,
    }
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    claims = ob_credential(did_key(public), credentialStatus=entry)
    result = world.verify(sign(claims, key, "EdDSA", kid=did_key_url(public)))
    status = check(result, "status")
    assert status["result"] == "error", result
    assert "not to the credential's issuer" in status["detail"]
    assert "Not revoked" not in json.dumps(result)
    assert result["status"] == "unknown"


# --- other wrong verdicts ---------------------------------------------------------------------


def test_status_list_shorter_than_the_minimum_is_an_error(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    token = _list_token(foreign, set())
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["credentialSubject"]["encodedList"] = bitstring.encode(set(), size=16 * 1024)
    _serve_list(
        foreign,
        jwt.encode(
            claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
        ),
    )
    result = verify(make_client(), _credential(foreign))
    assert result["status"] == "unknown", result
    status = check(result, "status")
    assert status["result"] == "error"
    assert "131,072" in status["detail"]


def test_es256k_is_could_not_check_not_invalid(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    claims = ob_credential("did:example:k1-issuer")
    token = sign(claims, key, "ES256K", kid="did:example:k1-issuer#key-1")
    result = world.verify(token)
    assert result["status"] == "unknown", result
    signature = check(result, "signature")
    assert signature["result"] == "error"
    assert "ES256K" in signature["detail"]


def test_dcc_badge_with_a_data_integrity_proof_object_is_not_a_schema_failure(
    world: World,
) -> None:
    claims = ob_credential("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    for claim in ("iss", "jti", "sub", "nbf"):
        claims.pop(claim)
    claims["proof"] = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-rdfc-2022",
        "created": "2024-01-01T00:00:00Z",
        "verificationMethod": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "proofPurpose": "assertionMethod",
        "proofValue": "z" + "1" * 86,
    }
    result = world.verify(claims)
    assert check(result, "schema")["result"] == "pass", result
    # The proof is checked now (test_verify_di.py): this one's value is no signature.
    assert check(result, "signature")["result"] == "fail"
    assert result["status"] == "invalid"


def test_a_forged_signature_makes_us_fetch_no_status_list(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    _serve_list(foreign, _list_token(foreign, set()))
    header, payload, _signature = _credential(foreign).split(".")
    forged = f"{header}.{payload}.{b64url(b'x' * 64)}"
    result = verify(make_client(), forged)
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"
    assert check(result, "status")["result"] == "skipped"
    assert foreign.site.hits[LIST_PATH] == 0
    # The genuine one does read it, once.
    assert verify(make_client(), _credential(foreign))["status"] == "valid"
    assert foreign.site.hits[LIST_PATH] == 1


def test_an_unbound_key_makes_us_fetch_nothing(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    claims = harvard("https://www.harvard.edu", credentialStatus=_entry(foreign))
    token = jwt.encode(
        claims, foreign.es256, algorithm="ES256", headers={"kid": f"{foreign.did}#key-1"}
    )
    result = verify(make_client(), token)
    assert result["status"] == "invalid"
    assert foreign.site.connections == 0
    assert INDEX  # the entry names a real list the site would serve

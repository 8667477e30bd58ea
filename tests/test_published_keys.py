"""What we publish about an issuer's keys protects every verifier, not only our own.

Independent libraries (node `jose`, jwcrypto) see only the published JWKS and DID document, as a
verifier elsewhere would: a key reported compromised must be gone from both, so they refuse what
it signed; a retired key must stay, so what it signed keeps verifying; the active key comes first,
for verifiers that try only the first key. Status lists are dated a minute back for slow clocks,
and choosing EdDSA warns that the 1EdTech validator accepts only ES256 and RS256.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from jwcrypto import jwk, jws
from jwcrypto import jwt as jwcrypto_jwt
from jwcrypto.common import JWException
from nodejs import run_node
from test_keys import cli_env
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from conftest import ADMIN, World, check

# What a verifier elsewhere would accept; pinned, never taken from the token header.
ALGORITHMS = ["ES256", "RS256", "EdDSA"]
YELLOW = "\x1b[33m"


def published(client: TestClient, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The issuer's DID document and JWKS, as anyone fetches them."""
    did = client.get(f"/issuers/{slug}/did.json")
    jwks = client.get(f"/issuers/{slug}/jwks.json")
    assert did.status_code == 200, did.text
    assert jwks.status_code == 200, jwks.text
    did_document: dict[str, Any] = did.json()
    key_set: dict[str, Any] = jwks.json()
    return did_document, key_set


def did_key_set(document: dict[str, Any]) -> dict[str, Any]:
    """The assertion keys of a DID document as a JWKS: what a DID-resolving verifier may use."""
    keys = []
    for method in document["verificationMethod"]:
        assert method["publicKeyJwk"]["kid"] == method["id"]
        if method["id"] in document["assertionMethod"]:
            keys.append(method["publicKeyJwk"])
    return {"keys": keys}


def jose_verify(token: str, key_set: dict[str, Any], current_date: str | None = None) -> Any:
    """Verify with panva's `jose` (node), given only `key_set`."""
    request = {"jwt": token, "jwks": key_set, "algorithms": ALGORITHMS, "currentDate": current_date}
    done = run_node("verify-jwt.mjs", json.dumps(request), package="jose")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def jwcrypto_verify(token: str, key_set: dict[str, Any]) -> dict[str, Any]:
    """Verify with jwcrypto: the key found by the header's kid in `key_set`, claims checked."""
    keys = jwk.JWKSet.from_json(json.dumps(key_set))
    verified = jwcrypto_jwt.JWT(jwt=token, key=keys, algs=ALGORITHMS)
    claims: dict[str, Any] = json.loads(verified.claims)
    return claims


def assert_accepted(token: str, did_document: dict[str, Any], key_set: dict[str, Any]) -> None:
    for keys in (key_set, did_key_set(did_document)):
        by_jose = jose_verify(token, keys)
        assert by_jose["ok"] is True, by_jose
        assert by_jose["kid"] == jwt.get_unverified_header(token)["kid"]
        assert jwcrypto_verify(token, keys)["jti"] == by_jose["payload"]["jti"]


def assert_refused(token: str, did_document: dict[str, Any], key_set: dict[str, Any]) -> None:
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid not in {m["id"] for m in did_document["verificationMethod"]}
    for keys in (key_set, did_key_set(did_document)):
        by_jose = jose_verify(token, keys)
        assert by_jose["ok"] is False, by_jose
        assert by_jose["code"] == "ERR_JWKS_NO_MATCHING_KEY", by_jose
        with pytest.raises(jwcrypto_jwt.JWKeyNotFound):
            jwcrypto_verify(token, keys)
        # Nor does any published key verify it, whatever kid a lenient verifier would ignore.
        for key in keys["keys"]:
            signed = jws.JWS()
            signed.deserialize(token)
            with pytest.raises(JWException):
                signed.verify(jwk.JWK(**key), alg=key["alg"])


def key_ids(client: TestClient, slug: str) -> list[str]:
    """The issuer's kids, oldest first (the operator's view, from the register)."""
    response = client.get(f"/api/v1/issuers/{slug}/keys", headers=ADMIN)
    assert response.status_code == 200, response.text
    return [k["kid"] for k in response.json()]


def rotate(client: TestClient, slug: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/issuers/{slug}/keys", json=body or None, headers=ADMIN)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def published_order(client: TestClient, slug: str) -> list[str]:
    """The kids in the published order; the DID document and the JWKS must agree on it."""
    did_document, key_set = published(client, slug)
    methods = [m["id"] for m in did_document["verificationMethod"]]
    assert did_document["assertionMethod"] == methods
    assert [k["kid"] for k in key_set["keys"]] == methods
    return methods


def test_independent_verifiers_refuse_a_compromised_key_and_accept_a_retired_one(
    world: World,
) -> None:
    client = world.client
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(api_key)["uuid"]

    first = world.credential(api_key, achievement)["jwt"]
    rotate(client, slug)  # retires the first key
    second = world.credential(api_key, achievement)["jwt"]
    rotate(client, slug)  # retires the second key
    third = world.credential(api_key, achievement)["jwt"]
    key1, key2, key3 = key_ids(client, slug)
    signers = [jwt.get_unverified_header(t)["kid"] for t in (first, second, third)]
    assert signers == [key1, key2, key3]
    did_document, key_set = published(client, slug)
    for token in (first, second, third):
        assert_accepted(token, did_document, key_set)

    marked = client.post(
        f"/api/v1/issuers/{slug}/keys/{key2.partition('#')[2]}/compromise", headers=ADMIN
    )
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "compromised"

    did_document, key_set = published(client, slug)
    assert published_order(client, slug) == [key3, key1]
    everything = json.dumps([did_document, key_set])
    assert key2.partition("#")[2] not in everything
    assert "revoked" not in everything
    assert_refused(second, did_document, key_set)
    # The retired first key still vouches for what it signed, and the active one too.
    assert_accepted(first, did_document, key_set)
    assert_accepted(third, did_document, key_set)

    # Our own verifier reads the register, not the documents: it names the compromised key.
    broken = world.verify(second)
    assert broken["verified"] is False
    assert broken["status"] == "invalid"
    signature = check(broken, "signature")
    assert signature["result"] == "fail"
    assert key2 in signature["detail"]
    assert "compromised" in signature["detail"]
    for token in (first, third):
        assert world.verify(token)["verified"] is True


def test_the_active_key_is_published_first_then_retired_keys_newest_first(world: World) -> None:
    client = world.client
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(api_key)
    [key1] = key_ids(client, slug)
    assert published_order(client, slug) == [key1]

    key2 = rotate(client, slug, algorithm="RS256")["kid"]
    assert published_order(client, slug) == [key2, key1]
    key3 = rotate(client, slug)["kid"]  # RS256 again: the issuer's algorithm now
    assert published_order(client, slug) == [key3, key2, key1]
    _did_document, key_set = published(client, slug)
    assert [k["alg"] for k in key_set["keys"]] == ["RS256", "RS256", "ES256"]

    # A verifier that checks the status list with the first published key (openbadgeslib does)
    # succeeds: the list is signed by the active key, which is first.
    credential = world.credential(api_key, achievement["uuid"])["credential"]
    status_list = client.get(
        credential["credentialStatus"]["statusListCredential"],
        headers={"Accept": "application/vc+jwt"},
    )
    assert status_list.status_code == 200, status_list.text
    signed = jws.JWS()
    signed.deserialize(status_list.text)
    first = key_set["keys"][0]
    signed.verify(jwk.JWK(**first), alg=first["alg"])


def _status_list_jwt(client: TestClient, url: str, **headers: str) -> Any:
    return client.get(url, headers={"Accept": "application/vc+jwt", **headers})


def test_a_status_list_is_valid_from_a_minute_ago(world: World) -> None:
    client = world.client
    issuer, credential = world.issued()
    slug = issuer["issuer"]["slug"]
    url = credential["credential"]["credentialStatus"]["statusListCredential"]

    response = _status_list_jwt(client, url)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.text, options={"verify_signature": False})
    valid_from = datetime.fromisoformat(claims["validFrom"])
    assert claims["nbf"] == int(valid_from.timestamp())  # VC-JWT: nbf is validFrom
    assert claims["nbf"] <= time.time() - 55
    assert claims["exp"] == int(datetime.fromisoformat(claims["validUntil"]).timestamp())
    assert claims["exp"] > time.time() + 60
    # The JSON form is signed on its own (cached apart), possibly a second later: also backdated.
    as_json = client.get(url, headers={"Accept": "application/json"}).json()
    json_from = datetime.fromisoformat(as_json["validFrom"].replace("Z", "+00:00"))
    assert json_from.timestamp() <= time.time() - 55
    assert abs(json_from.timestamp() - valid_from.timestamp()) < 30

    # A verifier whose clock is half a minute slow accepts it (with the published keys only).
    did_document, key_set = published(client, slug)
    slow_clock = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    by_jose = jose_verify(response.text, key_set, current_date=slow_clock)
    assert by_jose["ok"] is True, by_jose
    assert by_jose["payload"]["nbf"] == claims["nbf"]
    assert_accepted(response.text, did_document, key_set)

    # Still cached per signing key and window: the same bytes, a 304 for its ETag...
    again = _status_list_jwt(client, url)
    assert again.text == response.text
    etag = response.headers["etag"]
    assert _status_list_jwt(client, url, **{"If-None-Match": etag}).status_code == 304
    # ...and signed afresh by the new key after a rotation.
    new_kid = rotate(client, slug)["kid"]
    rotated = _status_list_jwt(client, url, **{"If-None-Match": etag})
    assert rotated.status_code == 200
    assert jwt.get_unverified_header(rotated.text)["kid"] == new_kid


def _warnings(body: dict[str, Any]) -> list[str]:
    warnings: list[str] = body["warnings"]
    return warnings


def test_choosing_eddsa_warns_that_the_1edtech_validator_refuses_it(world: World) -> None:
    client = world.client
    eddsa = world.issuer(algorithm="EdDSA")
    [warning] = _warnings(eddsa)
    assert "1EdTech validator" in warning
    assert "ES256" in warning
    assert "RS256" in warning
    for algorithm in ("ES256", "RS256"):
        assert _warnings(world.issuer(algorithm=algorithm)) == []
    assert _warnings(world.issuer()) == []

    slug = eddsa["issuer"]["slug"]
    assert _warnings(rotate(client, slug)) == [warning]  # the issuer's algorithm: EdDSA
    assert _warnings(rotate(client, slug, algorithm="ES256")) == []
    assert _warnings(rotate(client, slug, algorithm="EdDSA")) == [warning]

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("IssuerCreated", "SigningKeyRotated"):
        field = schemas[name]["properties"]["warnings"]
        assert field["type"] == "array"
        assert "1EdTech" in field["description"]


def test_the_cli_warns_in_yellow_on_stderr_for_eddsa(world: World, settings: Settings) -> None:
    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=cli_env(settings), color=True)

    created = run("issuer", "create", "--name", "Harbour", "--url", "https://harbour.example")
    assert created.exit_code == 0, created.stderr
    assert created.stderr == ""
    slug = json.loads(created.stdout)["issuer"]["slug"]

    eddsa = run(
        "issuer",
        "create",
        "--name",
        "Quay",
        "--url",
        "https://quay.example",
        "--algorithm",
        "EdDSA",
    )
    assert eddsa.exit_code == 0, eddsa.stderr
    assert json.loads(eddsa.stdout)["issuer"]["algorithm"] == "EdDSA"  # stdout stays JSON
    [line] = eddsa.stderr.splitlines()
    assert line.startswith(YELLOW)
    assert "1EdTech validator accepts only ES256 and RS256" in line

    rotated = run("keys", "rotate", "--issuer", slug, "--algorithm", "EdDSA")
    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout)["algorithm"] == "EdDSA"
    assert rotated.stderr.startswith(YELLOW)
    assert "1EdTech validator" in rotated.stderr
    back = run("keys", "rotate", "--issuer", slug, "--algorithm", "ES256")
    assert back.exit_code == 0, back.stderr
    assert back.stderr == ""

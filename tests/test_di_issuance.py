"""Issuing with Data Integrity: an issuer's Ed25519 Multikey, the eddsa-rdfc-2022 proof made
first and the VC-JWT over the credential with its proof, single and bulk; key lifecycle; the
credential URL by Accept; baked badges of either form; the CLI flag.

The proofs are checked by our verifier over HTTP and by the pure Data Integrity module with the
key read from the published DID document (not from our register); the node suites of Digital
Bazaar and the DCC are in test_di_interop.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_jobs import all_rows, batch_client, wait_for  # noqa: F401  # fixture
from test_keys import run_cli

from app.badges.bake import unbake
from app.core import data_integrity as di
from app.core import jose, multikey
from app.core.config import Settings
from app.core.jsonld import ContextLoader
from conftest import ADMIN, World, bearer, check

LOADER = ContextLoader()


def di_issuer(world: World, **body: Any) -> tuple[dict[str, Any], str, str]:
    """(issuer, API key, achievement uuid) of a fresh issuer with Data Integrity on."""
    issuer = world.issuer(data_integrity=True, **body)
    key = issuer["api_key"]["key"]
    return issuer, key, world.achievement(key)["uuid"]


def did_document(client: TestClient, slug: str) -> dict[str, Any]:
    response = client.get(f"/issuers/{slug}/did.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def ld(client: TestClient, url: str, accept: str = "application/ld+json") -> dict[str, Any]:
    response = client.get(url, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    credential: dict[str, Any] = response.json()
    return credential


def verify_with_published_key(client: TestClient, credential: dict[str, Any]) -> str:
    """The proof checked with the Multikey the DID document publishes for its method."""
    proof = credential["proof"]
    did = proof["verificationMethod"].split("#")[0]
    slug = did.rsplit(":", 1)[1]
    document = did_document(client, slug)
    assert proof["verificationMethod"] in document["assertionMethod"]
    method = next(
        m for m in document["verificationMethod"] if m["id"] == proof["verificationMethod"]
    )
    assert method["type"] == "Multikey"
    key = multikey.decode_public_key(method["publicKeyMultibase"])
    return di.verify_proof(credential, proof, key=key, loader=LOADER)


def test_a_data_integrity_issuer_publishes_a_multikey_and_its_credentials_carry_both_proofs(
    world: World,
) -> None:
    issuer, key, achievement = di_issuer(world)
    read = issuer["issuer"]
    assert read["data_integrity"] is True
    purposes = sorted(k["purpose"] for k in read["keys"])
    assert purposes == ["data_integrity", "jwt"]
    proof_key = next(k for k in read["keys"] if k["purpose"] == "data_integrity")
    assert proof_key["algorithm"] == "EdDSA"
    document = did_document(world.client, read["slug"])
    assert "https://w3id.org/security/multikey/v1" in document["@context"]
    # The JWT key comes first (verifiers that try the first key use the one that signs JWTs).
    assert document["verificationMethod"][0]["type"] == "JsonWebKey2020"
    assert proof_key["kid"] in document["assertionMethod"]
    jwks = world.client.get(f"/issuers/{read['slug']}/jwks.json").json()
    # The same keys, in the DID document's order (the proof key as the JWK of its Ed25519 key).
    assert [k["kid"] for k in jwks["keys"]] == [m["id"] for m in document["verificationMethod"]]
    assert jwks["keys"][1]["crv"] == "Ed25519"

    issued = world.credential(key, achievement)
    credential = ld(world.client, issued["url"])
    proof = credential["proof"]
    assert proof["type"] == "DataIntegrityProof"
    assert proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == proof_key["kid"]
    assert proof["created"].endswith("Z")
    assert verify_with_published_key(world.client, credential) == "eddsa-rdfc-2022"
    # The VC-JWT secures the credential with its proof.
    _header, payload = jose.unverified_parts(issued["jwt"])
    assert payload["proof"] == proof
    assert {
        k: v for k, v in payload.items() if k not in {"iss", "jti", "sub", "nbf", "exp"}
    } == credential
    # Our verifier: the JSON-LD form checks the VC-JWT record and the embedded proof.
    result = world.verify(credential)
    assert result["status"] == "valid", result
    assert "eddsa-rdfc-2022" in check(result, "signature")["detail"]
    assert world.verify(issued["jwt"])["status"] == "valid"


def test_the_credential_url_by_accept(world: World) -> None:
    _issuer, key, achievement = di_issuer(world)
    url = world.credential(key, achievement)["url"]
    plain = world.client.get(url, headers={"Accept": "application/json"})
    assert plain.status_code == 200
    assert "proof" not in plain.json()  # as before: the credential the VC-JWT secures
    assert world.verify(plain.json())["status"] == "valid"
    vc = world.client.get(url, headers={"Accept": "application/vc"})
    assert vc.headers["content-type"].startswith("application/vc")
    assert vc.json()["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    ldjson = world.client.get(url, headers={"Accept": "application/ld+json"})
    assert ldjson.headers["content-type"].startswith("application/ld+json")
    assert ldjson.json() == vc.json()
    assert world.client.get(url + "?format=vc").json() == vc.json()
    assert "proof" not in world.client.get(url + "?format=json").json()
    jwt = world.client.get(url, headers={"Accept": "application/vc+jwt"})
    assert jwt.text.count(".") == 2


def test_tampering_with_our_di_credential_fails(world: World) -> None:
    _issuer, key, achievement = di_issuer(world)
    credential = ld(world.client, world.credential(key, achievement)["url"])
    credential["proof"]["proofValue"] = credential["proof"]["proofValue"][:-3] + "abc"
    result = world.verify(credential)
    assert result["status"] == "invalid", result
    # Against our record: the JSON is not what we signed.
    assert check(result, "record")["result"] == "fail"


def test_a_revoked_di_credential_is_revoked(world: World) -> None:
    _issuer, key, achievement = di_issuer(world)
    issued = world.credential(key, achievement)
    response = world.client.post(
        f"/api/v1/credentials/{issued['id']}/revoke",
        json={"reason": "issued in error"},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    result = world.verify(ld(world.client, issued["url"]))
    assert result["status"] == "revoked", result
    assert check(result, "signature")["result"] == "pass"
    assert world.verify(issued["jwt"])["status"] == "revoked"


def test_enabling_data_integrity_for_an_existing_issuer(world: World) -> None:
    issuer = world.issuer()
    slug, key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    assert issuer["issuer"]["data_integrity"] is False
    achievement = world.achievement(key)["uuid"]
    before = world.credential(key, achievement)
    assert "proof" not in ld(world.client, before["url"])
    response = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"data_integrity": True}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    assert [k["purpose"] for k in keys].count("data_integrity") == 1
    after = ld(world.client, world.credential(key, achievement)["url"])
    assert verify_with_published_key(world.client, after) == "eddsa-rdfc-2022"
    # Again: no second key. Off: no more proofs, the key stays published.
    again = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"data_integrity": True}, headers=ADMIN
    )
    assert [k["purpose"] for k in again.json()["keys"]].count("data_integrity") == 1
    off = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"data_integrity": False}, headers=ADMIN
    )
    assert off.json()["data_integrity"] is False
    assert "proof" not in ld(world.client, world.credential(key, achievement)["url"])
    assert verify_with_published_key(world.client, after) == "eddsa-rdfc-2022"
    assert world.verify(after)["status"] == "valid"


def test_rotating_and_compromising_the_data_integrity_key(world: World) -> None:
    issuer, key, achievement = di_issuer(world)
    slug = issuer["issuer"]["slug"]
    first = ld(world.client, world.credential(key, achievement)["url"])
    old_method = first["proof"]["verificationMethod"]
    response = world.client.post(
        f"/api/v1/issuers/{slug}/keys", json={"purpose": "data_integrity"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    rotated = response.json()
    assert rotated["purpose"] == "data_integrity"
    assert rotated["algorithm"] == "EdDSA"
    assert rotated["warnings"] == []
    refused = world.client.post(
        f"/api/v1/issuers/{slug}/keys",
        json={"purpose": "data_integrity", "algorithm": "ES256"},
        headers=ADMIN,
    )
    assert refused.status_code == 422
    second = ld(world.client, world.credential(key, achievement)["url"])
    assert second["proof"]["verificationMethod"] == rotated["kid"]
    # The retired key stays published: what it signed still verifies, everywhere.
    assert old_method in did_document(world.client, slug)["assertionMethod"]
    assert verify_with_published_key(world.client, first) == "eddsa-rdfc-2022"
    assert world.verify(first)["status"] == "valid"
    # The JWT key is untouched.
    keys = world.client.get(f"/api/v1/issuers/{slug}/keys", headers=ADMIN).json()
    assert [k["status"] for k in keys if k["purpose"] == "jwt"] == ["active"]
    # The last active Data Integrity key cannot be retired while proofs are on.
    last = world.client.post(
        f"/api/v1/issuers/{slug}/keys/{rotated['key_id']}/retire", headers=ADMIN
    )
    assert last.status_code == 409
    # Compromised: it leaves the DID document, and what it signed fails (with the reason).
    fragment = old_method.split("#")[1]
    response = world.client.post(
        f"/api/v1/issuers/{slug}/keys/{fragment}/compromise", headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert old_method not in did_document(world.client, slug)["assertionMethod"]
    result = world.verify(first)
    assert result["status"] == "invalid", result
    assert "compromised" in check(result, "signature")["detail"]
    assert world.verify(second)["status"] == "valid"


def test_badges_bake_either_form(world: World) -> None:
    _issuer, key, achievement = di_issuer(world)
    issued = world.credential(key, achievement)
    credential = ld(world.client, issued["url"])
    base = issued["url"]
    for name in ("badge-ld.png", "badge-ld.svg"):
        image = world.client.get(f"{base}/{name}")
        assert image.status_code == 200, name
        assert unbake(image.content) == credential
        upload = world.client.post(
            "/api/v1/verify", files={"file": (name, image.content, image.headers["content-type"])}
        )
        result = upload.json()
        assert result["status"] == "valid", result
        assert "eddsa-rdfc-2022" in check(result, "signature")["detail"]
    for name in ("badge.png", "badge.svg"):
        assert unbake(world.client.get(f"{base}/{name}").content) == issued["jwt"]


def test_bulk_issuance_adds_the_proof_too(batch_client: TestClient) -> None:
    world = World(batch_client)
    _issuer, key, achievement = di_issuer(world)
    batch = [
        {
            "achievement_id": achievement,
            "external_id": f"r{i}",
            "recipient": {"email": f"l{i}@example.com", "name": f"L {i}"},
        }
        for i in range(3)
    ]
    response = batch_client.post("/api/v1/credentials/batch", json=batch, headers=bearer(key))
    assert response.status_code == 202, response.text
    job = wait_for(batch_client, key, response.json()["id"])
    rows = all_rows(batch_client, key, job["id"])
    assert len(rows) == 3
    for row in rows:
        url = f"/credentials/{row['credential_id']}"
        credential = ld(batch_client, url)
        assert verify_with_published_key(batch_client, credential) == "eddsa-rdfc-2022"
        assert world.verify(credential)["status"] == "valid"


def test_cli_issuer_create_with_data_integrity(settings: Settings, client: TestClient) -> None:
    out = run_cli(
        settings,
        "issuer",
        "create",
        "--name",
        "CLI Academy",
        "--url",
        "https://cli.example",
        "--data-integrity",
    )
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout[out.stdout.index("{") :])
    assert created["issuer"]["data_integrity"] is True
    assert sorted(k["purpose"] for k in created["issuer"]["keys"]) == ["data_integrity", "jwt"]
    document = did_document(client, created["issuer"]["slug"])
    assert [m["type"] for m in document["verificationMethod"]] == ["JsonWebKey2020", "Multikey"]


@pytest.mark.parametrize("body", [{"data_integrity": "yes"}, {"data_integrity": 1}])
def test_data_integrity_flag_must_be_a_boolean(world: World, body: dict[str, Any]) -> None:
    response = world.client.post(
        "/api/v1/issuers", json={"name": "X", "url": "https://x.example", **body}, headers=ADMIN
    )
    assert response.status_code == 422

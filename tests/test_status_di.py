"""Status lists secured by Data Integrity: the JSON-LD form of a DI issuer's list, with an embedded
eddsa-rdfc-2022 proof by its Data Integrity key, beside the VC-JWT and the plain JSON.

Checked over HTTP on SQLite and PostgreSQL: negotiation (the same table as the credential URL;
`application/json` and the JWT as before), the proof with the pure Data Integrity module and the
key read from the published DID document, a revocation showing at once in every form (the forms
share one cache version), key rotation and Data Integrity turned off, issuers without Data
Integrity unchanged. Our verifier reads a foreign issuer's DI-secured list too (served over real
HTTPS on loopback), under the same binding rules as a credential. DCC verifier-core reading ours
is in test_di_interop.py.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import base58
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from test_remote import (  # noqa: F401  # fixtures, imported to be used here
    LIST_PATH,
    ForeignIssuer,
    MakeClient,
    Route,
    foreign,
    make_client,
    site,
)

from app.core import data_integrity as di
from app.core import multikey
from app.core.jsonld import ContextLoader
from app.status import bitstring
from conftest import ADMIN, World, bearer, check, ob_credential

LOADER = ContextLoader()
SECURED = ("application/ld+json", "application/vc", "application/vc+ld+json")


def di_issuer(world: World, **body: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(issuer, API key, credential) of a fresh issuer with Data Integrity on."""
    issuer = world.issuer(data_integrity=True, **body)
    key = issuer["api_key"]["key"]
    return issuer, key, world.credential(key, world.achievement(key)["uuid"])


def list_path(credential: dict[str, Any], purpose: str = "revocation") -> str:
    entries = credential["credential"]["credentialStatus"]
    for entry in entries if isinstance(entries, list) else [entries]:
        if entry["statusPurpose"] == purpose:
            url: str = entry["statusListCredential"]
            return url.removeprefix("http://testserver")
    raise AssertionError(f"no {purpose} entry")


def index_of(credential: dict[str, Any], purpose: str = "revocation") -> int:
    entries = credential["credential"]["credentialStatus"]
    for entry in entries if isinstance(entries, list) else [entries]:
        if entry["statusPurpose"] == purpose:
            return int(entry["statusListIndex"])
    raise AssertionError(f"no {purpose} entry")


def get(client: TestClient, path: str, accept: str, **headers: str) -> Any:
    response = client.get(path, headers={"Accept": accept, **headers})
    assert response.status_code in {200, 304}, response.text
    assert "accept" in response.headers["vary"].lower()
    return response


def published_key(client: TestClient, method: str) -> ed25519.Ed25519PublicKey:
    """The Multikey the issuer's DID document publishes under assertionMethod for `method`."""
    slug = method.split("#")[0].rsplit(":", 1)[1]
    document = client.get(f"/issuers/{slug}/did.json").json()
    assert method in document["assertionMethod"]
    found = next(m for m in document["verificationMethod"] if m["id"] == method)
    assert found["type"] == "Multikey"
    key = multikey.decode_public_key(found["publicKeyMultibase"])
    assert isinstance(key, ed25519.Ed25519PublicKey)
    return key


def bit(document: dict[str, Any], index: int) -> bool:
    return bitstring.bit(bitstring.decode(document["credentialSubject"]["encodedList"]), index)


def jwt_payload(client: TestClient, path: str) -> dict[str, Any]:
    token = get(client, path, "application/vc+jwt").text
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def revoke(client: TestClient, key: str, credential_id: str, action: str = "revoke") -> None:
    response = client.post(
        f"/api/v1/credentials/{credential_id}/{action}",
        json={"reason": "issued in error"},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text


def test_a_di_issuers_list_is_served_secured_to_json_ld_clients(world: World) -> None:
    issuer, _key, credential = di_issuer(world)
    path = list_path(credential)
    client = world.client
    plain = get(client, path, "application/json")
    # application/json as before: the JWT's credential, without a proof, under the old type.
    assert plain.headers["content-type"].startswith("application/vc+ld+json")
    assert "proof" not in plain.json()
    for accept in SECURED:
        secured = get(client, path, accept)
        assert secured.headers["content-type"].startswith(accept), accept
        document = secured.json()
        assert document["proof"]["type"] == "DataIntegrityProof"
        assert document["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
        assert document["proof"]["proofPurpose"] == "assertionMethod"
        assert document["issuer"] == issuer["issuer"]["id"]
        assert di.unsecured(document)["credentialSubject"] == plain.json()["credentialSubject"]
    # DCC's http-client asks this way (application/ld+json first): the secured form.
    dcc = get(client, path, "application/ld+json, application/json").json()
    assert "proof" in dcc
    # JSON preferred by q: the plain JSON; JWT by default, to */* and when asked.
    assert "proof" not in get(client, path, "application/ld+json;q=0.5, application/json").json()
    for accept in ("", "*/*", "application/vc+jwt", "application/jwt", "text/html"):
        token = get(client, path, accept)
        assert token.headers["content-type"].startswith("application/vc+jwt"), accept
        assert token.text.count(".") == 2
    # Each form has its own tag, and each answers its own If-None-Match with a 304.
    tags = {
        accept: get(client, path, accept).headers["etag"]
        for accept in ("application/json", "application/ld+json", "application/vc+jwt")
    }
    assert len(set(tags.values())) == 3, tags
    for accept, tag in tags.items():
        assert get(client, path, accept, **{"If-None-Match": tag}).status_code == 304
    assert (
        get(
            client, path, "application/ld+json", **{"If-None-Match": tags["application/json"]}
        ).status_code
        == 200
    )


def test_the_lists_proof_verifies_with_the_published_multikey(world: World) -> None:
    _issuer, _key, credential = di_issuer(world)
    document = get(world.client, list_path(credential), "application/ld+json").json()
    proof = document["proof"]
    # The same Data Integrity key as the credential's own proof.
    assert proof["verificationMethod"] == credential["credential"]["proof"]["verificationMethod"]
    key = published_key(world.client, proof["verificationMethod"])
    assert di.verify_proof(document, proof, key=key, loader=LOADER) == "eddsa-rdfc-2022"
    # Created when the list's validity starts (backdated with it), not in the future.
    assert proof["created"] == document["validFrom"]
    created = datetime.fromisoformat(proof["created"].replace("Z", "+00:00"))
    assert created <= datetime.now(UTC)
    # Any change to what the proof covers breaks it: the bits, the issuer, the validity.
    for change in (
        lambda d: d["credentialSubject"].update(encodedList=bitstring.encode([3])),
        lambda d: d.update(issuer="did:web:attacker.example"),
        lambda d: d.update(validUntil="2999-01-01T00:00:00Z"),
        lambda d: d["credentialSubject"].update(statusPurpose="suspension"),
    ):
        tampered = copy.deepcopy(document)
        change(tampered)
        with pytest.raises(di.ProofInvalid):
            di.verify_proof(tampered, tampered["proof"], key=key, loader=LOADER)
    # Our verifier verifies the secured list as a credential of that issuer.
    result = world.verify(document)
    assert check(result, "signature")["result"] == "pass", result
    assert check(result, "issuer")["result"] == "pass", result
    assert check(result, "validity_period")["result"] == "pass", result


def test_a_revocation_shows_at_once_in_every_form(world: World) -> None:
    _issuer, key, credential = di_issuer(world, suspension=True)
    client = world.client
    # Suspended first: a revoked credential cannot be suspended.
    for purpose, action in (("suspension", "suspend"), ("revocation", "revoke")):
        path, index = list_path(credential, purpose), index_of(credential, purpose)
        before = {
            accept: get(client, path, accept)
            for accept in ("application/ld+json", "application/vc", "application/json")
        }
        jwt_before = get(client, path, "application/vc+jwt")
        assert not any(bit(r.json(), index) for r in before.values())
        revoke(client, key, credential["id"], action)
        for accept, old in before.items():
            # Asked again at once, and revalidated with the old tag: the new bits, a new tag.
            now = get(client, path, accept, **{"If-None-Match": old.headers["etag"]})
            assert now.status_code == 200, accept
            assert now.headers["etag"] != old.headers["etag"]
            assert bit(now.json(), index), accept
        secured = get(client, path, "application/ld+json").json()
        method = secured["proof"]["verificationMethod"]
        assert di.verify_proof(
            secured, secured["proof"], key=published_key(client, method), loader=LOADER
        )
        assert bit(jwt_payload(client, path), index)
        assert (
            get(
                client, path, "application/vc+jwt", **{"If-None-Match": jwt_before.headers["etag"]}
            ).status_code
            == 200
        )
    # Our verifier: the JSON-LD credential is suspended and revoked (revocation named first).
    document = get(client, f"/credentials/{credential['id']}", "application/ld+json").json()
    assert world.verify(document)["status"] == "revoked"


def test_a_new_data_integrity_key_signs_the_list_at_once(world: World) -> None:
    issuer, _key, credential = di_issuer(world)
    slug, path = issuer["issuer"]["slug"], list_path(credential)
    first = get(world.client, path, "application/ld+json")
    response = world.client.post(
        f"/api/v1/issuers/{slug}/keys", json={"purpose": "data_integrity"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    rotated = response.json()
    after = get(
        world.client, path, "application/ld+json", **{"If-None-Match": first.headers["etag"]}
    )
    assert after.status_code == 200
    document = after.json()
    assert document["proof"]["verificationMethod"] == rotated["kid"]
    key = published_key(world.client, rotated["kid"])
    assert di.verify_proof(document, document["proof"], key=key, loader=LOADER)
    # Data Integrity turned off: JSON-LD clients get the plain JSON again, as other issuers do.
    off = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"data_integrity": False}, headers=ADMIN
    )
    assert off.status_code == 200, off.text
    plain = get(world.client, path, "application/ld+json")
    assert "proof" not in plain.json()
    assert plain.headers["content-type"].startswith("application/vc+ld+json")
    assert (
        get(world.client, path, "application/vc")
        .headers["content-type"]
        .startswith("application/vc+jwt")
    )


def test_issuers_without_data_integrity_are_served_as_before(world: World) -> None:
    issuer, credential = world.issued()
    path = list_path(credential)
    client = world.client
    for accept in (
        "application/json",
        "application/ld+json",
        "application/vc+ld+json",
        "application/ld+json, application/json",
    ):
        response = get(client, path, accept)
        assert response.headers["content-type"].startswith("application/vc+ld+json"), accept
        assert "proof" not in response.json(), accept
        assert response.json()["issuer"] == issuer["issuer"]["id"]
    for accept in ("application/vc", "", "*/*", "application/vc+jwt"):
        assert get(client, path, accept).headers["content-type"].startswith("application/vc+jwt"), (
            accept
        )
    assert world.verify(get(client, path, "application/vc+jwt").text)["verified"] is True


# --- a foreign issuer's list secured by Data Integrity, read by our verifier --------------------


def _foreign_list(
    foreign: ForeignIssuer,
    revoked: set[int],
    *,
    key: Any = None,
    method: str | None = None,
    issuer: str | None = None,
    ago: timedelta = timedelta(0),
) -> dict[str, Any]:
    url = foreign.site.origin + LIST_PATH
    now = datetime.now(UTC).replace(microsecond=0) - ago
    document = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer or foreign.did,
        "validFrom": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "validUntil": (now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": bitstring.encode(revoked),
        },
    }
    return di.add_proof(
        document,
        key=key or foreign.ed25519,
        verification_method=method or f"{foreign.did}#key-2",
        created=now - timedelta(minutes=1),
        loader=LOADER,
    )


def _foreign_credential(foreign: ForeignIssuer, index: int) -> dict[str, Any]:
    url = foreign.site.origin + LIST_PATH
    claims = ob_credential(
        foreign.did,
        credentialStatus={
            "id": f"{url}#{index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(index),
            "statusListCredential": url,
        },
    )
    for claim in ("iss", "jti", "sub", "nbf", "exp"):
        claims.pop(claim, None)
    return di.add_proof(
        claims,
        key=foreign.ed25519,
        verification_method=f"{foreign.did}#key-2",
        created=datetime.now(UTC) - timedelta(minutes=1),
        loader=LOADER,
    )


def _serve(foreign: ForeignIssuer, document: dict[str, Any]) -> None:
    foreign.site.routes[LIST_PATH] = Route(
        body=json.dumps(document).encode(), content_type="application/ld+json"
    )


def test_our_verifier_reads_a_foreign_di_secured_list(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    client = make_client(fetch_cache_ttl=0)  # each verification reads the list again
    credential = _foreign_credential(foreign, 4242)
    _serve(foreign, _foreign_list(foreign, {1, 2, 3}))
    result = World(client).verify(credential)
    assert result["status"] == "valid", result
    assert check(result, "status")["result"] == "pass"
    _serve(foreign, _foreign_list(foreign, {4242}))
    result = World(client).verify(credential)
    if result["status"] == "unknown":
        # Seen once in CI on a loaded machine and not reproduced since: a read of the loopback
        # site that did not come through. "unknown" is the right answer to a list not read;
        # what this test proves is that the list, once read, says revoked. Read again once,
        # and keep the first answer's reasons for the report.
        first = [(c["check"], c["result"], c["detail"]) for c in result["checks"]]
        result = World(client).verify(credential)
        assert result["status"] == "revoked", (first, result["checks"])
    assert result["status"] == "revoked", result["checks"]
    assert check(result, "status")["result"] == "fail"


def test_a_foreign_di_list_not_provably_the_issuers_is_unknown(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    client = make_client(fetch_cache_ttl=0)  # each verification reads the list again
    credential = _foreign_credential(foreign, 4242)
    stranger = ed25519.Ed25519PrivateKey.generate()
    listed = _foreign_list(foreign, {4242})
    tampered = copy.deepcopy(listed)
    tampered["credentialSubject"]["encodedList"] = bitstring.encode(set())
    raw = stranger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    did_key = "did:key:z" + base58.b58encode(b"\xed\x01" + raw).decode()
    stranger_method = f"{did_key}#{did_key.removeprefix('did:key:')}"
    for document, why in (
        (tampered, "cannot be trusted"),  # the proof no longer covers the bits
        # Signed by a key the method does not hold; by a method not for assertions; by a did:key
        # that is not the issuer's (a valid signature that cannot speak for it).
        (_foreign_list(foreign, set(), key=stranger), "cannot be trusted"),
        (_foreign_list(foreign, set(), method=f"{foreign.did}#auth-only"), "cannot be trusted"),
        (_foreign_list(foreign, set(), key=stranger, method=stranger_method), "cannot be trusted"),
        # A list provably of someone else (the did:key's own), and one that has expired.
        (
            _foreign_list(foreign, set(), key=stranger, method=stranger_method, issuer=did_key),
            "not by the credential's issuer",
        ),
        (_foreign_list(foreign, set(), ago=timedelta(days=2)), "cannot be trusted"),
        # No proof at all.
        (
            di.unsecured(listed) | {"credentialSubject": tampered["credentialSubject"]},
            "cannot be trusted",
        ),
    ):
        _serve(foreign, document)
        hits = foreign.site.hits[LIST_PATH]
        result = World(client).verify(credential)
        assert foreign.site.hits[LIST_PATH] == hits + 1
        assert result["status"] == "unknown", result
        assert check(result, "status")["result"] == "error", result
        assert why in check(result, "status")["detail"], result
        assert check(result, "signature")["result"] == "pass"

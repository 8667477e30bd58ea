"""Credentials of other issuers held on a portfolio: kept byte for byte, owner-only, upserted by id.

The foreign credentials are signed in the test with jwcrypto (an independent JOSE library) by a
did:jwk, the way a wallet or another platform would hand one over.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode

from conftest import World, bearer, ob_credential

PROBLEM = "application/problem+json"


def did_jwk_token(payload: dict[str, Any]) -> str:
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    did = "did:jwk:" + base64url_encode(key.export_public())
    body = {**payload, "iss": did, "issuer": {**payload["issuer"], "id": did}}
    token = jws.JWS(json.dumps(body).encode())
    token.add_signature(key, alg="ES256", protected={"alg": "ES256", "kid": f"{did}#0"})
    return str(token.serialize(compact=True))


@pytest.fixture
def owned(world: World) -> tuple[TestClient, str, str]:
    """A portfolio made the way a recipient makes one (management link): (client, handle, key)."""
    _issuer, credential = world.issued()
    token = urlsplit(credential["manage_url"]).path.rpartition("/")[2]
    response = world.client.post(
        f"/api/v1/manage/{token}/portfolio",
        json={"handle": "amara-okafor", "display_name": "Amara Okafor"},
    )
    assert response.status_code == 201, response.text
    return world.client, "amara-okafor", response.json()["portfolio_key"]


def test_a_held_jwt_is_read_back_byte_for_byte_and_replaced_by_id(
    owned: tuple[TestClient, str, str],
) -> None:
    client, handle, key = owned
    token = did_jwk_token(ob_credential("did:example:placeholder"))
    sent = token + "\n"  # even the trailing newline is the sender's
    response = client.post(
        f"/api/v1/portfolios/{handle}/credentials",
        content=sent,
        headers={**bearer(key), "Content-Type": "application/vc+jwt"},
    )
    assert response.status_code == 201, response.text
    held = response.json()
    assert held["form"] == "jwt"
    assert held["source"] == "owner"
    assert held["credential_ref"].startswith("urn:uuid:")
    back = client.get(f"/api/v1/portfolios/{handle}/credentials/{held['id']}", headers=bearer(key))
    assert back.status_code == 200
    assert back.content == sent.encode()
    assert back.headers["content-type"].startswith("application/vc+jwt")

    # The same credential id again replaces it, keeping its row.
    document = json.dumps({**ob_credential("did:example:x"), "id": held["credential_ref"]})
    again = client.post(
        f"/api/v1/portfolios/{handle}/credentials",
        content=document,
        headers={**bearer(key), "Content-Type": "application/vc+ld+json"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == held["id"]
    assert again.json()["form"] == "json"
    listed = client.get(f"/api/v1/portfolios/{handle}/credentials", headers=bearer(key)).json()
    assert [h["document"] for h in listed] == [document]

    gone = client.delete(
        f"/api/v1/portfolios/{handle}/credentials/{held['id']}", headers=bearer(key)
    )
    assert gone.status_code == 204
    assert client.get(f"/api/v1/portfolios/{handle}/credentials", headers=bearer(key)).json() == []


@pytest.mark.parametrize(
    ("content", "media", "status"),
    [
        ("hello", "text/plain", 422),
        ('{"type": ["Thing"]}', "application/json", 422),
        ("[1, 2]", "application/json", 422),
        ('{"type": ["VerifiableCredential"', "application/json", 422),
        ("eyJhbGciOiJub25lIn0.eyJ0eXBlIjoiWCJ9.", "application/vc+jwt", 422),
        ("x" * (256 * 1024 + 1), "text/plain", 413),
        ("<xml/>", "application/xml", 415),
        ("", "application/vc+jwt", 422),
    ],
)
def test_what_is_not_a_credential_is_refused_and_nothing_is_kept(
    owned: tuple[TestClient, str, str], content: str, media: str, status: int
) -> None:
    client, handle, key = owned
    response = client.post(
        f"/api/v1/portfolios/{handle}/credentials",
        content=content,
        headers={**bearer(key), "Content-Type": media},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert client.get(f"/api/v1/portfolios/{handle}/credentials", headers=bearer(key)).json() == []


def test_only_the_owner_key_opens_the_store(owned: tuple[TestClient, str, str]) -> None:
    client, handle, key = owned
    token = did_jwk_token(ob_credential("did:example:placeholder"))
    url = f"/api/v1/portfolios/{handle}/credentials"
    jwt_type = {"Content-Type": "application/vc+jwt"}
    assert client.post(url, content=token, headers=jwt_type).status_code == 401
    wrong = client.post(url, content=token, headers={**bearer("mcp_wrong"), **jwt_type})
    assert wrong.status_code == 403
    assert wrong.headers["content-type"].startswith(PROBLEM)
    assert client.get(url, headers=bearer("mcp_wrong")).status_code == 403
    unknown = client.get("/api/v1/portfolios/nobody-here/credentials", headers=bearer(key))
    assert unknown.status_code == 404
    made = client.post(url, content=token, headers={**bearer(key), **jwt_type}).json()
    other = client.get(f"{url}/00000000-0000-0000-0000-000000000000", headers=bearer(key))
    assert other.status_code == 404
    assert client.get(f"{url}/{made['id']}", headers=bearer("mcp_wrong")).status_code == 403

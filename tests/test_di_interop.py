"""A credential we issue with Data Integrity, checked by independent implementations.

The issuer's did:web is served over real HTTPS on loopback (trustme CA, NODE_EXTRA_CA_CERTS):
the app runs with base URL https://127.0.0.1:<port>, and the site on that port serves the DID
document the app publishes, byte for byte. Node verifies the embedded proof with Digital
Bazaar's `@digitalbazaar/vc` + `@digitalbazaar/eddsa-rdfc-2022-cryptosuite` and with the DCC's
`@digitalcredentials/verifier-core` (the Learner Credential Wallet's verifier); every context
comes from the map the test hands it (our shipped contexts), and a preloaded module refuses any
request that would leave loopback. The VC-JWT of the same credential still verifies with jwcrypto
and with node `jose`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi.testclient import TestClient
from jwcrypto import jwk, jws
from nodejs import run_node
from test_remote import Route, Site

from app.core.jsonld import SHIPPED_CONTEXTS, ContextLoader
from app.main import create_app
from conftest import World, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def issued(
    ca: trustme.CA, database_url: str, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], str, dict[str, Any], Site, TestClient]]:
    """(the JSON-LD credential, its VC-JWT, the JWKS, the site, the client) of a DI issuer."""
    with Site(ca.issue_cert("127.0.0.1")) as site:
        settings = make_settings(database_url, tmp_path / "keys", base_url=site.origin)
        with TestClient(create_app(settings), base_url=site.origin) as client:
            world = World(client)
            issuer = world.issuer(data_integrity=True)
            slug, key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
            achievement = world.achievement(key)["uuid"]
            credential = world.credential(key, achievement)
            for path in (f"/issuers/{slug}/did.json", f"/issuers/{slug}/jwks.json"):
                published = client.get(path)
                site.routes[path] = Route(
                    body=published.content, content_type=published.headers["content-type"]
                )
            document = client.get(
                f"/credentials/{credential['id']}", headers={"Accept": "application/ld+json"}
            ).json()
            # The status list as this service serves it to a client that prefers JSON-LD.
            status_list = httpx.URL(document["credentialStatus"]["statusListCredential"]).path
            served = client.get(status_list, headers={"Accept": "application/vc+ld+json"})
            site.routes[status_list] = Route(
                body=served.content, content_type=served.headers["content-type"]
            )
            jwks = client.get(f"/issuers/{slug}/jwks.json").json()
            yield document, credential["jwt"], jwks, site, client


def contexts() -> dict[str, Any]:
    loader = ContextLoader()
    return {url: loader.document(url) for url in SHIPPED_CONTEXTS}


def node_verify(credential: dict[str, Any], library: str, ca_file: Path) -> dict[str, Any]:
    package = (
        "@digitalbazaar/eddsa-rdfc-2022-cryptosuite"
        if library == "digitalbazaar"
        else "@digitalcredentials/verifier-core"
    )
    done = run_node(
        "verify-di.mjs",
        json.dumps({"credential": credential, "contexts": contexts(), "library": library}),
        package=package,
        preload="loopback-only.mjs",
        env={"NODE_EXTRA_CA_CERTS": str(ca_file)},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def tampered(credential: dict[str, Any]) -> dict[str, Any]:
    changed = json.loads(json.dumps(credential))
    changed["credentialSubject"]["achievement"]["name"] += "!"
    return changed


def test_digital_bazaar_verifies_our_eddsa_rdfc_2022_proof(
    issued: tuple[dict[str, Any], str, dict[str, Any], Site, TestClient], ca_file: Path
) -> None:
    credential, _jwt, _jwks, site, _client = issued
    result = node_verify(credential, "digitalbazaar", ca_file)
    assert result["proofVerified"] is True, result
    assert result["verified"] is True, result
    assert result["method"] == credential["proof"]["verificationMethod"]
    assert site.hits[next(p for p in site.routes if p.endswith("did.json"))] >= 1
    refused = node_verify(tampered(credential), "digitalbazaar", ca_file)
    assert refused["proofVerified"] is False, refused


def test_dcc_verifier_core_verifies_our_eddsa_rdfc_2022_proof(
    issued: tuple[dict[str, Any], str, dict[str, Any], Site, TestClient], ca_file: Path
) -> None:
    credential, _jwt, _jwks, _site, _client = issued
    result = node_verify(credential, "verifier-core", ca_file)
    assert result["verified"] is True, result
    steps = {entry["id"]: entry for entry in result["log"]}
    assert steps["valid_signature"]["valid"] is True
    assert steps["expiration"]["valid"] is True
    # Our status lists are VC-JWTs (their JSON form carries no Data Integrity proof), which the
    # DCC verifier cannot check: it says so, and does not call the credential revoked.
    assert steps["revocation_status"]["error"]["name"] == "status_list_signature_error"
    refused = node_verify(tampered(credential), "verifier-core", ca_file)
    assert refused["verified"] is False, refused


def test_the_jwt_form_still_verifies_with_jwcrypto_and_node_jose(
    issued: tuple[dict[str, Any], str, dict[str, Any], Site, TestClient],
) -> None:
    credential, token, jwks, _site, _client = issued
    header = json.loads(jws.base64url_decode(token.split(".")[0]))
    key = jwk.JWK(**next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    checked = jws.JWS()
    checked.deserialize(token)
    checked.verify(key, alg=header["alg"])
    payload = json.loads(checked.payload)
    assert payload["proof"] == credential["proof"]
    done = run_node(
        "verify-jwt.mjs",
        json.dumps({"jwt": token, "jwks": jwks, "algorithms": [header["alg"]]}),
        package="jose",
    )
    result = json.loads(done.stdout)
    assert result["ok"] is True, result
    assert result["payload"]["proof"] == credential["proof"]

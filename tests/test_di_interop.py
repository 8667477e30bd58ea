"""A credential we issue with Data Integrity, checked by independent implementations.

The issuer's did:web is served over real HTTPS on loopback (trustme CA, NODE_EXTRA_CA_CERTS):
the app runs with base URL https://127.0.0.1:<port>, and the site on that port serves the DID
document the app publishes, byte for byte. Node verifies the embedded proof with Digital
Bazaar's `@digitalbazaar/vc` + `@digitalbazaar/eddsa-rdfc-2022-cryptosuite` and with the DCC's
`@digitalcredentials/verifier-core` (the Learner Credential Wallet's verifier); every context
comes from the map the test hands it (our shipped contexts), and a preloaded module refuses any
request that would leave loopback. The VC-JWT of the same credential still verifies with jwcrypto
and with node `jose`.

verifier-core fetches the status list itself, with the Accept header of the DCC's http-client
(`application/ld+json, application/json`): the site serves what the app answers to that header
(the list secured by an eddsa-rdfc-2022 proof), and the tests check that this is the header it
sent. A DCC issuer registry naming the issuer is served too, so that every step of the wallet's
verdict can pass. Digital Bazaar's `@digitalbazaar/vc-bitstring-status-list` reads the same list
(asking for application/ld+json) and verifies its proof as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi.testclient import TestClient
from jwcrypto import jwk, jws
from nodejs import run_node
from test_remote import Route, Site, json_route

from app.core.jsonld import SHIPPED_CONTEXTS, ContextLoader
from app.main import create_app
from app.status import bitstring
from app.status.bitstring import MIN_LIST_SIZE
from conftest import World, bearer, make_settings

pytestmark = pytest.mark.slow


# What @digitalcredentials/http-client sends (its DEFAULT_HEADERS), and so verifier-core.
VERIFIER_CORE_ACCEPT = "application/ld+json, application/json"
REGISTRY_PATH = "/registry.json"


@dataclass
class Issued:
    credential: dict[str, Any]  # the JSON-LD credential with its proof
    jwt: str
    jwks: dict[str, Any]
    site: Site
    client: TestClient
    api_key: str
    record_id: str

    @property
    def list_path(self) -> str:
        return httpx.URL(self.credential["credentialStatus"]["statusListCredential"]).path

    def publish_list(self) -> dict[str, Any]:
        """Serve on the site the status list as the app answers verifier-core now."""
        served = self.client.get(self.list_path, headers={"Accept": VERIFIER_CORE_ACCEPT})
        assert served.status_code == 200, served.text
        self.site.routes[self.list_path] = Route(
            body=served.content, content_type=served.headers["content-type"]
        )
        document: dict[str, Any] = served.json()
        return document

    def accept_sent_for_the_list(self) -> list[str]:
        return [
            next((v for k, v in headers.items() if k.lower() == "accept"), "")
            for path, headers in self.site.requests
            if path == self.list_path
        ]


@pytest.fixture
def issued(ca: trustme.CA, database_url: str, tmp_path: Path) -> Iterator[Issued]:
    """A credential of a DI issuer, its did:web, status list and registry served on loopback."""
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
            site.routes[REGISTRY_PATH] = json_route(
                {
                    "registry": {
                        issuer["issuer"]["id"]: {
                            "name": issuer["issuer"]["name"],
                            "url": site.origin,
                            "location": "Loopback",
                        }
                    }
                }
            )
            jwks = client.get(f"/issuers/{slug}/jwks.json").json()
            found = Issued(document, credential["jwt"], jwks, site, client, key, credential["id"])
            found.publish_list()
            yield found


def contexts() -> dict[str, Any]:
    loader = ContextLoader()
    return {url: loader.document(url) for url in SHIPPED_CONTEXTS}


def node_verify(
    credential: dict[str, Any],
    library: str,
    ca_file: Path,
    *,
    registry: str | None = None,
    status_lists: list[str] | None = None,
) -> dict[str, Any]:
    package = (
        "@digitalbazaar/eddsa-rdfc-2022-cryptosuite"
        if library == "digitalbazaar"
        else "@digitalcredentials/verifier-core"
    )
    registries = [{"name": "Loopback registry", "type": "dcc-legacy", "url": registry}]
    done = run_node(
        "verify-di.mjs",
        json.dumps(
            {
                "credential": credential,
                "contexts": contexts(),
                "library": library,
                "registries": registries if registry else [],
                **({"statusLists": status_lists} if status_lists is not None else {}),
            }
        ),
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


def test_digital_bazaar_verifies_our_eddsa_rdfc_2022_proof(issued: Issued, ca_file: Path) -> None:
    credential, site = issued.credential, issued.site
    result = node_verify(credential, "digitalbazaar", ca_file)
    assert result["proofVerified"] is True, result
    assert result["verified"] is True, result
    assert result["method"] == credential["proof"]["verificationMethod"]
    assert site.hits[next(p for p in site.routes if p.endswith("did.json"))] >= 1
    refused = node_verify(tampered(credential), "digitalbazaar", ca_file)
    assert refused["proofVerified"] is False, refused


def test_digital_bazaar_verifies_the_proof_of_our_status_list(
    issued: Issued, ca_file: Path
) -> None:
    status_list = issued.publish_list()
    assert status_list["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    assert (
        status_list["proof"]["verificationMethod"]
        == issued.credential["proof"]["verificationMethod"]
    )
    result = node_verify(status_list, "digitalbazaar", ca_file)
    assert result["proofVerified"] is True, result
    assert result["verified"] is True, result
    changed = json.loads(json.dumps(status_list))
    changed["credentialSubject"]["encodedList"] = bitstring.encode([7], size=MIN_LIST_SIZE)
    refused = node_verify(changed, "digitalbazaar", ca_file)
    assert refused["proofVerified"] is False, refused


def test_digital_bazaar_checks_our_credentials_status_list(issued: Issued, ca_file: Path) -> None:
    """@digitalbazaar/vc-bitstring-status-list reads the list (application/ld+json) from the
    site, verifies its proof and that its issuer is the credential's, and reads the bit: clear,
    then set once the credential is revoked (the library reports the bit; it is the caller's
    to call the credential revoked)."""
    credential = issued.credential
    url = credential["credentialStatus"]["statusListCredential"]
    result = node_verify(credential, "digitalbazaar", ca_file, status_lists=[url])
    assert result["verified"] is True, result
    assert result["statusVerified"] is True, result
    assert result["statuses"] == [False], result
    response = issued.client.post(
        f"/api/v1/credentials/{issued.record_id}/revoke",
        json={"reason": "issued in error"},
        headers=bearer(issued.api_key),
    )
    assert response.status_code == 200, response.text
    issued.publish_list()
    revoked = node_verify(credential, "digitalbazaar", ca_file, status_lists=[url])
    assert revoked["proofVerified"] is True, revoked
    assert revoked["statusVerified"] is True, revoked
    assert revoked["statuses"] == [True], revoked


def test_dcc_verifier_core_verifies_our_credential_status_included(
    issued: Issued, ca_file: Path
) -> None:
    credential = issued.credential
    registry = issued.site.origin + REGISTRY_PATH
    result = node_verify(credential, "verifier-core", ca_file, registry=registry)
    assert result["verified"] is True, result
    assert result["errors"] == [], result
    steps = {entry["id"]: entry for entry in result["log"]}
    assert set(steps) == {"valid_signature", "revocation_status", "expiration", "registered_issuer"}
    assert all(step["valid"] is True for step in steps.values()), steps
    assert "error" not in steps["revocation_status"], steps
    # It read the list from our site, asking as its http-client does: the secured JSON-LD.
    assert issued.accept_sent_for_the_list() == [VERIFIER_CORE_ACCEPT]
    assert "proof" in issued.publish_list()
    refused = node_verify(tampered(credential), "verifier-core", ca_file, registry=registry)
    assert refused["verified"] is False, refused


def test_dcc_verifier_core_reports_our_revoked_credential_revoked(
    issued: Issued, ca_file: Path
) -> None:
    credential, client = issued.credential, issued.client
    before = issued.publish_list()  # the list as served (and cached) before the revocation
    assert "proof" in before
    response = client.post(
        f"/api/v1/credentials/{issued.record_id}/revoke",
        json={"reason": "issued in error"},
        headers=bearer(issued.api_key),
    )
    assert response.status_code == 200, response.text
    after = issued.publish_list()
    assert after["credentialSubject"]["encodedList"] != before["credentialSubject"]["encodedList"]
    result = node_verify(credential, "verifier-core", ca_file)
    assert result["verified"] is False, result
    steps = {entry["id"]: entry for entry in result["log"]}
    assert steps["valid_signature"]["valid"] is True, steps
    assert steps["revocation_status"]["valid"] is False, steps
    assert "error" not in steps["revocation_status"], steps
    # Our own verifier agrees, on the JSON-LD credential and on its VC-JWT.
    for form in (credential, issued.jwt):
        verdict = client.post("/api/v1/verify", json={"credential": form}).json()
        assert verdict["status"] == "revoked", verdict


def test_the_jwt_form_still_verifies_with_jwcrypto_and_node_jose(issued: Issued) -> None:
    credential, token, jwks = issued.credential, issued.jwt, issued.jwks
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

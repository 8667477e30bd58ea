"""Verifying credentials secured by embedded Data Integrity proofs: the API, the upload path.

Keys come from did:key, did:web documents and https controller documents served over real
HTTPS on loopback (trustme). The 1EdTech fixtures name `https://example.com/...` and
`https://1edtech.edu/...` verification methods: the test's resolver answers 127.0.0.1 for those
two names (and fails the test for any other lookup), and a transport sends the request to the
loopback site's port, so TLS still checks a certificate issued for the real host name and no
traffic leaves loopback.
"""

from __future__ import annotations

import copy
import io
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import base58
import httpx
import jwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi.testclient import TestClient
from PIL import Image
from test_keys import run_cli
from test_remote import (  # noqa: F401  # fixtures, imported to be used here
    LOOPBACK,
    ForeignIssuer,
    MakeClient,
    Site,
    foreign,
    json_route,
    make_client,
    site,
)
from test_trust_verdicts import HARVARD, assert_unconfirmed
from test_verify_interop import did_key, did_key_url

from app.badges.bake import bake_png
from app.core import data_integrity as di
from app.core import multikey
from app.core.config import Settings
from app.core.fetch import Fetcher
from app.core.jsonld import ContextLoader
from conftest import SHARED, World, check, ob_credential

OB30 = SHARED / "standards" / "validator-fixtures" / "ob30"
VECTORS = SHARED / "standards" / "di-vectors"
LOADER = ContextLoader()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def di_credential(issuer: Any, key: Any, method: str, **extra: Any) -> dict[str, Any]:
    """An OB 3.0 credential (no JWT claims) with an eddsa-rdfc-2022 proof."""
    claims = ob_credential(issuer if isinstance(issuer, str) else issuer["id"], **extra)
    for claim in ("iss", "jti", "sub", "nbf", "exp"):
        claims.pop(claim, None)
    if not isinstance(issuer, str):
        claims["issuer"] = issuer
    return di.add_proof(claims, key=key, verification_method=method, created=NOW, loader=LOADER)


def verify(client: TestClient, credential: Any) -> dict[str, Any]:
    response = client.post("/api/v1/verify", json={"credential": credential})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def upload(client: TestClient, credential: dict[str, Any]) -> dict[str, Any]:
    """The credential baked (as JSON) into a PNG, and the PNG uploaded."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buffer, format="PNG")
    baked = bake_png(buffer.getvalue(), json.dumps(credential))
    response = client.post("/api/v1/verify", files={"file": ("badge.png", baked, "image/png")})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- did:key ----------------------------------------------------------------------------------


def test_did_key_issuer_claiming_a_famous_name_is_unconfirmed_like_its_jwt_twin(
    world: World,
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    issuer = {"id": did, **HARVARD}
    credential = di_credential(issuer, key, did_key_url(key.public_key()))
    result = world.verify(credential)
    assert_unconfirmed(result)
    assert "eddsa-rdfc-2022" in check(result, "signature")["detail"]
    # The JWT twin: the same credential (without the proof), signed with the same key.
    claims = ob_credential(did)
    claims["issuer"] = issuer
    twin = jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": did_key_url(key.public_key())}
    )
    jwt_result = world.verify(twin)
    assert_unconfirmed(jwt_result)
    assert jwt_result["status"] == result["status"]
    assert jwt_result["credential"]["issuer"]["trust"] == result["credential"]["issuer"]["trust"]


def test_the_page_and_the_cli_verify_a_pasted_di_credential(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    credential = di_credential({"id": did, **HARVARD}, key, did_key_url(key.public_key()))
    page = world.client.post("/verify", data={"credential": json.dumps(credential)})
    assert page.status_code == 200
    assert 'data-status="issuer_unconfirmed"' in page.text
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(credential), "utf-8")
    out = run_cli(settings, "verify", "--json", str(path))
    result = json.loads(out.stdout)
    assert result["status"] == "issuer_unconfirmed", out.stdout
    assert check(result, "signature")["result"] == "pass"
    credential["credentialSubject"]["achievement"]["name"] = "Surgery"
    path.write_text(json.dumps(credential), "utf-8")
    out = run_cli(settings, "verify", "--json", str(path))
    assert out.exit_code != 0
    assert check(json.loads(out.stdout), "signature")["result"] == "fail"


def test_did_key_bare_method_and_p256_ecdsa_rdfc_verify(world: World) -> None:
    """A did:key without fragment names its one key; ecdsa-rdfc-2019 with a P-256 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    assert world.verify(di_credential(did, key, did))["status"] == "issuer_unconfirmed"
    p256 = ec.generate_private_key(ec.SECP256R1())
    pdid = did_key(p256.public_key())
    claims = ob_credential(pdid)
    for claim in ("iss", "jti", "sub", "nbf", "exp"):
        claims.pop(claim, None)
    proof = {
        "type": "DataIntegrityProof",
        "cryptosuite": "ecdsa-rdfc-2019",
        "created": "2025-01-01T00:00:00Z",
        "verificationMethod": did_key_url(p256.public_key()),
        "proofPurpose": "assertionMethod",
    }
    parts = di.stages(claims, proof, loader=LOADER, key_curve="secp256r1")
    value = di.ecdsa_raw_signature(p256, parts.hash_data)
    signed = {**claims, "proof": {**proof, "proofValue": "z" + base58.b58encode(value).decode()}}
    result = world.verify(signed)
    assert result["status"] == "issuer_unconfirmed", result
    assert "ecdsa-rdfc-2019" in check(result, "signature")["detail"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c["credentialSubject"]["achievement"].update(name="Brain surgery"),
        lambda c: c["proof"].update(created="2025-12-31T00:00:00Z"),
        lambda c: c["proof"].update(proofValue=c["proof"]["proofValue"][:-2] + "11"),
        lambda c: c.update(validFrom="2020-01-01T00:00:00Z"),
    ],
)
def test_a_tampered_di_credential_is_invalid_with_the_signature_check_named(
    world: World, tamper: Callable[[dict[str, Any]], None]
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    credential = di_credential(did_key(key.public_key()), key, did_key_url(key.public_key()))
    tamper(credential)
    result = world.verify(credential)
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"
    assert check(result, "status")["result"] == "skipped"


def test_a_did_key_proof_never_speaks_for_an_https_issuer(world: World) -> None:
    """The W3C vector is genuine, but its did:key is not the issuer https://vc.example/…"""
    result = world.verify(load(VECTORS / "vc-di-eddsa" / "eddsa-rdfc-2022" / "signedDataInt.json"))
    assert result["status"] == "invalid", result
    # did:key needs no fetch: the signature is checked, and it is not the issuer's.
    assert check(result, "signature")["result"] == "pass"
    assert check(result, "issuer")["result"] == "fail"
    assert "cannot speak for that issuer" in check(result, "issuer")["detail"]


def test_a_did_key_fragment_that_is_not_the_key_fails(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    result = world.verify(di_credential(did, key, did + "#key-1"))
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"


@pytest.mark.parametrize(
    ("proof", "words"),
    [
        ({"type": "RsaSignature2018", "proofPurpose": "assertionMethod"}, "RsaSignature2018"),
        ({"type": "DataIntegrityProof", "cryptosuite": "bbs-2023"}, "bbs-2023"),
        ({"type": "SomeProofType", "created": "2022-11-16T18:54:22Z"}, "SomeProofType"),
    ],
)
def test_an_unsupported_proof_is_error_never_fail_nor_a_schema_failure(
    world: World, proof: dict[str, Any], words: str
) -> None:
    claims = ob_credential("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    for claim in ("iss", "jti", "sub", "nbf"):
        claims.pop(claim)
    claims["proof"] = [proof]
    result = world.verify(claims)
    assert result["status"] == "unknown", result
    assert check(result, "signature")["result"] == "error"
    assert words in check(result, "signature")["detail"]
    assert check(result, "schema")["result"] == "pass"
    assert all(c["result"] != "fail" for c in result["checks"]), result


def test_an_unsupported_proof_beside_a_verified_one_is_named_not_fatal(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    credential = di_credential(did_key(key.public_key()), key, did_key_url(key.public_key()))
    credential["proof"] = [
        {"type": "SomeProofType", "proofPurpose": "assertionMethod"},
        credential["proof"],
    ]
    result = world.verify(credential)
    assert result["status"] == "issuer_unconfirmed", result
    assert "SomeProofType" in check(result, "signature")["detail"]


def test_a_proof_set_with_one_bad_proof_fails(world: World) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    other = ed25519.Ed25519PrivateKey.generate()
    did = did_key(key.public_key())
    credential = di_credential(did, key, did_key_url(key.public_key()))
    bad = di.add_proof(
        di.unsecured(credential),
        key=other,
        verification_method=did_key_url(key.public_key()),  # claims the issuer's key
        created=NOW,
        loader=LOADER,
    )["proof"]
    credential["proof"] = [credential["proof"], bad]
    result = world.verify(credential)
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"


# --- did:web and https controller documents ---------------------------------------------------


def test_did_web_multikey_and_jsonwebkey_methods_verify(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    client = make_client()
    # key-2: an embedded Multikey assertion method (Ed25519).
    credential = di_credential(foreign.did, foreign.ed25519, "#key-2")
    result = verify(client, credential)
    assert result["status"] == "valid", result
    assert result["credential"]["issuer"]["trust"]["level"] == "domain"
    # A JsonWebKey method (P-256, key-1) with ecdsa-jcs-2019.
    claims = di.unsecured(di_credential(foreign.did, foreign.ed25519, "#key-2"))
    proof = {
        "type": "DataIntegrityProof",
        "cryptosuite": "ecdsa-jcs-2019",
        "created": "2025-01-01T00:00:00Z",
        "verificationMethod": f"{foreign.did}#key-1",
        "proofPurpose": "assertionMethod",
    }
    parts = di.stages(claims, proof, loader=LOADER, key_curve="secp256r1")
    value = base58.b58encode(di.ecdsa_raw_signature(foreign.es256, parts.hash_data)).decode()
    result = verify(client, {**claims, "proof": {**proof, "proofValue": "z" + value}})
    assert result["status"] == "valid", result
    # A method listed only under authentication may not assert a credential.
    result = verify(client, di_credential(foreign.did, foreign.ed25519, "#auth-only"))
    assert result["status"] == "invalid", result
    assert "not an assertionMethod" in check(result, "signature")["detail"]


def test_a_did_web_method_of_another_did_is_not_fetched(
    make_client: MakeClient, foreign: ForeignIssuer
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    credential = di_credential("did:web:www.harvard.edu", key, f"{foreign.did}#key-2")
    result = verify(make_client(), credential)
    assert result["status"] == "invalid", result
    assert check(result, "issuer")["result"] == "fail"
    assert foreign.site.hits[foreign.doc_path] == 0


# --- the 1EdTech fixtures, their https verification methods served on loopback -----------------

FIXTURE_HOSTS = ("example.com", "1edtech.edu")


class Rerouted(httpx.BaseTransport):
    """Sends each request (addressed to 127.0.0.1:443 by the fetcher) to the site's port."""

    def __init__(self, ca_file: Path, port: int) -> None:
        self.inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(ca_file)))
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            pytest.fail(f"a request left loopback: {request.url}")
        request.url = request.url.copy_with(port=self.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def fixture_site(
    ca: trustme.CA, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Site, Fetcher]]:
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in LOOPBACK:
            return real(host, port, *args, **kwargs)  # a literal address: no lookup
        if host not in FIXTURE_HOSTS:
            pytest.fail(f"an unexpected name was looked up: {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with Site(ca.issue_cert(*FIXTURE_HOSTS)) as s:
        transport = Rerouted(ca_file, s.port)
        fetcher = Fetcher(
            allow_loopback=True,
            timeout=2.0,
            max_bytes=64 * 1024,
            cache_ttl=0.0,
            transport=transport,
            resolve=resolve,
        )
        yield s, fetcher
        fetcher.close()


def controller_document(method: str) -> dict[str, Any]:
    """The controller document an https verification method's URL serves (W3C Controlled
    Identifiers): the key of the fixture's method, authorised for assertionMethod."""
    url, _, fragment = method.partition("#")
    return {
        "@context": ["https://www.w3.org/ns/cid/v1"],
        "id": url,
        "verificationMethod": [
            {"id": method, "type": "Multikey", "controller": url, "publicKeyMultibase": fragment}
        ],
        "assertionMethod": [method],
    }


def serve_method(site_: Site, credential: dict[str, Any]) -> str:
    method = di.proofs_of(credential)[-1]["verificationMethod"]
    path = httpx.URL(method).path
    site_.routes[path] = json_route(controller_document(method))
    return path


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("simple.json", "valid"),
        # complete.json's credentialStatus is a 1EdTechRevocationList, which nobody can check
        # here: the proof, the issuer and the rest pass, and whether it is revoked is unknown.
        ("complete.json", "unknown"),
    ],
)
def test_1edtech_fixtures_verify_through_the_api_and_the_upload_path(
    make_client: MakeClient, fixture_site: tuple[Site, Fetcher], name: str, status: str
) -> None:
    site_, fetcher = fixture_site
    credential = load(OB30 / name)
    path = serve_method(site_, credential)
    client = make_client()
    client.app.state.ctx.fetcher = fetcher  # type: ignore[attr-defined]  # the app's fetcher, on loopback
    for result in (verify(client, credential), upload(client, credential)):
        assert result["status"] == status, result
        assert result["verified"] is (status == "valid")
        signature = check(result, "signature")
        assert signature["result"] == "pass"
        assert "eddsa-rdfc-2022" in signature["detail"]
        assert check(result, "issuer")["result"] == "pass"
        # An https issuer whose own origin serves the key: the domain vouches for it.
        for passed in ("format", "trust", "validity_period", "schema", "data_model"):
            assert check(result, passed)["result"] == "pass", (passed, result)
        trust = result["credential"]["issuer"]["trust"]
        assert trust["level"] == "domain"
        assert trust["domain"] == httpx.URL(credential["proof"][0]["verificationMethod"]).host
        if status == "valid":
            assert check(result, "status")["result"] == "skipped"  # no status entry
        else:
            assert check(result, "status")["result"] == "error"
            assert "1EdTechRevocationList" in check(result, "status")["detail"]
    assert site_.hits[path] == 2
    # One byte changed: the signature check fails, and nothing else is fetched for it.
    tampered = copy.deepcopy(credential)
    tampered["validFrom"] = tampered["validFrom"].replace("0", "1", 1)
    result = verify(client, tampered)
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"


def test_1edtech_fixture_without_its_controller_document_is_unknown(
    make_client: MakeClient, fixture_site: tuple[Site, Fetcher]
) -> None:
    """The key in the URL's fragment is not trusted by itself: the document must say so."""
    _site, fetcher = fixture_site
    client = make_client()
    client.app.state.ctx.fetcher = fetcher  # type: ignore[attr-defined]
    result = verify(client, load(OB30 / "simple.json"))
    assert result["status"] == "unknown", result
    assert check(result, "signature")["result"] == "error"


def test_1edtech_controller_document_with_another_key_fails(
    make_client: MakeClient, fixture_site: tuple[Site, Fetcher]
) -> None:
    site_, fetcher = fixture_site
    credential = load(OB30 / "simple.json")
    method = credential["proof"][0]["verificationMethod"]
    document = controller_document(method)
    document["verificationMethod"][0]["publicKeyMultibase"] = multikey.encode_public_key(
        ed25519.Ed25519PrivateKey.generate().public_key()
    )
    site_.routes[httpx.URL(method).path] = json_route(document)
    client = make_client()
    client.app.state.ctx.fetcher = fetcher  # type: ignore[attr-defined]
    result = verify(client, credential)
    assert result["status"] == "invalid", result
    assert check(result, "signature")["result"] == "fail"


def test_1edtech_sd_derived_credential_verifies(
    make_client: MakeClient, fixture_site: tuple[Site, Fetcher]
) -> None:
    site_, fetcher = fixture_site
    credential = load(OB30 / "sd" / "derivedcredential.json")
    serve_method(site_, credential)
    client = make_client()
    client.app.state.ctx.fetcher = fetcher  # type: ignore[attr-defined]
    result = verify(client, credential)
    assert check(result, "signature")["result"] == "pass", result
    assert "ecdsa-sd-2023" in check(result, "signature")["detail"]
    assert check(result, "issuer")["result"] == "pass"


SIGNED_VECTORS = sorted(
    [
        *(VECTORS / "vc-di-eddsa").glob("*/signed*.json"),
        *(VECTORS / "vc-di-eddsa").glob("proof-set-chain/signed*.json"),
        *(VECTORS / "vc-di-ecdsa").glob("ecdsa-*/signed*.json"),
    ]
)


@pytest.mark.parametrize(
    "path", SIGNED_VECTORS, ids=[str(p.relative_to(VECTORS)) for p in SIGNED_VECTORS]
)
def test_w3c_vectors_through_the_api_and_one_byte_changed(world: World, path: Path) -> None:
    """Genuine: `signature` passes (their did:key is not their https issuer: `issuer` fails).
    One byte changed in the document or in each proof value: `signature` fails."""
    vector = load(path)
    result = world.verify(vector)
    assert check(result, "signature")["result"] == "pass", result
    assert check(result, "issuer")["result"] == "fail"
    changes: list[Callable[[dict[str, Any]], None]] = [
        lambda c: c["credentialSubject"].update(alumniOf="The School of Exomples")
    ]
    for index in range(len(di.proofs_of(vector))):

        def flip(c: dict[str, Any], index: int = index) -> None:
            proof = di.proofs_of(c)[index]
            value = proof["proofValue"]
            middle = len(value) // 2
            proof["proofValue"] = (
                value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
            )

        changes.append(flip)
    for change in changes:
        tampered = copy.deepcopy(vector)
        change(tampered)
        result = world.verify(tampered)
        assert result["status"] == "invalid", result
        assert check(result, "signature")["result"] == "fail", result

"""The issuer, achievement and credential API over HTTP, checked against the database it writes."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft201909Validator, FormatChecker
from sqlalchemy import Engine, create_engine, func, select, text

from app.core.config import Settings
from app.core.db import Base
from app.credentials.models import Credential
from app.main import create_app
from app.models import load_all_models
from conftest import ADMIN, BASE_URL, STANDARDS, World, bearer, make_settings

PROBLEM = "application/problem+json"
JWT_ONLY_CLAIMS = ("iss", "jti", "sub", "nbf", "exp")
URN_UUID = re.compile(
    r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """A second, independent connection to the app's database: what was really written."""
    engine = create_engine(settings.database_url)
    yield engine
    engine.dispose()


def credential_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Credential)) or 0)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture(scope="module")
def ob3_validator() -> Draft201909Validator:
    schema = json.loads((STANDARDS / "ob3/schema/achievementcredential.json").read_text("utf-8"))
    return Draft201909Validator(schema, format_checker=FormatChecker())


def payload_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- operator authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "Bearer "},
        {"Authorization": ADMIN["Authorization"] + "x"},
    ],
    ids=["missing", "wrong", "basic", "empty", "longer"],
)
def test_operator_routes_need_the_admin_token(client: TestClient, headers: dict[str, str]) -> None:
    for method, path, body in (
        ("POST", "/api/v1/issuers", {"name": "X", "url": "https://x.example"}),
        ("GET", "/api/v1/issuers", None),
        ("GET", "/api/v1/issuers/anything", None),
        ("POST", "/api/v1/issuers/anything/api-keys", None),
    ):
        response = client.request(method, path, json=body, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/v1/issuers", headers=ADMIN).json() == []


def test_an_issuer_key_is_not_an_operator_token_and_vice_versa(world: World) -> None:
    key = world.issuer()["api_key"]["key"]
    assert_problem(world.client.get("/api/v1/issuers", headers=bearer(key)), 401)
    response = world.client.get("/api/v1/achievements", headers=ADMIN)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(world.client.get("/api/v1/credentials"), 401)


# --- issuers -----------------------------------------------------------------------------------


def test_issuer_slug_is_derived_from_the_name_and_made_unique(world: World) -> None:
    first = world.issuer(name="Données & Co. Académie")["issuer"]
    assert first["slug"] == "donnees-co-academie"
    second = world.issuer(name="Données & Co. Académie")["issuer"]
    assert second["slug"] == "donnees-co-academie-2"
    assert first["id"] == "did:web:testserver:issuers:donnees-co-academie"
    assert first["profile_url"] == f"{BASE_URL}/issuers/donnees-co-academie"
    assert first["did_document_url"] == f"{BASE_URL}/issuers/donnees-co-academie/did.json"
    assert first["jwks_url"] == f"{BASE_URL}/issuers/donnees-co-academie/jwks.json"
    listed = world.client.get("/api/v1/issuers", headers=ADMIN).json()
    assert [i["slug"] for i in listed] == ["donnees-co-academie", "donnees-co-academie-2"]
    one = world.client.get("/api/v1/issuers/donnees-co-academie", headers=ADMIN)
    assert one.status_code == 200
    assert one.json()["keys"] == first["keys"]


def test_duplicate_explicit_slug_is_a_conflict(world: World) -> None:
    world.issuer(slug="acme")
    response = world.client.post(
        "/api/v1/issuers",
        json={"name": "Other", "url": "https://other.example", "slug": "acme"},
        headers=ADMIN,
    )
    assert_problem(response, 409)
    assert len(world.client.get("/api/v1/issuers", headers=ADMIN).json()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://x.example"},
        {"name": "X"},
        {"name": "X", "url": "not a url"},
        {"name": "X", "url": "https://x.example", "slug": "Not_A_Slug"},
        {"name": "X", "url": "https://x.example", "algorithm": "HS256"},
        {"name": "X", "url": "https://x.example", "email": "nope"},
        {"name": "X", "url": "https://x.example", "unexpected": 1},
        {"name": "   ", "url": "https://x.example"},
    ],
)
def test_invalid_issuer_bodies_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post("/api/v1/issuers", json=body, headers=ADMIN), 422)
    assert client.get("/api/v1/issuers", headers=ADMIN).json() == []


def test_unknown_issuer_is_404(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/issuers/nobody", headers=ADMIN), 404)
    assert_problem(client.post("/api/v1/issuers/nobody/api-keys", headers=ADMIN), 404)
    for path in ("/issuers/nobody", "/issuers/nobody/did.json", "/issuers/nobody/jwks.json"):
        assert_problem(client.get(path), 404)


@pytest.mark.parametrize(
    ("algorithm", "kty", "crv"),
    [("ES256", "EC", "P-256"), ("EdDSA", "OKP", "Ed25519"), ("RS256", "RSA", None)],
)
def test_issuer_keys_are_published_and_sign_its_credentials(
    world: World, algorithm: str, kty: str, crv: str | None
) -> None:
    created = world.issuer(algorithm=algorithm)
    issuer, key = created["issuer"], created["api_key"]["key"]
    assert issuer["algorithm"] == algorithm
    assert len(issuer["keys"]) == 1
    kid = issuer["keys"][0]["kid"]
    assert kid.startswith(issuer["id"] + "#")

    did_response = world.client.get(f"/issuers/{issuer['slug']}/did.json")
    assert did_response.status_code == 200
    assert did_response.headers["content-type"].startswith("application/did+json")
    did = did_response.json()
    assert did["id"] == issuer["id"]
    assert "https://www.w3.org/ns/did/v1" in did["@context"]
    [method] = did["verificationMethod"]
    assert method["id"] == kid
    assert method["controller"] == issuer["id"]
    assert method["publicKeyJwk"]["kty"] == kty
    assert method["publicKeyJwk"].get("crv") == crv
    assert not {"d", "p", "q", "dp", "dq", "qi"} & method["publicKeyJwk"].keys()
    assert did["assertionMethod"] == [kid]

    jwks = world.client.get(f"/issuers/{issuer['slug']}/jwks.json").json()
    [jwk] = jwks["keys"]
    assert jwk["kid"] == kid
    assert jwk["kty"] == kty
    assert jwk["alg"] == algorithm
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()

    achievement = world.achievement(key)
    token = world.credential(key, achievement["uuid"])["jwt"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "kid": kid, "typ": "JWT"}
    # An independent verifier (PyJWT) accepts the signature with the published key.
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[algorithm],
        options={"verify_aud": False},
    )
    assert claims["iss"] == issuer["id"]
    assert world.verify(token)["verified"] is True


# --- API keys ----------------------------------------------------------------------------------


def test_api_keys_are_shown_once_and_revocation_is_immediate(world: World, db: Engine) -> None:
    created = world.issuer(slug="acme")
    first = created["api_key"]
    assert first["key"].startswith("mck_")
    assert first["key"].startswith(first["prefix"])
    assert first["revoked_at"] is None

    response = world.client.post(
        "/api/v1/issuers/acme/api-keys", json={"name": "CI"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    second = response.json()
    assert second["name"] == "CI"
    assert second["key"].startswith("mck_")
    assert second["key"] != first["key"]
    # A body is optional.
    third = world.client.post("/api/v1/issuers/acme/api-keys", headers=ADMIN)
    assert third.status_code == 201, third.text

    listing = world.client.get("/api/v1/issuers/acme/api-keys", headers=ADMIN)
    assert listing.status_code == 200
    assert [k["id"] for k in listing.json()] == [first["id"], second["id"], third.json()["id"]]
    for item in listing.json():
        assert "key" not in item
    for secret in (first["key"], second["key"], third.json()["key"]):
        assert secret not in listing.text
        assert secret not in world.client.get("/api/v1/issuers/acme", headers=ADMIN).text
    # Nor is any secret stored: only its hash.
    with db.connect() as conn:
        dump = str(conn.execute(text("SELECT * FROM api_keys")).all())
    assert first["key"] not in dump
    assert second["key"] not in dump
    assert hashlib.sha256(first["key"].encode()).hexdigest() in dump

    assert (
        world.client.get("/api/v1/achievements", headers=bearer(second["key"])).status_code == 200
    )
    revoked = world.client.delete(f"/api/v1/issuers/acme/api-keys/{second['id']}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    response = world.client.get("/api/v1/achievements", headers=bearer(second["key"]))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    # The other keys keep working; revoking twice is a conflict; unknown keys are 404.
    assert world.client.get("/api/v1/achievements", headers=bearer(first["key"])).status_code == 200
    again = world.client.delete(f"/api/v1/issuers/acme/api-keys/{second['id']}", headers=ADMIN)
    assert_problem(again, 409)
    missing = world.client.delete(f"/api/v1/issuers/acme/api-keys/{uuid.uuid4()}", headers=ADMIN)
    assert_problem(missing, 404)
    # Another issuer's key id is not found under this slug.
    other = world.issuer(slug="other")["api_key"]
    cross = world.client.delete(f"/api/v1/issuers/acme/api-keys/{other['id']}", headers=ADMIN)
    assert_problem(cross, 404)


# --- achievements ------------------------------------------------------------------------------


def test_achievement_create_get_and_public_document(world: World) -> None:
    created = world.issuer()
    key = created["api_key"]["key"]
    achievement = world.achievement(key, criteria={"id": "https://academy.example/criteria"})
    assert achievement["id"] == f"{BASE_URL}/achievements/{achievement['uuid']}"
    assert achievement["issuer"] == created["issuer"]["id"]
    assert achievement["criteria"] == {"id": "https://academy.example/criteria"}
    assert achievement["tags"] == ["SQL", "data visualisation"]
    document = achievement["achievement"]
    assert document["type"] == ["Achievement"]
    assert document["achievementType"] == "MicroCredential"
    assert document["alignment"][0]["targetName"] == "Data Scientists"
    assert document["alignment"][0]["targetCode"] == "15-2051.00"

    got = world.client.get(f"/api/v1/achievements/{achievement['uuid']}", headers=bearer(key))
    assert got.status_code == 200
    assert got.json() == achievement

    public = world.client.get(f"/achievements/{achievement['uuid']}")
    assert public.status_code == 200
    assert public.json()["id"] == achievement["id"]
    assert public.json()["creator"]["id"] == created["issuer"]["id"]


def test_achievements_are_listed_a_page_at_a_time(world: World) -> None:
    key = world.issuer()["api_key"]["key"]
    made = [world.achievement(key, name=f"Badge {n}")["uuid"] for n in range(5)]
    other_key = world.issuer(slug="other")["api_key"]["key"]
    world.achievement(other_key, name="Not mine")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = world.client.get("/api/v1/achievements", params=params, headers=bearer(key)).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [a["uuid"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == made
    everything = world.client.get("/api/v1/achievements", headers=bearer(key)).json()
    assert [a["uuid"] for a in everything["items"]] == made
    assert everything["next_cursor"] is None

    assert_problem(world.client.get("/api/v1/achievements?cursor=bogus", headers=bearer(key)), 400)
    assert_problem(world.client.get("/api/v1/achievements?limit=0", headers=bearer(key)), 422)
    assert_problem(world.client.get("/api/v1/achievements?limit=201", headers=bearer(key)), 422)


def test_another_issuers_achievement_is_not_found(world: World) -> None:
    mine = world.issuer()["api_key"]["key"]
    theirs = world.issuer(slug="theirs")["api_key"]["key"]
    achievement = world.achievement(theirs)
    response = world.client.get(f"/api/v1/achievements/{achievement['uuid']}", headers=bearer(mine))
    assert_problem(response, 404)
    response = world.client.get(f"/api/v1/achievements/{uuid.uuid4()}", headers=bearer(mine))
    assert_problem(response, 404)
    response = world.client.get("/api/v1/achievements/not-a-uuid", headers=bearer(mine))
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "change",
    [
        {"criteria": {}},
        {"criteria": {"narrative": "   "}},
        {"criteria": {"id": "not a url"}},
        {"criteria": {"narrative": "x", "other": "y"}},
        {"achievement_type": "Trophy"},
        {"achievement_type": "ext:"},
        {"name": ""},
        {"description": None},
        {"alignments": [{"target_name": "X"}]},
        {"tags": [""]},
        {"tags": "SQL"},
        {"image": "ftp://x.example/a.png"},
    ],
)
def test_invalid_achievements_are_422(world: World, change: dict[str, Any]) -> None:
    key = world.issuer()["api_key"]["key"]
    body = {
        "name": "SQL",
        "description": "Writes SQL.",
        "criteria": {"narrative": "Passed."},
        **change,
    }
    assert_problem(world.client.post("/api/v1/achievements", json=body, headers=bearer(key)), 422)
    assert world.client.get("/api/v1/achievements", headers=bearer(key)).json()["items"] == []


def test_extension_achievement_types_and_url_only_criteria_are_accepted(world: World) -> None:
    key = world.issuer()["api_key"]["key"]
    made = world.achievement(
        key, achievement_type="ext:Bootcamp", criteria={"id": "https://x.example/c"}, alignments=[]
    )
    assert made["achievement_type"] == "ext:Bootcamp"
    assert "alignment" not in made["achievement"]


# --- credentials -------------------------------------------------------------------------------

CREDENTIAL_FIELDS = {"id", "url", "jwt", "credential", "qr_svg_url", "qr_png_url"}


def test_issued_credential_body_and_schema(
    world: World, ob3_validator: Draft201909Validator, db: Engine
) -> None:
    issuer = world.issuer(
        email="registrar@academy.example",
        description="Evening courses in data.",
        image="https://academy.example/logo.png",
    )
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key, image="https://academy.example/sql.png")
    issued = world.credential(
        key,
        achievement["uuid"],
        evidence=[{"id": "https://academy.example/work/1", "name": "Final project"}],
    )
    assert issued.keys() >= CREDENTIAL_FIELDS
    url = f"{BASE_URL}/credentials/{issued['id']}"
    assert issued["url"] == url
    assert issued["qr_svg_url"] == f"{url}/qr.svg"
    assert issued["qr_png_url"] == f"{url}/qr.png"
    credential = issued["credential"]
    assert credential["id"] == url
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"]["id"] == issuer["issuer"]["id"]
    assert credential["issuer"]["name"] == "Data Academy"
    assert credential["evidence"][0]["name"] == "Final project"
    assert credential["issuer"]["email"] == "registrar@academy.example"
    assert credential["credentialSubject"]["achievement"]["image"]["id"] == (
        "https://academy.example/sql.png"
    )

    errors = [e.message for e in ob3_validator.iter_errors(credential)]
    assert errors == []
    claims = payload_of(issued["jwt"])
    assert claims["iss"] == issuer["issuer"]["id"]
    assert claims["jti"] == url
    assert claims["sub"] == credential["credentialSubject"]["id"]
    assert claims["nbf"] == int(datetime.fromisoformat(credential["validFrom"]).timestamp())
    assert "exp" not in claims
    without_jwt_claims = {k: v for k, v in claims.items() if k not in JWT_ONLY_CLAIMS}
    assert without_jwt_claims == credential
    assert [e.message for e in ob3_validator.iter_errors(without_jwt_claims)] == []

    # The Location header names the credential; the row holds the JWT exactly as returned.
    with db.connect() as conn:
        stored = conn.execute(select(Credential.jwt, Credential.subject_id)).one()
    assert stored.jwt == issued["jwt"]
    assert stored.subject_id == claims["sub"]


def test_recipient_email_is_only_ever_salted_and_hashed(world: World, db: Engine) -> None:
    email = "amara.okafor@example.com"
    _issuer, issued = world.issued(recipient={"email": "Amara.Okafor@Example.com", "name": "Amara"})
    token, credential = issued["jwt"], issued["credential"]
    for blob in (token, json.dumps(payload_of(token)), json.dumps(issued)):
        assert email not in blob.lower()
    subject = credential["credentialSubject"]
    [hashed] = [i for i in subject["identifier"] if i["identityType"] == "emailAddress"]
    assert hashed["hashed"] is True
    assert hashed["type"] == "IdentityObject"
    salt = hashed["salt"]
    assert salt
    assert len(salt) >= 16
    expected = "sha256$" + hashlib.sha256((email + salt).encode()).hexdigest()
    assert hashed["identityHash"] == expected
    assert URN_UUID.match(subject["id"]), subject["id"]

    # Nothing in the database holds the address either: every column of every table.
    load_all_models()
    with db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump = str(conn.execute(select(table)).all()).lower()
            assert email not in dump, table.name
            assert "amara.okafor@" not in dump, table.name
        row = conn.execute(select(Credential.recipient_hash, Credential.recipient_salt)).one()
    assert row.recipient_hash == expected
    assert row.recipient_salt == salt

    listed = world.client.get("/api/v1/credentials", headers=bearer(_issuer["api_key"]["key"]))
    assert email not in listed.text.lower()


def test_subject_id_is_a_fresh_urn_uuid_without_did_or_url(world: World) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    a = world.credential(key, achievement)["credential"]["credentialSubject"]["id"]
    b = world.credential(key, achievement)["credential"]["credentialSubject"]["id"]
    c = world.credential(key, achievement, recipient={"name": "No Email", "did": "did:key:z6Mk1"})
    assert URN_UUID.match(a)
    assert URN_UUID.match(b)
    assert a != b
    subject = c["credential"]["credentialSubject"]
    assert subject["id"] == "did:key:z6Mk1"
    assert [i["identityType"] for i in subject["identifier"]] == ["name"]


@pytest.mark.parametrize(
    ("recipient", "subject_id"),
    [
        ({"did": "did:example:amara"}, "did:example:amara"),
        ({"url": "https://amara.example/profile"}, "https://amara.example/profile"),
        (
            {"email": "amara@example.com", "did": "did:web:amara.example"},
            "did:web:amara.example",
        ),
    ],
)
def test_recipient_by_did_or_url(
    world: World, recipient: dict[str, str], subject_id: str, ob3_validator: Draft201909Validator
) -> None:
    _issuer, issued = world.issued(recipient=recipient)
    subject = issued["credential"]["credentialSubject"]
    assert subject["id"] == subject_id
    assert payload_of(issued["jwt"])["sub"] == subject_id
    if "email" not in recipient:
        assert "identifier" not in subject
    assert list(ob3_validator.iter_errors(issued["credential"])) == []
    assert world.verify(issued["jwt"])["verified"] is True


def test_validity_dates_become_nbf_and_exp(
    world: World, ob3_validator: Draft201909Validator
) -> None:
    start = datetime(2030, 1, 1, 9, 0, 0, 123456, tzinfo=UTC)
    end = datetime(2032, 1, 1, 9, 0, tzinfo=UTC)
    _issuer, issued = world.issued(
        valid_from=start.isoformat(), valid_until="2032-01-01T10:00:00+01:00"
    )
    credential = issued["credential"]
    assert credential["validFrom"] == "2030-01-01T09:00:00Z"
    assert credential["validUntil"] == "2032-01-01T09:00:00Z"
    claims = payload_of(issued["jwt"])
    assert claims["nbf"] == int(start.replace(microsecond=0).timestamp())
    assert claims["exp"] == int(end.timestamp())
    assert list(ob3_validator.iter_errors(credential)) == []
    assert world.verify(issued["jwt"])["status"] == "not_yet_valid"


def test_idempotency_key_replays_and_refuses_another_body(world: World, db: Engine) -> None:
    key = world.issuer()["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    body = {"achievement_id": achievement, "recipient": {"email": "amara@example.com"}}
    headers = {**bearer(key), "Idempotency-Key": "order-42"}
    first = world.client.post("/api/v1/credentials", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert first.headers["location"] == first.json()["url"]

    again = world.client.post("/api/v1/credentials", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    # The recipient's management link is shown once: only its hash is stored, so no replay.
    assert first.json()["manage_url"] is not None
    assert again.json() == {**first.json(), "manage_url": None}
    assert credential_count(db) == 1

    other = {**body, "recipient": {"email": "someone-else@example.com"}}
    mismatch = world.client.post("/api/v1/credentials", json=other, headers=headers)
    assert_problem(mismatch, 422)
    assert credential_count(db) == 1

    # Keys are per issuer, and a new key issues a new credential.
    fresh = world.client.post(
        "/api/v1/credentials", json=body, headers={**bearer(key), "Idempotency-Key": "order-43"}
    )
    assert fresh.status_code == 201
    assert fresh.json()["id"] != first.json()["id"]
    other_key = world.issuer(slug="other")["api_key"]["key"]
    other_achievement = world.achievement(other_key)["uuid"]
    theirs = world.client.post(
        "/api/v1/credentials",
        json={**body, "achievement_id": other_achievement},
        headers={**bearer(other_key), "Idempotency-Key": "order-42"},
    )
    assert theirs.status_code == 201, theirs.text
    assert credential_count(db) == 3


def test_credentials_of_another_issuer_are_not_found(world: World) -> None:
    _mine, issued = world.issued()
    other = world.issuer(slug="other")["api_key"]["key"]
    own = world.client.get(
        f"/api/v1/credentials/{issued['id']}", headers=bearer(_mine["api_key"]["key"])
    )
    assert own.status_code == 200
    assert own.json()["jwt"] == issued["jwt"]
    assert_problem(
        world.client.get(f"/api/v1/credentials/{issued['id']}", headers=bearer(other)), 404
    )
    assert_problem(
        world.client.get(f"/api/v1/credentials/{uuid.uuid4()}", headers=bearer(other)), 404
    )
    assert_problem(world.client.get("/api/v1/credentials/xyz", headers=bearer(other)), 404)
    assert world.client.get("/api/v1/credentials", headers=bearer(other)).json()["items"] == []


def test_credentials_are_listed_by_achievement_a_page_at_a_time(world: World) -> None:
    key = world.issuer()["api_key"]["key"]
    sql = world.achievement(key)["uuid"]
    python = world.achievement(key, name="Python")["uuid"]
    wanted = [world.credential(key, sql)["id"] for _ in range(3)]
    world.credential(key, python)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"achievement_id": sql, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = world.client.get("/api/v1/credentials", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert all(item["achievement_id"] == sql for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == wanted  # oldest first: the order of issuance, even within one second
    everything = world.client.get("/api/v1/credentials", headers=bearer(key)).json()
    assert [c["id"] for c in everything["items"]][:3] == wanted
    assert len(everything["items"]) == 4
    assert everything["items"][0]["jwt"]
    subject = everything["items"][-1]["subject_id"]
    by_subject = world.client.get(
        "/api/v1/credentials", params={"subject_id": subject}, headers=bearer(key)
    ).json()
    assert [c["subject_id"] for c in by_subject["items"]] == [subject]
    none = world.client.get(
        "/api/v1/credentials", params={"achievement_id": str(uuid.uuid4())}, headers=bearer(key)
    ).json()
    assert none == {"items": [], "next_cursor": None}
    assert_problem(
        world.client.get("/api/v1/credentials?achievement_id=nope", headers=bearer(key)), 422
    )
    assert_problem(world.client.get("/api/v1/credentials?cursor=%%%", headers=bearer(key)), 400)


def test_credentials_are_filtered_by_issue_time(world: World) -> None:
    issuer, issued = world.issued()
    key = issuer["api_key"]["key"]
    now = datetime.now(UTC)

    def ids(**params: str) -> list[str]:
        response = world.client.get("/api/v1/credentials", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    past, future = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    assert ids(issued_after=past) == [issued["id"]]
    assert ids(issued_before=future) == [issued["id"]]
    assert ids(issued_after=future) == []
    assert ids(issued_before=past) == []
    # A naive instant is ambiguous: refused as invalid, not a server error.
    naive = world.client.get(
        "/api/v1/credentials", params={"issued_after": "2020-01-01T00:00:00"}, headers=bearer(key)
    )
    assert_problem(naive, 422)


# --- failed issuance leaves nothing behind -----------------------------------------------------


@pytest.fixture
def issuer_key(world: World) -> tuple[str, str]:
    key = world.issuer()["api_key"]["key"]
    return key, world.achievement(key)["uuid"]


def test_malformed_json_is_400(client: TestClient, issuer_key: tuple[str, str], db: Engine) -> None:
    key, _ = issuer_key
    response = client.post(
        "/api/v1/credentials",
        content=b'{"achievement_id": ',
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert credential_count(db) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "a string",
        {"achievement_id": 123, "recipient": {"email": "a@example.com"}},
        {"achievement_id": "not-a-uuid", "recipient": {"email": "a@example.com"}},
        {"achievement_id": "ACHIEVEMENT", "recipient": "a@example.com"},
        {"achievement_id": "ACHIEVEMENT", "recipient": {}},
        {"achievement_id": "ACHIEVEMENT", "recipient": {"name": "Only a name"}},
        {"achievement_id": "ACHIEVEMENT", "recipient": {"email": "not-an-email"}},
        {"achievement_id": "ACHIEVEMENT", "recipient": {"did": "not-a-did"}},
        {"achievement_id": "ACHIEVEMENT", "recipient": {"url": "ftp://x.example/a"}},
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"did": "did:example:a", "url": "https://a.example/"},
        },
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"email": "a@example.com"},
            "valid_from": "2030-01-01T00:00:00Z",
            "valid_until": "2029-01-01T00:00:00Z",
        },
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"email": "a@example.com"},
            "valid_from": "2030-01-01T00:00:00",
        },
        # validUntil before the default validFrom (now): a credential that ends before it begins.
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"email": "a@example.com"},
            "valid_until": "2020-01-01T00:00:00Z",
        },
        # Distinct instants that fall in the same second once truncated to whole seconds.
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"email": "a@example.com"},
            "valid_from": "2030-01-01T00:00:00.1Z",
            "valid_until": "2030-01-01T00:00:00.9Z",
        },
        {
            "achievement_id": "ACHIEVEMENT",
            "recipient": {"email": "a@example.com"},
            "evidence": [{}],
        },
        {"achievement_id": "ACHIEVEMENT", "recipient": {"email": "a@example.com"}, "extra": 1},
    ],
)
def test_wrong_types_are_422(
    client: TestClient, issuer_key: tuple[str, str], db: Engine, body: Any
) -> None:
    key, achievement = issuer_key
    if isinstance(body, dict) and body.get("achievement_id") == "ACHIEVEMENT":
        body = {**body, "achievement_id": achievement}
    response = client.post("/api/v1/credentials", json=body, headers=bearer(key))
    problem = assert_problem(response, 422)
    assert problem["errors"]
    assert credential_count(db) == 0


def test_unknown_or_foreign_achievement_is_404(
    world: World, issuer_key: tuple[str, str], db: Engine
) -> None:
    key, _ = issuer_key
    other_key = world.issuer(slug="other")["api_key"]["key"]
    foreign = world.achievement(other_key)["uuid"]
    for achievement_id in (str(uuid.uuid4()), foreign):
        response = world.client.post(
            "/api/v1/credentials",
            json={"achievement_id": achievement_id, "recipient": {"email": "a@example.com"}},
            headers={**bearer(key), "Idempotency-Key": f"k-{achievement_id}"},
        )
        assert_problem(response, 404)
    assert credential_count(db) == 0


def test_issuance_needs_a_valid_api_key(
    client: TestClient, issuer_key: tuple[str, str], db: Engine
) -> None:
    _key, achievement = issuer_key
    body = {"achievement_id": achievement, "recipient": {"email": "a@example.com"}}
    for headers in ({}, bearer("mck_not-a-key"), ADMIN):
        response = client.post("/api/v1/credentials", json=body, headers=headers)
        assert_problem(response, 401)
        assert "www-authenticate" in response.headers
    assert credential_count(db) == 0


def test_bodies_over_the_limit_are_413(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "keys", max_body_bytes=2048)
    engine = create_engine(database_url)
    try:
        with TestClient(create_app(settings), base_url=BASE_URL) as client:
            world = World(client)
            key = world.issuer()["api_key"]["key"]
            achievement = world.achievement(key)["uuid"]
            big = {
                "achievement_id": achievement,
                "recipient": {"email": "a@example.com"},
                "evidence": [{"narrative": "x" * 3000}],
            }
            response = client.post("/api/v1/credentials", json=big, headers=bearer(key))
            assert_problem(response, 413)
            assert credential_count(engine) == 0

            # Without a Content-Length (chunked), the limit holds while the body streams in.
            def chunks() -> Iterator[bytes]:
                data = json.dumps(big).encode()
                for i in range(0, len(data), 512):
                    yield data[i : i + 512]

            response = client.post(
                "/api/v1/credentials",
                content=chunks(),
                headers={**bearer(key), "Content-Type": "application/json"},
            )
            assert_problem(response, 413)
            assert credential_count(engine) == 0

            # A body under the limit is fine.
            small = {**big, "evidence": [{"narrative": "x" * 100}]}
            assert (
                client.post("/api/v1/credentials", json=small, headers=bearer(key)).status_code
                == 201
            )
            assert credential_count(engine) == 1
    finally:
        engine.dispose()


# --- not found ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/credentials/xyz",
        "/credentials/xyz/qr.svg",
        "/credentials/xyz/qr.png",
        "/achievements/xyz",
        "/credentials/00000000-0000-4000-8000-000000000000",
        "/credentials/00000000-0000-4000-8000-000000000000/qr.svg",
        "/credentials/00000000-0000-4000-8000-000000000000/qr.png",
        "/achievements/00000000-0000-4000-8000-000000000000",
        "/issuers/nobody",
        "/no/such/route",
        "/api/v1/nothing",
    ],
)
def test_unknown_public_resources_are_404_problems(client: TestClient, path: str) -> None:
    for accept in ("application/json", "*/*"):
        assert_problem(client.get(path, headers={"Accept": accept}), 404)
    # A browser gets a page to read instead, except under /api/ (always problem details).
    browser = client.get(path, headers={"Accept": "text/html"})
    assert browser.status_code == 404
    if path.startswith("/api/"):
        assert_problem(browser, 404)
    else:
        assert browser.headers["content-type"].startswith("text/html")


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    response = client.delete("/api/v1/achievements")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM)


# --- concurrent requests -----------------------------------------------------------------------


def test_concurrent_retries_with_one_idempotency_key_issue_once(world: World, db: Engine) -> None:
    key = world.issuer()["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    body = {"achievement_id": achievement, "recipient": {"email": "amara@example.com"}}
    headers = {**bearer(key), "Idempotency-Key": "retry-storm"}

    def post(_: int) -> tuple[int, str]:
        response = world.client.post("/api/v1/credentials", json=body, headers=headers)
        return response.status_code, response.json().get("id", response.text)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(16)))
    assert sorted(status for status, _ in results) == [200] * 15 + [201], results
    assert len({credential_id for _, credential_id in results}) == 1
    assert credential_count(db) == 1


def test_concurrent_issuers_with_one_slug_conflict_cleanly(
    world: World, settings: Settings
) -> None:
    def create(body: dict[str, Any]) -> int:
        response = world.client.post("/api/v1/issuers", json=body, headers=ADMIN)
        if response.status_code != 201:
            assert_problem(response, 409)
        return response.status_code

    explicit = {"name": "Same", "url": "https://same.example", "slug": "same"}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, [explicit] * 8))
    assert sorted(statuses) == [201] + [409] * 7
    # Derived slugs: every request either gets its own slug or a 409 to retry; never a 500.
    derived = {"name": "Derived", "url": "https://derived.example"}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, [derived] * 8))
    assert set(statuses) <= {201, 409}
    issuers = world.client.get("/api/v1/issuers", headers=ADMIN).json()
    assert len(issuers) == 1 + statuses.count(201)
    assert len({i["slug"] for i in issuers}) == len(issuers)
    # A refused request leaves no private key file behind.
    assert len(list(settings.keys_dir.glob("*.pem"))) == len(issuers)

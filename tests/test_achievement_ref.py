"""`achievement_id` takes the achievement's URL (the `id` the API returns) as well as its uuid,
everywhere an achievement is named: single issuance, batch JSON, CSV, the batch's
`?achievement_id=` and the credential list's filter. Another origin, another path or a malformed
value is a 422 naming the field, never a 500 and never a silent match.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from conftest import BASE_URL, World, bearer

RECIPIENT = {"email": "amara@example.com", "name": "Amara Okafor"}


def _issuer(world: World) -> tuple[str, dict[str, Any]]:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    return key, world.achievement(key)


def _issue(client: TestClient, key: str, achievement_id: Any, **headers: str) -> Any:
    return client.post(
        "/api/v1/credentials",
        json={"achievement_id": achievement_id, "recipient": RECIPIENT},
        headers={**bearer(key), **headers},
    )


def test_the_achievements_own_id_names_it(world: World, client: TestClient) -> None:
    key, achievement = _issuer(world)
    assert achievement["id"] == f"{BASE_URL}/achievements/{achievement['uuid']}"
    for ref in (
        achievement["id"],
        achievement["uuid"],
        achievement["uuid"].upper(),
        achievement["id"] + "/",
        achievement["id"].replace("http://testserver", "HTTP://TestServer:80"),
        f"  {achievement['id']}  ",
        f"urn:uuid:{achievement['uuid']}",  # as pydantic's uuid type took it before
    ):
        response = _issue(client, key, ref)
        assert response.status_code == 201, (ref, response.text)
        issued = response.json()
        assert issued["achievement_id"] == achievement["uuid"]
        signed = issued["credential"]["credentialSubject"]["achievement"]["id"]
        assert signed == achievement["id"]


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("https://evil.example/achievements/{uuid}", "not an achievement URL of this service"),
        ("https://testserver/achievements/{uuid}", "not an achievement URL of this service"),
        ("http://testserver:8443/achievements/{uuid}", "not an achievement URL of this service"),
        ("http://testserver/x/achievements/{uuid}", "not an achievement URL of this service"),
        ("http://testserver/credentials/{uuid}", "is not an achievement URL"),
        ("http://testserver/achievements/{uuid}?v=1", "is not an achievement URL"),
        ("http://testserver/achievements/{uuid}#x", "is not an achievement URL"),
        ("http://testserver/achievements/not-a-uuid", "does not end in an achievement uuid"),
        ("http://testserver:99999/achievements/{uuid}", "invalid port"),
        ("http://testserver:x/achievements/{uuid}", "invalid port"),
        ("ftp://testserver/achievements/{uuid}", "is not an achievement URL"),
        ("{uuid}0", "must be the achievement's uuid or its URL"),
        ("", "must be the achievement's uuid or its URL"),
        (12345, "must be a string"),
        (None, "must be a string"),
        (["{uuid}"], "must be a string"),
    ],
)
def test_other_values_are_a_422_naming_the_field(
    world: World, client: TestClient, ref: Any, fragment: str
) -> None:
    key, achievement = _issuer(world)
    if isinstance(ref, str):
        ref = ref.format(uuid=achievement["uuid"])
    elif isinstance(ref, list):
        ref = [r.format(uuid=achievement["uuid"]) for r in ref]
    response = _issue(client, key, ref)
    assert response.status_code == 422, response.text
    assert "achievement_id" in response.text
    assert fragment in response.text
    listed = client.get("/api/v1/credentials", headers=bearer(key)).json()
    assert listed["items"] == []  # nothing half-written


def test_idempotent_replays_see_the_uuid_and_the_url_as_one_request(
    world: World, client: TestClient
) -> None:
    key, achievement = _issuer(world)
    first = _issue(client, key, achievement["uuid"], **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    again = _issue(client, key, achievement["id"], **{"Idempotency-Key": "k1"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    foreign = achievement["id"].replace(BASE_URL, "https://evil.example")
    refused = _issue(client, key, foreign, **{"Idempotency-Key": "k1"})
    assert refused.status_code == 422, refused.text


def _batch(client: TestClient, key: str, *, query: str = "", **kwargs: Any) -> Any:
    return client.post(
        f"/api/v1/credentials/batch{query}",
        headers=bearer(key) | kwargs.pop("headers", {}),
        **kwargs,
    )


def _job_rows(client: TestClient, key: str, job_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}?rows=all", headers=bearer(key)).json()
        if job["state"] == "completed":
            rows: list[dict[str, Any]] = job["rows"]
            return rows
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


@pytest.fixture
def batch_client(settings: Any) -> Any:
    from app.main import create_app

    app = create_app(
        settings.model_copy(update={"job_poll_interval": 0.2, "background_workers": True})
    )
    with TestClient(app, base_url=BASE_URL) as c:
        yield c


def test_batch_json_and_csv_rows_and_the_default_take_the_url(batch_client: TestClient) -> None:
    world = World(batch_client)
    key, achievement = _issuer(world)
    foreign = achievement["id"].replace(BASE_URL, "https://evil.example")
    rows = [
        {"external_id": "a", "achievement_id": achievement["id"], "recipient": RECIPIENT},
        {"external_id": "b", "achievement_id": achievement["uuid"], "recipient": RECIPIENT},
        {"external_id": "c", "achievement_id": foreign, "recipient": RECIPIENT},
        {"external_id": "d", "achievement_id": "nonsense", "recipient": RECIPIENT},
        {"external_id": "e", "recipient": RECIPIENT},  # takes ?achievement_id=
    ]
    response = _batch(
        batch_client, key, query=f"?achievement_id={quote(achievement['id'])}", json=rows
    )
    assert response.status_code == 202, response.text
    refused = {r["row"]: r["error"] for r in response.json()["rows"]}
    assert set(refused) == {3, 4}
    assert "achievement_id" in refused[3]
    assert "not an achievement URL of this service" in refused[3]
    assert refused[4].startswith("achievement_id: ")
    assert refused[4].count("achievement_id") == 1
    done = _job_rows(batch_client, key, response.json()["id"])
    assert sorted(r["external_id"] for r in done if r["state"] == "issued") == ["a", "b", "e"]

    csv = (
        "external_id,email,achievement_id\n"
        f"x1,a@example.com,{achievement['id']}\n"
        f"x2,b@example.com,{foreign}\n"
        "x3,c@example.com,\n"
    )
    response = _batch(
        batch_client,
        key,
        query=f"?achievement_id={achievement['uuid']}",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    (refused_row,) = response.json()["rows"]
    assert refused_row["row"] == 2
    assert refused_row["error"].startswith("achievement_id: ")
    done = _job_rows(batch_client, key, response.json()["id"])
    assert sorted(r["external_id"] for r in done if r["state"] == "issued") == ["x1", "x3"]


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/achievements/{uuid}",
        "nonsense",
        "http://testserver:x/achievements/{uuid}",
    ],
)
def test_a_bad_batch_default_is_a_422(world: World, client: TestClient, value: str) -> None:
    key, achievement = _issuer(world)
    response = _batch(
        client,
        key,
        query=f"?achievement_id={quote(value.format(uuid=achievement['uuid']))}",
        json=[{"recipient": RECIPIENT}],
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "achievement_id" in response.json()["detail"]


def test_the_credential_list_filters_by_uuid_or_url(world: World, client: TestClient) -> None:
    key, achievement = _issuer(world)
    other = world.achievement(key, name="Other")
    mine = world.credential(key, achievement["uuid"])
    world.credential(key, other["uuid"])
    for ref in (achievement["uuid"], achievement["id"]):
        listed = client.get(f"/api/v1/credentials?achievement_id={quote(ref)}", headers=bearer(key))
        assert listed.status_code == 200, listed.text
        assert [c["id"] for c in listed.json()["items"]] == [mine["id"]]
    foreign = achievement["id"].replace(BASE_URL, "https://evil.example")
    refused = client.get(
        f"/api/v1/credentials?achievement_id={quote(foreign)}", headers=bearer(key)
    )
    assert refused.status_code == 422
    assert "achievement_id" in refused.text


def test_the_openapi_document_says_uuid_or_url(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    field = schemas["CredentialCreate"]["properties"]["achievement_id"]
    assert field["type"] == "string"
    assert "URL" in field["description"]

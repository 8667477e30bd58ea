"""Signing key lifecycle: rotation keeps every old credential verifying; compromise names the key.

Acceptance 4 of issue 3, over the real HTTP API and the real `microcred keys` commands.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from conftest import ADMIN, World, bearer, check

PROBLEM = "application/problem+json"


def cli_env(settings: Settings) -> dict[str, str]:
    """The MICROCRED_* environment of a command run against the same database and key store."""
    assert settings.admin_token is not None
    return {
        "MICROCRED_BASE_URL": settings.base_url,
        "MICROCRED_DATABASE_URL": settings.database_url,
        "MICROCRED_KEYS_DIR": str(settings.keys_dir),
        "MICROCRED_ADMIN_TOKEN": settings.admin_token.get_secret_value(),
        "MICROCRED_ENV": "development",
    }


def run_cli(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=cli_env(settings))


def keys_of(client: TestClient, slug: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/issuers/{slug}/keys", headers=ADMIN)
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()
    return keys


def rotate(client: TestClient, slug: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/issuers/{slug}/keys", json=body or None, headers=ADMIN)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def compromise(client: TestClient, slug: str, key_id: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/issuers/{slug}/keys/{key_id}/compromise", json=body or None, headers=ADMIN
    )


def header_kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def test_two_rotations_keep_every_credential_verifying_until_the_first_key_is_compromised(
    world: World,
) -> None:
    client = world.client
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(api_key)["uuid"]

    first = world.credential(api_key, achievement)
    key2 = rotate(client, slug)
    second = world.credential(api_key, achievement)
    key3 = rotate(client, slug)
    third = world.credential(api_key, achievement)

    keys = keys_of(client, slug)
    key1 = keys[0]
    assert [k["status"] for k in keys] == ["retired", "retired", "active"]
    assert [k["key_id"] for k in keys[1:]] == [key2["key_id"], key3["key_id"]]
    assert all(k["retired_at"] for k in keys[:2])
    # Each credential names the key that was active when it was signed.
    assert [header_kid(c["jwt"]) for c in (first, second, third)] == [k["kid"] for k in keys]

    for credential in (first, second, third):
        result = world.verify(credential["jwt"])
        assert result["verified"] is True, result
    did = client.get(f"/issuers/{slug}/did.json").json()
    jwks = client.get(f"/issuers/{slug}/jwks.json").json()
    newest_first = [k["kid"] for k in reversed(keys)]  # the active key first
    assert [m["id"] for m in did["verificationMethod"]] == newest_first
    assert did["assertionMethod"] == newest_first
    assert [k["kid"] for k in jwks["keys"]] == newest_first

    marked = compromise(client, slug, key1["key_id"])
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "compromised"
    assert marked.json()["compromised_at"]

    # The verifier's parsed-key cache already holds key 1: the status must still win.
    broken = world.verify(first["jwt"])
    assert broken["verified"] is False
    assert broken["status"] == "invalid"
    signature = check(broken, "signature")
    assert signature["result"] == "fail"
    assert key1["kid"] in signature["detail"]
    assert "compromised on 20" in signature["detail"]
    assert "can no longer be trusted" in signature["detail"]
    for credential in (second, third):
        result = world.verify(credential["jwt"])
        assert result["verified"] is True, result
    # Also by link and as JSON: every route goes through the same register.
    as_json = client.post("/api/v1/verify", json={"credential": first["credential"]}).json()
    assert as_json["verified"] is False

    # No longer published at all, so verifiers elsewhere refuse what it signed too (they read no
    # `revoked` marker); our own verifier named it above from the register.
    did = client.get(f"/issuers/{slug}/did.json").json()
    assert [m["id"] for m in did["verificationMethod"]] == [key3["kid"], key2["kid"]]
    assert did["assertionMethod"] == [key3["kid"], key2["kid"]]
    jwks = client.get(f"/issuers/{slug}/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [key3["kid"], key2["kid"]]
    assert "revoked" not in json.dumps([did, jwks])


def test_the_only_active_key_cannot_be_compromised_or_retired(world: World) -> None:
    client = world.client
    issuer = world.issuer()
    slug = issuer["issuer"]["slug"]
    [only] = keys_of(client, slug)

    for action in ("compromise", "retire"):
        response = client.post(
            f"/api/v1/issuers/{slug}/keys/{only['key_id']}/{action}", headers=ADMIN
        )
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "rotate first" in response.json()["detail"]
    assert keys_of(client, slug)[0]["status"] == "active"

    # Once a new key exists, the old one can go.
    new = rotate(client, slug)
    since = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    response = compromise(client, slug, only["key_id"], since=since.isoformat())
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["compromised_at"]) == since
    again = compromise(client, slug, only["key_id"])
    assert again.status_code == 409
    assert "already reported compromised" in again.json()["detail"]
    # The new key is now the only active one again.
    assert compromise(client, slug, new["key_id"]).status_code == 409
    retire = client.post(f"/api/v1/issuers/{slug}/keys/{new['key_id']}/retire", headers=ADMIN)
    assert retire.status_code == 409


def test_key_endpoints_refuse_bad_requests(world: World) -> None:
    client = world.client
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    [only] = keys_of(client, slug)
    rotate(client, slug)

    assert compromise(client, slug, "no-such-key").status_code == 404
    assert client.post("/api/v1/issuers/nobody/keys", headers=ADMIN).status_code == 404
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert compromise(client, slug, only["key_id"], since=future).status_code == 422
    naive = compromise(client, slug, only["key_id"], since="2026-01-01T00:00:00")
    assert naive.status_code == 422
    assert rotate_status(client, slug, {"algorithm": "HS256"}) == 422
    assert rotate_status(client, slug, {"unexpected": True}) == 422
    # An issuer's API key is not the operator's token.
    assert client.post(f"/api/v1/issuers/{slug}/keys", headers=bearer(api_key)).status_code == 401
    assert client.get(f"/api/v1/issuers/{slug}/keys").status_code == 401
    assert keys_of(client, slug)[0]["status"] == "retired"


def rotate_status(client: TestClient, slug: str, body: dict[str, Any]) -> int:
    return client.post(f"/api/v1/issuers/{slug}/keys", json=body, headers=ADMIN).status_code


def test_rotation_can_change_the_algorithm(world: World) -> None:
    client = world.client
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(api_key)["uuid"]
    before = world.credential(api_key, achievement)

    key = rotate(client, slug, algorithm="EdDSA")
    assert key["algorithm"] == "EdDSA"
    after = world.credential(api_key, achievement)
    assert jwt.get_unverified_header(after["jwt"])["alg"] == "EdDSA"
    assert client.get(f"/api/v1/issuers/{slug}", headers=ADMIN).json()["algorithm"] == "EdDSA"
    # Rotating again without an algorithm keeps the issuer's current one.
    assert rotate(client, slug)["algorithm"] == "EdDSA"
    for credential in (before, after):
        assert world.verify(credential["jwt"])["verified"] is True


def test_keys_commands(world: World, settings: Settings) -> None:
    issuer = world.issuer()
    slug, api_key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    achievement = world.achievement(api_key)["uuid"]
    first = world.credential(api_key, achievement)

    listed = run_cli(settings, "keys", "list", "--issuer", slug)
    assert listed.exit_code == 0, listed.output
    [key1] = json.loads(listed.stdout)

    refused = run_cli(settings, "keys", "compromise", "--issuer", slug, "--key", key1["key_id"])
    assert refused.exit_code == 2
    assert "rotate first" in refused.stderr

    rotated = run_cli(settings, "keys", "rotate", "--issuer", slug, "--algorithm", "RS256")
    assert rotated.exit_code == 0, rotated.output
    key2 = json.loads(rotated.stdout)
    assert key2["status"] == "active"
    assert key2["algorithm"] == "RS256"
    # The API signs with the key the command created (same database, same key store).
    second = world.credential(api_key, achievement)
    assert header_kid(second["jwt"]) == key2["kid"]

    marked = run_cli(
        settings,
        "keys",
        "compromise",
        "--issuer",
        slug,
        "--key",
        key1["key_id"],
        "--since",
        "2026-01-02T03:04:05Z",
    )
    assert marked.exit_code == 0, marked.output
    assert json.loads(marked.stdout)["compromised_at"].startswith("2026-01-02T03:04:05")

    listed = run_cli(settings, "keys", "list", "--issuer", slug)
    assert [k["status"] for k in json.loads(listed.stdout)] == ["compromised", "active"]
    failed = run_cli(settings, "verify", first["jwt"])
    assert failed.exit_code == 1
    assert (
        f"the key {key1['kid']} was reported compromised on 2026-01-02T03:04:05Z" in failed.stdout
    )
    assert run_cli(settings, "verify", second["jwt"]).exit_code == 0

    bad = run_cli(settings, "keys", "compromise", "--issuer", slug, "--key", "x", "--since", "soon")
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.stderr
    assert run_cli(settings, "keys", "rotate", "--issuer", "nobody").exit_code == 2


def test_retire_command_refuses_the_only_active_key(world: World, settings: Settings) -> None:
    slug = world.issuer()["issuer"]["slug"]
    [key] = keys_of(world.client, slug)
    refused = run_cli(settings, "keys", "retire", "--issuer", slug, "--key", key["key_id"])
    assert refused.exit_code == 2
    assert "rotate first" in refused.stderr
    rotate(world.client, slug)
    again = run_cli(settings, "keys", "retire", "--issuer", slug, "--key", key["key_id"])
    assert again.exit_code == 2
    assert "already retired" in again.stderr

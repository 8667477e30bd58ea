"""Revocation and suspension through Bitstring Status Lists: issuance, lifecycle, lists, verification."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.issuers.models import Issuer
from app.status import bitstring, shuffle
from app.status import service as status_service
from app.status.models import StatusPurpose
from conftest import World, bearer, check

JS_DIR = Path(__file__).resolve().parent / "js"


def _key(issuer: dict[str, Any]) -> str:
    key: str = issuer["api_key"]["key"]
    return key


def _entries(credential: dict[str, Any]) -> list[dict[str, Any]]:
    status = credential["credential"]["credentialStatus"]
    return status if isinstance(status, list) else [status]


def _change(
    client: TestClient, key: str, credential_id: str, action: str, reason: str = "test"
) -> Any:
    return client.post(
        f"/api/v1/credentials/{credential_id}/{action}",
        json={"reason": reason},
        headers=bearer(key),
    )


def _list_bits(client: TestClient, url: str) -> tuple[dict[str, Any], bytes]:
    path = url.removeprefix("http://testserver")
    response = client.get(path, headers={"Accept": "application/vc+jwt"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vc+jwt")
    payload = jwt.decode(response.text, options={"verify_signature": False})
    return payload, bitstring.decode(payload["credentialSubject"]["encodedList"])


def test_credentials_carry_one_revocation_entry_by_default(world: World) -> None:
    _issuer, credential = world.issued()
    status = credential["credential"]["credentialStatus"]
    assert isinstance(status, dict), (
        "one entry keeps the credential valid against the strict OB 3.0 schema"
    )
    assert status["type"] == "BitstringStatusListEntry"
    assert status["statusPurpose"] == "revocation"
    assert status["statusListCredential"] == "http://testserver/status/data-academy/revocation/1"
    assert status["id"] == f"{status['statusListCredential']}#{status['statusListIndex']}"
    assert 0 <= int(status["statusListIndex"]) < bitstring.MIN_LIST_SIZE
    result = world.verify(credential["jwt"])
    assert result["status"] == "valid"
    assert check(result, "status")["result"] == "pass"


def test_revoke_is_final_and_shows_everywhere(world: World, client: TestClient) -> None:
    issuer, credential = world.issued()
    revoked = _change(client, _key(issuer), credential["id"], "revoke", "issued in error")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["status_reason"] == "issued in error"

    result = world.verify(credential["jwt"])
    assert result["verified"] is False
    assert result["status"] == "revoked"
    assert check(result, "status")["result"] == "fail"
    assert check(result, "signature")["result"] == "pass"

    page = client.get(f"/credentials/{credential['id']}", headers={"Accept": "text/html"})
    assert "Revoked" in page.text
    assert "status-revoked" in page.text

    again = _change(client, _key(issuer), credential["id"], "revoke")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "already revoked" in again.json()["detail"]

    _payload, bits = _list_bits(client, _entries(credential)[0]["statusListCredential"])
    assert bitstring.bit(bits, int(_entries(credential)[0]["statusListIndex"])) is True


def test_suspension_round_trip(world: World, client: TestClient) -> None:
    issuer = world.issuer(suspension=True)
    key = _key(issuer)
    achievement = world.achievement(key)
    credential = world.credential(key, achievement["uuid"])
    entries = _entries(credential)
    assert [e["statusPurpose"] for e in entries] == ["revocation", "suspension"]
    fresh = world.verify(credential["jwt"])
    assert fresh["status"] == "valid"
    assert "suspension entry" in check(fresh, "schema")["detail"]

    assert _change(client, key, credential["id"], "suspend", "payment dispute").status_code == 200
    suspended = world.verify(credential["jwt"])
    assert suspended["status"] == "suspended"
    assert check(suspended, "status")["result"] == "fail"
    page = client.get(f"/credentials/{credential['id']}", headers={"Accept": "text/html"})
    assert "Suspended" in page.text
    assert _change(client, key, credential["id"], "suspend").status_code == 409

    assert _change(client, key, credential["id"], "unsuspend", "resolved").status_code == 200
    assert world.verify(credential["jwt"])["status"] == "valid"
    assert _change(client, key, credential["id"], "unsuspend").status_code == 409

    # Revocation wins over (and clears) a suspension.
    assert _change(client, key, credential["id"], "suspend").status_code == 200
    assert _change(client, key, credential["id"], "revoke").status_code == 200
    assert world.verify(credential["jwt"])["status"] == "revoked"
    assert _change(client, key, credential["id"], "suspend").status_code == 409


def test_suspending_without_suspension_is_a_conflict(world: World, client: TestClient) -> None:
    issuer, credential = world.issued()
    response = _change(client, _key(issuer), credential["id"], "suspend")
    assert response.status_code == 409
    assert "does not offer suspension" in response.json()["detail"]


def test_status_changes_need_the_owner(world: World, client: TestClient) -> None:
    _issuer, credential = world.issued()
    other = world.issuer(name="Other Academy")
    assert _change(client, _key(other), credential["id"], "revoke").status_code == 404
    assert (
        client.post(
            f"/api/v1/credentials/{credential['id']}/revoke", json={"reason": "x"}
        ).status_code
        == 401
    )
    issuer_key = world.issuer(name="Third")
    assert _change(client, _key(issuer_key), "not-a-uuid", "revoke").status_code == 404
    empty = client.post(
        f"/api/v1/credentials/{credential['id']}/revoke",
        json={"reason": ""},
        headers=bearer(_key(other)),
    )
    assert empty.status_code == 422


def test_status_list_is_a_signed_credential_that_verifies(world: World, client: TestClient) -> None:
    issuer, credential = world.issued()
    url = _entries(credential)[0]["statusListCredential"]
    payload, bits = _list_bits(client, url)
    assert payload["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert payload["credentialSubject"]["statusPurpose"] == "revocation"
    assert payload["issuer"] == issuer["issuer"]["id"]
    assert len(bits) * 8 == bitstring.MIN_LIST_SIZE
    assert not any(bits)
    token = client.get(url.removeprefix("http://testserver")).text
    result = world.verify(token)
    assert result["verified"] is True, result
    as_json = client.get(
        url.removeprefix("http://testserver"), headers={"Accept": "application/json"}
    )
    assert (
        as_json.json()["credentialSubject"]["encodedList"]
        == payload["credentialSubject"]["encodedList"]
    )


def test_status_list_etag_changes_with_the_list(world: World, client: TestClient) -> None:
    issuer, credential = world.issued()
    path = _entries(credential)[0]["statusListCredential"].removeprefix("http://testserver")
    first = client.get(path)
    etag = first.headers["etag"]
    assert "max-age=60" in first.headers["cache-control"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    _change(client, _key(issuer), credential["id"], "revoke")
    after = client.get(path, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag


def test_unknown_status_lists_are_404(world: World, client: TestClient) -> None:
    world.issued()
    for path in (
        "/status/data-academy/revocation/2",
        "/status/data-academy/refresh/1",
        "/status/nobody/revocation/1",
        "/status/data-academy/revocation/0",
        "/status/data-academy/revocation/x",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_indices_are_random_and_distinct(world: World) -> None:
    issuer = world.issuer()
    key = _key(issuer)
    achievement = world.achievement(key)
    indices = [
        int(_entries(world.credential(key, achievement["uuid"]))[0]["statusListIndex"])
        for _ in range(40)
    ]
    assert len(set(indices)) == 40
    assert indices != sorted(indices), "allocation order must not reveal issuance order"


def test_a_full_list_opens_the_next_one(settings: Settings, world: World) -> None:
    world.issuer(name="Tiny Lists")
    engine = create_engine(settings.database_url)
    by_list: dict[int, list[int]] = {}
    with Session(engine) as session:
        issuer = session.scalars(select(Issuer).where(Issuer.slug == "tiny-lists")).one()
        for _ in range(40):
            got = status_service.allocate(
                session, issuer=issuer, purpose=StatusPurpose.revocation, size=16
            )
            by_list.setdefault(got.status_list.seq, []).append(got.index)
        session.commit()
    engine.dispose()
    assert {seq: len(indices) for seq, indices in by_list.items()} == {1: 16, 2: 16, 3: 8}
    assert sorted(by_list[1]) == list(range(16)), "a full list uses every index exactly once"
    assert len(set(by_list[3])) == 8


def test_one_call_spanning_lists_takes_every_slot_once(settings: Settings, world: World) -> None:
    world.issuer(name="Tiny Batches")
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        issuer = session.scalars(select(Issuer).where(Issuer.slug == "tiny-batches")).one()
        got = status_service.allocate_many(
            session, issuer=issuer, purpose=StatusPurpose.revocation, count=40, size=16
        )
        more = status_service.allocate_many(
            session, issuer=issuer, purpose=StatusPurpose.revocation, count=3, size=16
        )
        by_list: dict[int, list[int]] = {}
        for allocation in got + more:
            by_list.setdefault(allocation.status_list.seq, []).append(allocation.index)
        session.commit()
    engine.dispose()
    assert sorted(by_list[1]) == sorted(by_list[2]) == list(range(16))
    assert len(by_list[3]) == len(set(by_list[3])) == 11
    assert by_list[1] != by_list[2], "each list has its own key, so its own order"


@hypothesis_settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), key=st.binary(min_size=1, max_size=64))
def test_a_list_key_maps_slots_one_to_one_onto_indices(size: int, key: bytes) -> None:
    places = shuffle.IndexPermutation(key, size)
    assert sorted(places(slot) for slot in range(size)) == list(range(size))
    assert shuffle.IndexPermutation(key, size)(size - 1) == places(size - 1), "deterministic"


def test_a_full_size_list_is_a_permutation_that_hides_the_order() -> None:
    size = bitstring.MIN_LIST_SIZE
    first = shuffle.permutation(shuffle.new_key(), size)
    indices = [first(slot) for slot in range(size)]
    assert sorted(indices) == list(range(size))
    # Consecutive slots land far apart, with no drift: the first thousand slots spread over
    # the whole list, and as many fall in each half.
    head = indices[:1000]
    assert min(head) < size // 50
    assert max(head) > size - size // 50
    assert 400 < sum(1 for i in head if i < size // 2) < 600
    ascending = sum(1 for a, b in itertools.pairwise(head) if b > a)
    assert 400 < ascending < 600
    other = shuffle.permutation(shuffle.new_key(), size)
    assert sum(1 for slot in range(1000) if other(slot) == first(slot)) < 5


@pytest.fixture(scope="session")
def js_decoder() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the independent decoder")
    if not (JS_DIR / "node_modules/@digitalbazaar/vc-bitstring-status-list").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True
        )
    return JS_DIR / "decode-status-list.mjs"


def test_independent_implementation_decodes_exactly_the_revoked_indices(
    world: World, client: TestClient, js_decoder: Path
) -> None:
    issuer = world.issuer()
    key = _key(issuer)
    achievement = world.achievement(key)
    credentials = [world.credential(key, achievement["uuid"]) for _ in range(6)]
    for c in credentials[:3]:
        assert _change(client, key, c["id"], "revoke").status_code == 200
    payload, _bits = _list_bits(client, _entries(credentials[0])[0]["statusListCredential"])
    decoded = subprocess.run(
        ["node", str(js_decoder)],
        input=payload["credentialSubject"]["encodedList"],
        capture_output=True,
        text=True,
        check=True,
        cwd=JS_DIR,
    )
    result = json.loads(decoded.stdout)
    assert result["length"] == bitstring.MIN_LIST_SIZE
    assert sorted(result["set"]) == sorted(
        int(_entries(c)[0]["statusListIndex"]) for c in credentials[:3]
    )

"""The audit trail: per-issuer hash chains, the issuer's read API, and `microcred audit verify`.

Acceptance 6 of issue 3: tampering with one event in the database makes the check fail and name
the event. Tampering goes straight to the database with SQLAlchemy, as an intruder would.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from test_keys import run_cli

from app.audit.models import AuditEvent, AuditHead
from app.audit.service import event_hash, verify_chain
from app.core.config import Settings
from app.issuers.models import Issuer
from conftest import ADMIN, World, bearer

GENESIS = "0" * 64
LIFECYCLE = {
    "issuer.created",
    "api_key.created",
    "api_key.revoked",
    "key.rotated",
    "key.retired",
    "key.compromised",
}


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings.database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def recompute(event: dict[str, Any], issuer_id: uuid.UUID) -> str:
    """The link hash, written out independently of app.audit.service.event_hash."""
    at = datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).isoformat()
    body = {
        "prev": event["prev_hash"],
        "issuer": str(issuer_id),
        "seq": event["seq"],
        "type": event["type"],
        "subject": event["subject"],
        "data": event["data"],
        "at": at,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def all_events(world: World, api_key: str, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = world.client.get("/api/v1/audit", params=query, headers=bearer(api_key))
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def issuer_uuid(db: Engine, slug: str) -> uuid.UUID:
    with Session(db) as session:
        found = session.scalar(select(Issuer.id).where(Issuer.slug == slug))
    assert found is not None
    return found


def lifecycle(world: World, **issuer_body: Any) -> tuple[str, str]:
    """An issuer that went through every lifecycle action this package audits: (slug, API key)."""
    client = world.client
    created = world.issuer(**issuer_body)
    slug, api_key = created["issuer"]["slug"], created["api_key"]["key"]
    second = client.post(f"/api/v1/issuers/{slug}/api-keys", json={"name": "ci"}, headers=ADMIN)
    assert second.status_code == 201, second.text
    revoked = client.delete(f"/api/v1/issuers/{slug}/api-keys/{second.json()['id']}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    first_key = client.get(f"/api/v1/issuers/{slug}/keys", headers=ADMIN).json()[0]["key_id"]
    assert client.post(f"/api/v1/issuers/{slug}/keys", headers=ADMIN).status_code == 201
    marked = client.post(f"/api/v1/issuers/{slug}/keys/{first_key}/compromise", headers=ADMIN)
    assert marked.status_code == 200, marked.text
    return slug, api_key


def test_lifecycle_actions_are_chained_events(world: World, db: Engine) -> None:
    slug, api_key = lifecycle(world)
    events = all_events(world, api_key, limit=2)  # several pages
    assert [e["type"] for e in events if e["type"] in LIFECYCLE] == [
        "issuer.created",
        "api_key.created",
        "api_key.created",
        "api_key.revoked",
        "key.rotated",
        "key.compromised",
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["prev_hash"] == GENESIS
    issuer_id = issuer_uuid(db, slug)
    for previous, event in zip([None, *events], events, strict=False):
        if previous is not None:
            assert event["prev_hash"] == previous["hash"]
        assert event["hash"] == recompute(event, issuer_id)
    created = events[0]
    assert created["subject"] == slug
    rotated = next(e for e in events if e["type"] == "key.rotated")
    compromised = next(e for e in events if e["type"] == "key.compromised")
    assert compromised["data"]["key_id"] in rotated["data"]["retired"]
    assert compromised["data"]["previous_status"] == "retired"
    # The type filter, and the operator's view of the same chain.
    only = all_events(world, api_key, type=["api_key.created", "api_key.revoked"])
    assert [e["type"] for e in only] == ["api_key.created", "api_key.created", "api_key.revoked"]
    operator = world.client.get(f"/api/v1/issuers/{slug}/audit?limit=500", headers=ADMIN)
    assert operator.status_code == 200
    assert operator.json()["items"] == events
    with Session(db) as session:
        head = session.get(AuditHead, issuer_id)
        assert head is not None
        assert (head.seq, head.hash) == (events[-1]["seq"], events[-1]["hash"])


def test_an_issuer_sees_only_its_own_events(world: World) -> None:
    slug_a, key_a = lifecycle(world, name="Academy A")
    slug_b, key_b = lifecycle(world, name="Academy B")
    events_a = all_events(world, key_a)
    events_b = all_events(world, key_b)
    assert events_a[0]["subject"] == slug_a
    assert events_b[0]["subject"] == slug_b
    assert not {e["id"] for e in events_a} & {e["id"] for e in events_b}
    client = world.client
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/audit", headers=ADMIN).status_code == 401
    assert client.get(f"/api/v1/issuers/{slug_a}/audit", headers=bearer(key_a)).status_code == 401
    assert client.get("/api/v1/issuers/nobody/audit", headers=ADMIN).status_code == 404
    for cursor in ("abc", "-1", "١"):
        response = client.get("/api/v1/audit", params={"cursor": cursor}, headers=bearer(key_a))
        assert response.status_code == 400, cursor
    unknown = client.get("/api/v1/audit", params={"type": "nope"}, headers=bearer(key_a))
    assert unknown.status_code == 422


def test_audit_verify_names_the_tampered_event(
    world: World, settings: Settings, db: Engine
) -> None:
    slug, api_key = lifecycle(world, name="Tampered")
    lifecycle(world, name="Untouched")
    events = all_events(world, api_key)
    intact = run_cli(settings, "audit", "verify")
    assert intact.exit_code == 0, intact.output
    with Session(db) as session:
        total = len(session.scalars(select(AuditEvent.id)).all())
    assert intact.stdout.strip() == f"audit trail intact: {total} events in 2 chains"

    # Rewrite what a revoked API key was called, as someone covering their tracks would.
    target = next(e for e in events if e["type"] == "api_key.revoked")
    with db.begin() as conn:
        conn.execute(
            update(AuditEvent)
            .where(AuditEvent.id == uuid.UUID(target["id"]))
            .values(data={**target["data"], "name": "innocent"})
        )
    broken = run_cli(settings, "audit", "verify")
    assert broken.exit_code == 1
    assert f"issuer {slug}" in broken.stderr
    assert f"event seq {target['seq']} (id {target['id']})" in broken.stderr
    assert "was altered" in broken.stderr
    assert run_cli(settings, "audit", "verify", "--issuer", "untouched").exit_code == 0
    assert run_cli(settings, "audit", "verify", "--issuer", slug).exit_code == 1
    assert run_cli(settings, "audit", "verify", "--issuer", "nobody").exit_code == 2


@pytest.mark.parametrize("attack", ["delete_middle", "delete_last", "rehash", "move"])
def test_removed_or_rewritten_links_are_detected(
    world: World, settings: Settings, db: Engine, attack: str
) -> None:
    slug, api_key = lifecycle(world)
    events = all_events(world, api_key)
    issuer_id = issuer_uuid(db, slug)
    middle = events[2]
    other = issuer_uuid(db, world.issuer(name="Elsewhere")["issuer"]["slug"])
    with db.begin() as conn:
        if attack == "delete_middle":
            conn.execute(delete(AuditEvent).where(AuditEvent.id == uuid.UUID(middle["id"])))
            expected = (events[3]["seq"], f"seq {middle['seq']} missing")
        elif attack == "delete_last":
            conn.execute(delete(AuditEvent).where(AuditEvent.id == uuid.UUID(events[-1]["id"])))
            expected = (None, f"the head records seq {events[-1]['seq']}")
        elif attack == "rehash":
            # Edit an event and recompute its own hash: the next link no longer matches.
            forged = {**middle, "subject": "someone-else"}
            conn.execute(
                update(AuditEvent)
                .where(AuditEvent.id == uuid.UUID(middle["id"]))
                .values(subject="someone-else", hash=recompute(forged, issuer_id))
            )
            expected = (events[3]["seq"], "is not the hash of the previous event")
        else:
            # Re-file an event under another issuer: both chains break.
            conn.execute(
                update(AuditEvent)
                .where(AuditEvent.id == uuid.UUID(middle["id"]))
                .values(issuer_id=other, seq=1000)
            )
            expected = (events[3]["seq"], f"seq {middle['seq']} missing")
    with Session(db) as session:
        report = verify_chain(session, issuer_id=issuer_id, names={issuer_id: slug})
    assert not report.intact
    [found] = report.breaks
    assert found.issuer_slug == slug
    assert found.seq == expected[0]
    assert expected[1] in found.problem
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert f"issuer {slug}" in result.stderr


def test_concurrent_appends_do_not_fork_the_chain(world: World, db: Engine) -> None:
    created = world.issuer()
    slug, api_key = created["issuer"]["slug"], created["api_key"]["key"]

    def add_key(n: int) -> int:
        response = world.client.post(
            f"/api/v1/issuers/{slug}/api-keys", json={"name": f"worker {n}"}, headers=ADMIN
        )
        return response.status_code

    def rotate(_n: int) -> int:
        return world.client.post(f"/api/v1/issuers/{slug}/keys", headers=ADMIN).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(add_key, range(24))) + list(pool.map(rotate, range(8)))
    assert statuses == [201] * 32
    events = all_events(world, api_key)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] == "api_key.created" for e in events) == 25
    assert sum(e["type"] == "key.rotated" for e in events) == 8
    with Session(db) as session:
        report = verify_chain(session)
    assert report.intact, report.breaks
    assert report.chains == 1
    assert report.events == len(events)
    # Concurrent rotations still leave exactly one active key.
    keys = world.client.get(f"/api/v1/issuers/{slug}/keys", headers=ADMIN).json()
    assert [k["status"] for k in keys].count("active") == 1
    assert len(keys) == 9


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    seq=st.integers(min_value=1, max_value=2**40),
    event_type=st.text(max_size=30),
    subject=st.none() | st.text(max_size=60),
    data=st.dictionaries(st.text(max_size=10), _JSON, max_size=4),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_the_link_text_is_the_canonical_json_of_the_event(
    prev: str, seq: int, event_type: str, subject: str | None, data: dict[str, Any], at: datetime
) -> None:
    """`event_hash` writes the canonical JSON from its parts: the same text as json.dumps of the
    whole event (the definition every chain written so far was hashed with)."""
    issuer_id = uuid.uuid4()
    canonical = json.dumps(
        {
            "prev": prev,
            "issuer": str(issuer_id),
            "seq": seq,
            "type": event_type,
            "subject": subject,
            "data": data,
            "at": at.isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert (
        event_hash(
            prev_hash=prev,
            issuer_id=issuer_id,
            seq=seq,
            event_type=event_type,
            subject=subject,
            data=data,
            created_at=at,
        )
        == hashlib.sha256(canonical.encode()).hexdigest()
    )

"""Appending to, and checking, the per-issuer hash chains of the audit trail."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import repository
from app.audit.models import AuditEvent, AuditEventType, AuditHead
from app.audit.schemas import ChainBreak, ChainReport
from app.core.db import RawJSON, bulk_insert, utcnow
from app.core.errors import BadRequest

GENESIS = "0" * 64


def event_hash(
    *,
    prev_hash: str,
    issuer_id: uuid.UUID,
    seq: int,
    event_type: str,
    subject: str | None,
    data: dict[str, Any],
    created_at: datetime,
) -> str:
    """SHA-256 over the canonical JSON of the event and the previous link: editing any field,
    deleting or reordering events breaks every later link.

    The canonical JSON is `json.dumps` of {"prev", "issuer", "seq", "type", "subject", "data",
    "at"} with sorted keys, compact separators and `ensure_ascii=False`. It is written here from
    its parts (`_link_text`), which gives the same text (a test holds the two together) for a
    third of the cost: bulk issuance hashes one event per credential.
    """
    return _digest(
        _link_text(
            prev=_encode(prev_hash),
            issuer=_encode(str(issuer_id)),
            seq=seq,
            event_type=_encode(event_type),
            subject=_encode(subject),
            data=_encode(data),
            at=_encode(created_at.isoformat()),
        )
    )


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _link_text(
    *, prev: str, issuer: str, seq: int, event_type: str, subject: str, data: str, at: str
) -> str:
    """The canonical JSON of an event from its values' JSON, keys in sorted order."""
    return (
        f'{{"at":{at},"data":{data},"issuer":{issuer},"prev":{prev},"seq":{seq},'
        f'"subject":{subject},"type":{event_type}}}'
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lock_chain(session: Session, issuer_id: uuid.UUID) -> AuditHead:
    """Lock the issuer's chain head (creating the chain on first use) until the transaction ends.

    Besides serialising appends, this is the issuer's lifecycle mutex: key rotation and compromise
    take it first, so two of them never interleave their reads and writes.
    """
    head = repository.lock_head(session, issuer_id)
    if head is None:
        # Normally written by create_issuer with the genesis event, so that concurrent appends
        # only ever lock an existing row; issuers from before the audit trail get it here.
        # The inserted row is ours alone until commit (a concurrent insert of the same head waits,
        # then fails on the primary key), so it needs no separate lock.
        head = AuditHead(issuer_id=issuer_id, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def append(
    session: Session,
    *,
    issuer_id: uuid.UUID,
    event_type: AuditEventType,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to the issuer's chain, in the caller's transaction.

    The chain head row is locked (`FOR UPDATE` on PostgreSQL; SQLite serialises writers anyway), so
    concurrent appends line up instead of forking the chain.
    """
    head = lock_chain(session, issuer_id)
    payload = dict(data or {})
    created_at = utcnow()
    seq = head.seq + 1
    digest = event_hash(
        prev_hash=head.hash,
        issuer_id=issuer_id,
        seq=seq,
        event_type=event_type.value,
        subject=subject,
        data=payload,
        created_at=created_at,
    )
    event = AuditEvent(
        id=uuid.uuid4(),
        issuer_id=issuer_id,
        seq=seq,
        type=event_type.value,
        subject=subject,
        data=payload,
        created_at=created_at,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    head.seq = seq
    head.hash = digest
    session.flush()
    return event


def append_many(
    session: Session,
    *,
    issuer_id: uuid.UUID,
    events: Sequence[tuple[AuditEventType, str | None, dict[str, Any]]],
) -> None:
    """Append many events to the issuer's chain at once (bulk issuance): one lock, one insert.

    The links are the same as `append` would write one by one: each event hashes its predecessor.
    """
    if not events:
        return
    head = lock_chain(session, issuer_id)
    seq, prev = head.seq, head.hash
    created_at = utcnow()
    issuer, at = _encode(str(issuer_id)), _encode(created_at.isoformat())
    # Bulk issuance passes one data object for many events (one per achievement): encoded once,
    # and stored as that text (canonical JSON is JSON).
    encoded: dict[int, RawJSON] = {}
    rows: list[dict[str, Any]] = []
    for event_type, subject, data in events:
        seq += 1
        data_json = encoded.get(id(data))
        if data_json is None:
            data_json = encoded[id(data)] = RawJSON(_encode(data))
        digest = _digest(
            _link_text(
                prev=f'"{prev}"',  # a hex digest: its JSON is itself in quotes
                issuer=issuer,
                seq=seq,
                event_type=_encode(event_type.value),
                subject=_encode(subject),
                data=data_json,
                at=at,
            )
        )
        rows.append(
            {
                "id": uuid.uuid4(),
                "issuer_id": issuer_id,
                "seq": seq,
                "type": event_type.value,
                "subject": subject,
                "data": data_json,
                "created_at": created_at,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    bulk_insert(session, AuditEvent.__table__, rows)
    head.seq = seq
    head.hash = prev
    session.flush()


def list_events(
    session: Session,
    *,
    issuer_id: uuid.UUID,
    after: str | None,
    limit: int,
    types: Sequence[AuditEventType] = (),
) -> Sequence[AuditEvent]:
    """A page of an issuer's events in chain order; `after` is a cursor (the last seq seen)."""
    after_seq: int | None = None
    if after is not None:
        if not (after.isascii() and after.isdigit()) or len(after) > 12:
            raise BadRequest("The cursor is not one this API handed out.")
        after_seq = int(after)
    return repository.page(
        session, issuer_id, after_seq=after_seq, limit=limit, types=[t.value for t in types]
    )


def _check_chain(
    session: Session, issuer_id: uuid.UUID, slug: str | None
) -> tuple[int, ChainBreak | None]:
    """Recompute one chain from GENESIS: (events read, the first break or None)."""
    expected_seq, prev_hash, count = 1, GENESIS, 0

    def broken(event: AuditEvent | None, problem: str) -> ChainBreak:
        return ChainBreak(
            issuer_id=issuer_id,
            issuer_slug=slug,
            seq=event.seq if event else None,
            event_id=event.id if event else None,
            problem=problem,
        )

    with closing(repository.events_in_order(session, issuer_id)) as events:
        for event in events:
            count += 1
            if event.seq != expected_seq:
                if event.seq > expected_seq:
                    gap = (
                        f"seq {expected_seq}"
                        if event.seq == expected_seq + 1
                        else f"seq {expected_seq}-{event.seq - 1}"
                    )
                    problem = f"the chain jumps from seq {expected_seq - 1} to {event.seq}: {gap} missing (deleted?)"
                else:  # pragma: no cover - (issuer_id, seq) is unique and events come ordered by seq
                    problem = f"seq {event.seq} where {expected_seq} was expected"
                return count, broken(event, problem)
            if event.prev_hash != prev_hash:
                return count, broken(
                    event,
                    f"prev_hash {event.prev_hash[:12]}… is not the hash of the previous event "
                    f"({prev_hash[:12]}…): an event before it was removed or rewritten",
                )
            digest = event_hash(
                prev_hash=event.prev_hash,
                issuer_id=issuer_id,
                seq=event.seq,
                event_type=event.type,
                subject=event.subject,
                data=event.data,
                created_at=event.created_at,
            )
            if digest != event.hash:
                return count, broken(
                    event,
                    "the stored hash does not match the event's contents: the event was altered",
                )
            prev_hash, expected_seq = event.hash, expected_seq + 1
    head = repository.head(session, issuer_id)
    last_seq = expected_seq - 1
    if head is None:
        return count, broken(None, f"the chain has {count} event(s) but no head row")
    if head.seq != last_seq or head.hash != prev_hash:
        return count, broken(
            None,
            f"the head records seq {head.seq} ({head.hash[:12]}…) but the chain ends at "
            f"seq {last_seq} ({prev_hash[:12]}…): events at the end were removed or rewritten",
        )
    return count, None


def verify_chain(
    session: Session,
    *,
    issuer_id: uuid.UUID | None = None,
    names: Mapping[uuid.UUID, str] | None = None,
) -> ChainReport:
    """Recompute every issuer's chain (or one) and name the first broken link of each.

    Each event must follow its predecessor in seq without gaps, carry the previous event's hash,
    hash to its stored value, and the last one must be what the head row records. `names`
    (issuer id -> slug, from the caller: audit knows issuers only by id) labels the breaks.
    """
    events, breaks = 0, []
    chains = repository.chains(session, issuer_id)
    for chain_issuer in chains:
        read, problem = _check_chain(session, chain_issuer, (names or {}).get(chain_issuer))
        events += read
        if problem is not None:
            breaks.append(problem)
    return ChainReport(chains=len(chains), events=events, breaks=breaks)

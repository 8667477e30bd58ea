"""Status lists: index allocation without reuse at pseudorandom positions, status changes, the signed list credential."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core import data_integrity, jose
from app.core.config import Settings
from app.core.db import add_unless_conflict, on_postgresql, side_session, utcnow
from app.core.errors import NotFound
from app.core.jsonld import ContextLoader
from app.core.keys import KeyStore
from app.core.standards import VC2_CONTEXT
from app.issuers import service as issuers_service
from app.issuers.models import Issuer
from app.status import bitstring, repository, shuffle
from app.status.models import StatusList, StatusPurpose

LIST_CREDENTIAL_TTL = timedelta(minutes=5)
# A list is dated this far back (validFrom and nbf alike: VC-JWT requires them equal), so that a
# verifier whose clock runs up to a minute slow does not refuse it as not yet valid.
LIST_CREDENTIAL_BACKDATE = timedelta(minutes=1)
# A list names only the VCDM 2.0 context, which this service ships: securing it fetches nothing.
CONTEXTS = ContextLoader()


class StatusListNotFound(NotFound):
    pass


@dataclass(frozen=True)
class ListRef:
    """What issuing needs of a status list (plain values: read per credential in bulk)."""

    id: uuid.UUID
    purpose: StatusPurpose
    seq: int
    size: int
    index_key: str | None


@dataclass(frozen=True)
class Allocation:
    status_list: ListRef
    index: int

    @property
    def list_id(self) -> uuid.UUID:
        return self.status_list.id


@dataclass(frozen=True)
class Claimed:
    """Indices claimed for a number of credentials: the n-th of each list is the n-th's."""

    revocations: list[Allocation]
    suspensions: list[Allocation]  # empty unless the issuer offers suspension


def list_url(settings: Settings, slug: str, purpose: StatusPurpose | str, seq: int) -> str:
    return settings.url(f"/status/{slug}/{StatusPurpose(purpose).value}/{seq}")


def status_entry(settings: Settings, slug: str, allocation: Allocation) -> dict[str, Any]:
    """A `BitstringStatusListEntry` for a credential's `credentialStatus`."""
    return entry_maker(settings, slug, allocation.status_list)(allocation.index)


def entry_maker(
    settings: Settings, slug: str, status_list: ListRef
) -> Callable[[int], dict[str, Any]]:
    """`status_entry` for indices of one list: its URL and purpose worked out once."""
    url = list_url(settings, slug, status_list.purpose, status_list.seq)
    purpose = StatusPurpose(status_list.purpose).value

    def entry(index: int) -> dict[str, Any]:
        return {
            "id": f"{url}#{index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": purpose,
            "statusListIndex": str(index),
            "statusListCredential": url,
        }

    return entry


def _open_list(session: Session, issuer: Issuer, purpose: StatusPurpose, size: int) -> StatusList:
    current = repository.open_list(session, issuer.id, purpose)
    if current is not None:
        return current
    created = StatusList(
        id=uuid.uuid4(),
        issuer_id=issuer.id,
        purpose=purpose,
        seq=repository.last_seq(session, issuer.id, purpose) + 1,
        size=size,
        full=False,
        next_slot=0,
        index_key=shuffle.new_key(),
        version=0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    if add_unless_conflict(session, created):
        return created
    # Another process opened this list first: use theirs.
    current = repository.open_list(session, issuer.id, purpose)
    if current is None:
        raise StatusListNotFound(
            f"Could not open a {purpose.value} list for issuer {issuer.slug!r}."
        )
    return current


def allocate(
    session: Session, *, issuer: Issuer, purpose: StatusPurpose, size: int = bitstring.MIN_LIST_SIZE
) -> Allocation:
    """One index in the issuer's open list for `purpose` (see `allocate_many`)."""
    return allocate_many(session, issuer=issuer, purpose=purpose, count=1, size=size)[0]


def allocate_many(
    session: Session,
    *,
    issuer: Issuer,
    purpose: StatusPurpose,
    count: int,
    size: int = bitstring.MIN_LIST_SIZE,
) -> list[Allocation]:
    """`count` indices never handed out before, at pseudorandom positions; new lists as needed.

    Each list gives out slots from a counter and maps them through its keyed permutation
    (`shuffle`): one short UPDATE whatever the count, indices distinct by construction (across
    threads, processes and replicas: the counter row is the only shared state), and issuance order
    hidden. The counter's row lock lasts until the transaction ends: on PostgreSQL, `claim` below
    takes the slots in a transaction of their own.
    """
    # Usually one statement: slots of the open list, if it has enough.
    taken = repository.take_open_slots(session, issuer.id, purpose, count)
    if taken is not None:
        ref = ListRef(taken.id, purpose, taken.seq, taken.size, taken.index_key)
        return _place(ref, range(taken.next_slot - count, taken.next_slot))
    out: list[Allocation] = []
    while len(out) < count:
        status_list = _open_list(session, issuer, purpose, size)
        if status_list.index_key is None:
            # A list from before slot allocation that was never used: it cannot take slots.
            repository.mark_full(session, status_list.id)
            continue
        # Short of `count`, the list is full now: the next round opens the next one.
        ref = ListRef(
            status_list.id, purpose, status_list.seq, status_list.size, status_list.index_key
        )
        out += _place(ref, repository.take_slots(session, ref.id, count - len(out)))
    return out


def _place(ref: ListRef, slots: range) -> list[Allocation]:
    places = shuffle.permutation(ref.index_key or "", ref.size)
    return [Allocation(ref, places(slot)) for slot in slots]


def claim(session: Session, *, issuer: Issuer, count: int = 1, apart: bool = True) -> Claimed:
    """Indices for `count` credentials of `issuer` (revocation, and suspension if it offers it).

    `apart` (bulk chunks): on PostgreSQL, committed at once in a transaction of its own, so the
    lists' counters are locked for milliseconds, not for a chunk's whole transaction, and chunks
    do not queue behind each other's signing. The price: slots of a chunk that then fails stay
    used (the bits are never set; a tiny loss of list capacity). Not apart (one credential): in
    the caller's transaction, which is short; a side transaction would cost more round trips than
    it saves (single issuance over HTTP ran at 98 req/s that way, against 117). The counter's row
    lock comes before the audit chain's, as in revocation: no lock-order cycle. SQLite has one
    writer, which the caller's transaction already is.
    """

    def both(on: Session) -> Claimed:
        return Claimed(
            allocate_many(on, issuer=issuer, purpose=StatusPurpose.revocation, count=count),
            allocate_many(on, issuer=issuer, purpose=StatusPurpose.suspension, count=count)
            if issuer.suspension
            else [],
        )

    if not apart or not on_postgresql(session):
        return both(session)
    with side_session(session) as side:
        # Without waiting for the disk: the WAL is written in order, so this commit is on disk
        # by the time any credential using these slots commits (synchronously) after it; if the
        # server dies before, no credential holds them and losing them costs nothing.
        side.execute(text("SET LOCAL synchronous_commit = off"))
        claimed = both(side)
        side.commit()
    return claimed


def touch(session: Session, list_id: uuid.UUID) -> None:
    repository.bump_version(session, list_id)


@dataclass(frozen=True)
class SignedList:
    jwt: str
    credential: dict[str, Any]
    # The credential with an embedded eddsa-rdfc-2022 proof by the issuer's Data Integrity key,
    # when asked for and the issuer has Data Integrity on; else None.
    secured: dict[str, Any] | None = None


def find_list(session: Session, *, slug: str, purpose: str, seq: int) -> tuple[Issuer, StatusList]:
    try:
        kind = StatusPurpose(purpose)
    except ValueError:
        raise StatusListNotFound(f"No status list purpose {purpose!r}.") from None
    issuer = issuers_service.get_issuer(session, slug=slug)
    status_list = repository.get_list(session, issuer.id, kind, seq)
    if status_list is None:
        raise StatusListNotFound(f"Issuer {slug!r} has no {kind.value} list {seq}.")
    return issuer, status_list


def build_list_credential(
    session: Session,
    *,
    settings: Settings,
    keystore: KeyStore,
    issuer: Issuer,
    status_list: StatusList,
    set_indices: Sequence[int],
    with_proof: bool = False,
) -> SignedList:
    """The `BitstringStatusListCredential` with these bits set, signed now by the issuer's
    active key as a VC-JWT (the bits are the credentials' states: the caller reads them).

    `with_proof`, for an issuer with Data Integrity: also the same credential secured by an
    embedded eddsa-rdfc-2022 proof of its Data Integrity key (what DCC's verifier-core and the
    Learner Credential Wallet check; they cannot read a VC-JWT). The JWT stays over the plain
    credential, as before. Valid from a minute ago (`LIST_CREDENTIAL_BACKDATE`) until
    `LIST_CREDENTIAL_TTL` from now, the proof `created` at the start of that validity too.
    """
    url = list_url(settings, issuer.slug, status_list.purpose, status_list.seq)
    now = utcnow().replace(microsecond=0)
    valid_from = now - LIST_CREDENTIAL_BACKDATE
    signer = issuers_service.signer_for(
        session, settings=settings, keystore=keystore, issuer=issuer
    )
    credential: dict[str, Any] = {
        "@context": [VC2_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": signer.did,
        "validFrom": valid_from.isoformat().replace("+00:00", "Z"),
        "validUntil": (now + LIST_CREDENTIAL_TTL).isoformat().replace("+00:00", "Z"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": StatusPurpose(status_list.purpose).value,
            "encodedList": bitstring.encode(set_indices, size=status_list.size),
        },
    }
    claims = {
        **credential,
        "iss": signer.did,
        "jti": url,
        "sub": f"{url}#list",
        "nbf": int(valid_from.timestamp()),
        "exp": int((now + LIST_CREDENTIAL_TTL).timestamp()),
    }
    token = jose.sign(claims, key=signer.key, algorithm=signer.algorithm, kid=signer.kid)
    secured = None
    if with_proof and signer.proof is not None:
        secured = data_integrity.add_proof(
            credential,
            key=signer.proof.key,
            verification_method=signer.proof.verification_method,
            created=valid_from,
            loader=CONTEXTS,
        )
    return SignedList(jwt=token, credential=credential, secured=secured)

"""Status lists: index allocation at random without reuse, status changes, the signed list credential."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.core import jose
from app.core.config import Settings
from app.core.db import add_unless_conflict, utcnow
from app.core.errors import NotFound
from app.core.keys import KeyStore
from app.core.standards import VC2_CONTEXT
from app.issuers import service as issuers_service
from app.issuers.models import Issuer
from app.status import bitstring, repository
from app.status.models import StatusAllocation, StatusList, StatusPurpose

# Random probes before we look at the whole list: collisions only get likely once it is dense.
PROBES = 8
_RANDOM = random.SystemRandom()
LIST_CREDENTIAL_TTL = timedelta(minutes=5)


class StatusListNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Allocation:
    status_list: StatusList
    index: int


def list_url(settings: Settings, slug: str, purpose: StatusPurpose | str, seq: int) -> str:
    return settings.url(f"/status/{slug}/{StatusPurpose(purpose).value}/{seq}")


def status_entry(settings: Settings, slug: str, allocation: Allocation) -> dict[str, Any]:
    """A `BitstringStatusListEntry` for a credential's `credentialStatus`."""
    url = list_url(settings, slug, allocation.status_list.purpose, allocation.status_list.seq)
    return {
        "id": f"{url}#{allocation.index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": StatusPurpose(allocation.status_list.purpose).value,
        "statusListIndex": str(allocation.index),
        "statusListCredential": url,
    }


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


def _claim(session: Session, status_list: StatusList, index: int) -> bool:
    return add_unless_conflict(session, StatusAllocation(list_id=status_list.id, index=index))


def allocate(
    session: Session, *, issuer: Issuer, purpose: StatusPurpose, size: int = bitstring.MIN_LIST_SIZE
) -> Allocation:
    """Claim a random unused index in the issuer's open list for `purpose`, opening a new list when full.

    The allocation table's primary key makes an index impossible to hand out twice, across threads,
    processes and replicas alike.
    """
    while True:
        status_list = _open_list(session, issuer, purpose, size)
        for _ in range(PROBES):
            index = bitstring.random_index(status_list.size)
            if _claim(session, status_list, index):
                return Allocation(status_list, index)
        # Dense list: choose among the free indices themselves.
        taken = set(repository.allocated_indices(session, status_list.id))
        free = [i for i in range(status_list.size) if i not in taken]
        while free:
            index = free.pop(bitstring.random_index(len(free)))
            if _claim(session, status_list, index):
                return Allocation(status_list, index)
        repository.mark_full(session, status_list.id)
        session.flush()
        session.expire(status_list)


def allocate_many(
    session: Session,
    *,
    issuer: Issuer,
    purpose: StatusPurpose,
    count: int,
    size: int = bitstring.MIN_LIST_SIZE,
) -> list[Allocation]:
    """Claim `count` random unused indices at once (bulk issuance): one multi-row insert per round.

    The same guarantees as `allocate`: random positions (issuance order stays hidden) and the
    allocation table's primary key refusing any index another writer holds.
    """
    out: list[Allocation] = []

    def claim(status_list: StatusList, indices: list[int]) -> int:
        got = repository.claim_indices(session, status_list.id, indices)
        out.extend(Allocation(status_list, i) for i in got)
        return len(got)

    while len(out) < count:
        status_list = _open_list(session, issuer, purpose, size)
        for _ in range(PROBES * 4):
            need = count - len(out)
            if need == 0:
                return out
            candidates = _RANDOM.sample(range(status_list.size), min(need, status_list.size))
            if claim(status_list, candidates) < len(candidates) // 8:
                break  # a list over ~7/8 full: stop drawing blind, draw among the free indices
        need = count - len(out)
        if need == 0:
            break
        taken = set(repository.allocated_indices(session, status_list.id))
        free = [i for i in range(status_list.size) if i not in taken]
        picks = _RANDOM.sample(free, min(need, len(free)))
        claim(status_list, picks)
        if len(picks) < need:
            # Every free index is now taken (some perhaps by others): close the list, open the next.
            repository.mark_full(session, status_list.id)
            session.flush()
            session.expire(status_list)
    return out


def release(session: Session, allocations: list[Allocation]) -> None:
    """Give back indices claimed for a credential that was not stored after all."""
    for allocation in allocations:
        session.execute(
            delete(StatusAllocation).where(
                StatusAllocation.list_id == allocation.status_list.id,
                StatusAllocation.index == allocation.index,
            )
        )


def touch(session: Session, list_id: uuid.UUID) -> None:
    repository.bump_version(session, list_id)


@dataclass(frozen=True)
class SignedList:
    jwt: str
    credential: dict[str, Any]


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
) -> SignedList:
    """The `BitstringStatusListCredential`, signed now by the issuer's active key as a VC-JWT."""
    url = list_url(settings, issuer.slug, status_list.purpose, status_list.seq)
    now = utcnow().replace(microsecond=0)
    signer = issuers_service.signer_for(
        session, settings=settings, keystore=keystore, issuer=issuer
    )
    credential: dict[str, Any] = {
        "@context": [VC2_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": signer.did,
        "validFrom": now.isoformat().replace("+00:00", "Z"),
        "validUntil": (now + LIST_CREDENTIAL_TTL).isoformat().replace("+00:00", "Z"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": StatusPurpose(status_list.purpose).value,
            "encodedList": bitstring.encode(
                repository.set_indices(session, status_list), size=status_list.size
            ),
        },
    }
    claims = {
        **credential,
        "iss": signer.did,
        "jti": url,
        "sub": f"{url}#list",
        "nbf": int(now.timestamp()),
        "exp": int((now + LIST_CREDENTIAL_TTL).timestamp()),
    }
    token = jose.sign(claims, key=signer.key, algorithm=signer.algorithm, kid=signer.kid)
    return SignedList(jwt=token, credential=credential)

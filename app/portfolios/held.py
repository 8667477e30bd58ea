"""Credentials of other issuers held on a portfolio, stored exactly as they were sent.

A freelancer's portfolio shows our own credentials (`PortfolioEntry`) and whatever else they hold:
another platform's VC-JWT, a JSON credential with an embedded proof. Those are kept as text, byte
for byte (a holder or an application that reads one back gets what was sent, which is what keeps a
signature verifiable), and never trusted for being here: every page or API that shows one verifies
it afresh with our verifier. What is checked on the way in is only that the text is a credential at
all (a compact JWS whose payload is a VC, or a VC JSON document), so that a portfolio cannot be
used as free storage; whether it verifies is the verdict's business, not the store's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import jose
from app.core import text as client_text
from app.core.db import add_unless_conflict, utcnow
from app.core.errors import NotFound, PayloadTooLarge, Unprocessable
from app.portfolios.models import HeldCredential, Portfolio
from app.verify.envelope import is_vc

# A credential is a few KiB; a baked image's is not stored here. Larger is refused (413).
MAX_HELD_CHARS = 256 * 1024
# How many credentials of others one portfolio may hold.
MAX_HELD_PER_PORTFOLIO = 500
OWNER_SOURCE = "owner"

Form = Literal["jwt", "json"]


class NotACredential(Unprocessable):
    title = "Not a credential"


class HeldCredentialNotFound(NotFound):
    title = "Unknown held credential"


class TooManyHeld(Unprocessable):
    title = "Portfolio full"


@dataclass(frozen=True)
class ParsedHeld:
    form: Form
    document: str
    credential_ref: str | None
    # The credential JSON: the JWT payload (VCDM 2.0), its `vc` claim (VCDM 1.1), or the document.
    credential: dict[str, Any]


def parse_held(document: str) -> ParsedHeld:
    """Classify a sent document as a VC-JWT or a VC JSON document, or refuse it (413/422)."""
    if len(document) > MAX_HELD_CHARS:
        raise PayloadTooLarge(f"A held credential is at most {MAX_HELD_CHARS} characters.")
    text = document.strip()
    if not text:
        raise NotACredential("The credential is empty.")
    if text.startswith("{"):
        try:
            value = client_text.loads(text)
        except client_text.UnacceptableJSON as exc:
            raise NotACredential(f"The credential JSON cannot be accepted: {exc}.") from exc
        except ValueError as exc:
            raise NotACredential("The credential is not valid JSON.") from exc
        if not is_vc(value):
            raise NotACredential('A credential JSON document has "VerifiableCredential" in type.')
        ref = value.get("id")
        return ParsedHeld("json", document, _ref(ref), value)
    try:
        _header, payload = jose.unverified_parts(text)
    except jose.JoseError as exc:
        raise NotACredential(
            f"The credential is neither a compact VC-JWT nor a JSON credential: {exc}."
        ) from exc
    vc_claim = payload.get("vc")
    credential: dict[str, Any] = (
        vc_claim if isinstance(vc_claim, dict) and is_vc(vc_claim) else payload
    )
    if not is_vc(credential):
        raise NotACredential(
            'The JWT carries no credential: its payload (or its "vc" claim) needs '
            '"VerifiableCredential" in type.'
        )
    ref = credential.get("id") or payload.get("jti")
    return ParsedHeld("jwt", document, _ref(ref), credential)


def _ref(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 1000 else None


def digest(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def upsert_held(
    session: Session, *, portfolio: Portfolio, document: str, source: str
) -> tuple[HeldCredential, bool]:
    """Keep `document` on the portfolio: a credential with the id of one held already replaces
    it (same row, same id); otherwise a new one is added. Returns the row and whether it is new."""
    parsed = parse_held(document)
    now = utcnow()
    existing = (
        session.scalars(
            select(HeldCredential)
            .where(
                HeldCredential.portfolio_id == portfolio.id,
                HeldCredential.credential_ref == parsed.credential_ref,
            )
            .with_for_update()
        ).one_or_none()
        if parsed.credential_ref is not None
        else None
    )
    if existing is not None:
        existing.form = parsed.form
        existing.document = document
        existing.digest = digest(document)
        existing.source = source[:200]
        existing.updated_at = now
        portfolio.updated_at = now
        session.flush()
        return existing, False
    if count_held(session, portfolio.id) >= MAX_HELD_PER_PORTFOLIO:
        raise TooManyHeld(f"A portfolio holds at most {MAX_HELD_PER_PORTFOLIO} such credentials.")
    row = HeldCredential(
        portfolio_id=portfolio.id,
        form=parsed.form,
        document=document,
        digest=digest(document),
        credential_ref=parsed.credential_ref,
        source=source[:200],
        added_at=now,
        updated_at=now,
    )
    # Two pushes of the same credential may race: the unique index decides, the loser replaces.
    if not add_unless_conflict(session, row):
        return upsert_held(session, portfolio=portfolio, document=document, source=source)
    portfolio.updated_at = now
    session.flush()
    return row, True


def count_held(session: Session, portfolio_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(HeldCredential)
            .where(HeldCredential.portfolio_id == portfolio_id)
        )
        or 0
    )


def held_on(session: Session, portfolio_id: uuid.UUID) -> Sequence[HeldCredential]:
    """The portfolio's held credentials, newest first."""
    return session.scalars(
        select(HeldCredential)
        .where(HeldCredential.portfolio_id == portfolio_id)
        .order_by(HeldCredential.added_at.desc(), HeldCredential.id)
    ).all()


def held_one(session: Session, portfolio_id: uuid.UUID, held_id: uuid.UUID) -> HeldCredential:
    row = session.get(HeldCredential, held_id)
    if row is None or row.portfolio_id != portfolio_id:
        raise HeldCredentialNotFound("This portfolio holds no such credential.")
    return row


def remove_held(session: Session, portfolio_id: uuid.UUID, held_id: uuid.UUID) -> None:
    row = held_one(session, portfolio_id, held_id)
    session.delete(row)
    session.flush()

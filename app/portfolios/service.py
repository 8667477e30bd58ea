"""The recipient's management link and the public portfolios it feeds.

Whoever holds a credential's management token (`mcm_…`, handed to the learner by the issuing
platform) may put the credential on a portfolio, take it off again and hide the recipient's name
on public pages. Nothing is public unless chosen: a portfolio lists only the credentials its owner
added, each with its live verification status, so a revoked credential shows as revoked instead of
disappearing. Once a credential is revoked its management token may still look but not change.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.core.security import hash_secret, same_secret
from app.credentials import service as credentials_service
from app.credentials.models import Credential, CredentialStatus
from app.issuers.models import Issuer
from app.portfolios import repository
from app.portfolios.models import Portfolio, PortfolioEntry
from app.verify.page import BANNERS, PageModel, build_page_model
from app.verify.schemas import Status
from app.verify.service import Verification, Verifier

PORTFOLIO_KEY_PREFIX = "mcp_"


class ManageLinkNotFound(NotFound):
    title = "Unknown management link"


class CredentialRevoked(Forbidden):
    title = "Credential revoked"


class PortfolioNotFound(NotFound):
    title = "Unknown portfolio"


class HandleTaken(Conflict):
    title = "Handle taken"


class WrongPortfolioKey(Forbidden):
    title = "Wrong portfolio key"


class DisplayNameMissing(Unprocessable):
    pass


class NotOnPortfolio(Conflict):
    title = "Not on a portfolio"


def portfolio_url(settings: Settings, handle: str) -> str:
    return settings.url(f"/p/{handle}")


def new_portfolio_key() -> str:
    """A portfolio owner's key: 256 random bits, shown once; only its hash is stored."""
    return PORTFOLIO_KEY_PREFIX + secrets.token_urlsafe(32)


# --- the management link ------------------------------------------------------------------------


def remint_manage_link(
    session: Session, *, settings: Settings, issuer: Issuer, credential_id: uuid.UUID
) -> str:
    """A new management link for one of the issuer's credentials; the previous one stops working."""
    record = repository.credential_for_update(session, credential_id)
    if record is None or record.issuer_id != issuer.id:
        raise credentials_service.CredentialNotFound(f"No credential {credential_id}.")
    token = credentials_service.new_manage_token()
    record.manage_token_hash = hash_secret(token)
    session.flush()
    return credentials_service.manage_url(settings, token)


def is_manage_token(token: str) -> bool:
    """Whether `token` has the form of a management token: only such a token may reach a URL,
    a cookie or a query (a path segment can hold `;`, CR LF, anything)."""
    return credentials_service.MANAGE_TOKEN_PATTERN.fullmatch(token) is not None


def managed_credential(session: Session, *, token: str, for_update: bool = False) -> Credential:
    """The credential a management token opens; 404 for unknown, malformed or superseded tokens."""
    if not is_manage_token(token):
        raise ManageLinkNotFound("This management link is not valid (or a newer one replaced it).")
    record = repository.credential_by_manage_hash(
        session, hash_secret(token), for_update=for_update
    )
    if record is None:
        raise ManageLinkNotFound("This management link is not valid (or a newer one replaced it).")
    return record


def _changeable(session: Session, token: str) -> Credential:
    record = managed_credential(session, token=token, for_update=True)
    if record.status == CredentialStatus.revoked:
        raise CredentialRevoked(
            "This credential has been revoked by its issuer: it can no longer be changed, and a "
            "portfolio that lists it shows it as revoked."
        )
    return record


@dataclass
class ManageView:
    record: Credential
    verification: Verification
    page: PageModel
    portfolio: Portfolio | None
    featured: bool = False

    @property
    def changes_allowed(self) -> bool:
        return self.record.status != CredentialStatus.revoked


def manage_view(session: Session, *, verifier: Verifier, token: str) -> ManageView:
    """The credential behind a management link, its live verification and its portfolio."""
    record = managed_credential(session, token=token)
    verification = verifier.verify_jwt(record.jwt)
    page = build_page_model(verifier.settings, verification)
    entry = repository.entry(session, record.id)
    return ManageView(
        record=record,
        verification=verification,
        page=page,
        portfolio=repository.portfolio_of(session, record.id),
        featured=entry is not None and entry.featured,
    )


@dataclass(frozen=True)
class Joined:
    portfolio: Portfolio
    created: bool
    portfolio_key: str | None = None


def add_to_portfolio(
    session: Session,
    *,
    token: str,
    handle: str,
    display_name: str | None = None,
    portfolio_key: str | None = None,
) -> Joined:
    """Show the credential on a portfolio: a new one when no key is given, else the keyed one.

    A credential is on one portfolio at most: adding it elsewhere moves it.
    """
    record = _changeable(session, token)
    key: str | None = None
    if portfolio_key is not None:
        portfolio = owner_portfolio(session, handle=handle, portfolio_key=portfolio_key)
    else:
        if repository.by_handle(session, handle) is not None:
            raise _taken(handle)
        name = display_name or record.recipient_name
        if not name:
            raise DisplayNameMissing(
                "Give a display name for the new portfolio.",
                errors=[{"loc": ["body", "display_name"], "msg": "required for a new portfolio"}],
            )
        key = new_portfolio_key()
        portfolio = Portfolio(
            handle=handle, display_name=name[:100], owner_token_hash=hash_secret(key)
        )
        # Two recipients may race for the same handle: the unique index decides.
        savepoint = session.begin_nested()
        try:
            session.add(portfolio)
            session.flush()
        except IntegrityError:
            savepoint.rollback()
            raise _taken(handle) from None
        savepoint.commit()
    now = utcnow()
    current = repository.entry(session, record.id)
    if current is None:
        session.add(
            PortfolioEntry(credential_id=record.id, portfolio_id=portfolio.id, added_at=now)
        )
    elif current.portfolio_id != portfolio.id:
        current.portfolio_id = portfolio.id
        current.added_at = now
    portfolio.updated_at = now
    session.flush()
    return Joined(portfolio=portfolio, created=key is not None, portfolio_key=key)


def owner_portfolio(session: Session, *, handle: str, portfolio_key: str) -> Portfolio:
    """The portfolio `handle`, if `portfolio_key` is its owner key (404 / 403 otherwise)."""
    portfolio = repository.by_handle(session, handle)
    if portfolio is None:
        raise PortfolioNotFound(f"There is no portfolio /p/{handle}.")
    if not same_secret(hash_secret(portfolio_key), portfolio.owner_token_hash):
        raise WrongPortfolioKey(f"That is not the owner key of /p/{handle}.")
    return portfolio


def _taken(handle: str) -> HandleTaken:
    return HandleTaken(
        f"The handle {handle!r} is taken. Choose another, or give the portfolio key to add to "
        "your own portfolio with that handle."
    )


def remove_from_portfolio(session: Session, *, token: str) -> None:
    """Take the credential off its portfolio (nothing happens if it is on none)."""
    record = _changeable(session, token)
    repository.remove_entry(session, record.id)
    session.flush()


def set_name_hidden(session: Session, *, token: str, hidden: bool) -> Credential:
    """Hide (or show again) the recipient's name on the public pages of this credential.

    The signed credential still carries the name; only our pages and portfolios leave it out.
    """
    record = _changeable(session, token)
    record.recipient_name_hidden = hidden
    session.flush()
    return record


def _own_entry(session: Session, token: str) -> tuple[Credential, PortfolioEntry, Portfolio]:
    """The managed credential's portfolio entry: what the owner may arrange and describe."""
    record = _changeable(session, token)
    entry = repository.entry(session, record.id)
    portfolio = repository.portfolio_of(session, record.id)
    if entry is None or portfolio is None:
        raise NotOnPortfolio("This credential is not on a portfolio.")
    return record, entry, portfolio


def set_featured(session: Session, *, token: str, featured: bool) -> None:
    """Feature the credential on its portfolio (featured ones come first), or stop featuring it."""
    _record, entry, portfolio = _own_entry(session, token)
    entry.featured = featured
    portfolio.updated_at = utcnow()
    session.flush()


def move(session: Session, *, token: str, up: bool) -> None:
    """Move the credential one place up or down among its portfolio's credentials.

    The first move numbers every entry in the order shown, so later moves swap neighbours.
    Moves are among the neighbours the page shows: the same standing (valid ones come before
    suspended, expired and revoked ones) and the same featuring (featured ones come first).
    """
    record, entry, portfolio = _own_entry(session, token)
    now = utcnow()
    standing = _record_standing(record, now)
    group = [
        e
        for c, e in repository.entries_on(session, portfolio.id)
        if e.featured == entry.featured and _record_standing(c, now) == standing
    ]
    for position, other in enumerate(group):
        other.position = position
    i = next(i for i, e in enumerate(group) if e.credential_id == record.id)
    j = i - 1 if up else i + 1
    if 0 <= j < len(group):
        group[i].position, group[j].position = group[j].position, group[i].position
    portfolio.updated_at = utcnow()
    session.flush()


def _record_standing(record: Credential, now: datetime) -> int:
    """The record's place in the page's order (_STANDING), from the record alone: a move must
    not verify every credential of the portfolio to know which neighbours the page shows."""
    if record.status == CredentialStatus.revoked:
        return len(_STANDING)
    if record.status == CredentialStatus.suspended:
        return _STANDING["suspended"]
    if record.valid_until is not None and record.valid_until <= now:
        return _STANDING["expired"]
    if record.valid_from > now:
        return _STANDING["not_yet_valid"]
    return _STANDING["valid"]


def set_profile(session: Session, *, token: str, headline: str | None, bio: str | None) -> None:
    """The portfolio owner's headline and bio (blank clears them)."""
    _record, _entry, portfolio = _own_entry(session, token)
    portfolio.headline = (headline or "").strip()[:200] or None
    portfolio.bio = (bio or "").strip()[:2000] or None
    portfolio.updated_at = utcnow()
    session.flush()


# --- public portfolios --------------------------------------------------------------------------


@dataclass
class PortfolioItem:
    record: Credential
    verification: Verification
    page: PageModel
    featured: bool = False

    @property
    def status(self) -> Status:
        return self.verification.status

    @property
    def status_label(self) -> str:
        return BANNERS[self.status][0]


@dataclass
class SkillTally:
    name: str
    kind: str  # "alignment" | "tag"
    count: int = 0
    url: str | None = None


@dataclass
class PortfolioView:
    portfolio: Portfolio
    items: list[PortfolioItem]
    # The owner hid their name on at least one listed credential: keep it off the whole page.
    name_hidden: bool
    skills: list[SkillTally] = field(default_factory=list)

    @property
    def display_name(self) -> str | None:
        return None if self.name_hidden else self.portfolio.display_name

    @property
    def verified_count(self) -> int:
        return sum(1 for item in self.items if item.status is Status.valid)


def verified_skills(items: Sequence[PortfolioItem]) -> list[SkillTally]:
    """Alignment targets and tags, each counted once per credential that verifies right now."""
    tallies: dict[tuple[str, str], SkillTally] = {}
    for item in items:
        if item.status is not Status.valid:
            continue
        seen: set[tuple[str, str]] = set()
        for skill in item.page.skills:
            seen.add(("alignment", skill.name))
            tally = tallies.setdefault(
                ("alignment", skill.name), SkillTally(name=skill.name, kind="alignment")
            )
            tally.url = tally.url or skill.url
        for tag in item.page.tags:
            seen.add(("tag", tag))
            tallies.setdefault(("tag", tag), SkillTally(name=tag, kind="tag"))
        for key in seen:
            tallies[key].count += 1
    return sorted(tallies.values(), key=lambda t: (-t.count, t.kind, t.name.casefold()))


# The order of a portfolio's credentials by their live status.
_STANDING = {"valid": 0, "issuer_unconfirmed": 1, "not_yet_valid": 2, "expired": 3, "suspended": 4}


def public_portfolio(session: Session, *, verifier: Verifier, handle: str) -> PortfolioView:
    """A portfolio with its chosen credentials, each verified now, and the verified skills."""
    portfolio = repository.by_handle(session, handle)
    if portfolio is None:
        raise PortfolioNotFound(f"There is no portfolio /p/{handle}.")
    items = []
    for record, entry in repository.entries_on(session, portfolio.id):
        verification = verifier.verify_jwt(record.jwt)
        items.append(
            PortfolioItem(
                record=record,
                verification=verification,
                page=build_page_model(verifier.settings, verification),
                featured=entry.featured,
            )
        )
    # What verifies now comes first, then what no longer does (expired, suspended, revoked …);
    # within each, the repository's order (newest first) stands: the sort is stable.
    items.sort(key=lambda item: _STANDING.get(item.page.status, len(_STANDING)))
    name_hidden = any(item.record.recipient_name_hidden for item in items)
    if name_hidden:
        for item in items:
            item.page.recipient_name = None
    return PortfolioView(
        portfolio=portfolio, items=items, name_hidden=name_hidden, skills=verified_skills(items)
    )


def portfolio_exists(session: Session, *, handle: str) -> bool:
    return repository.by_handle(session, handle) is not None

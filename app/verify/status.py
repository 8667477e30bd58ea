"""The `status` check: Bitstring Status List entries, ours read from the database, others fetched,
verified as credentials of the same issuer, and decoded.

A list that was not read is never "not revoked": the check is `error` and the status `unknown`.
Our own lists answer only for our own issuer's credentials: a foreign credential naming our
list learns nothing from it. Lists are read only for a credential whose signature and issuer
binding passed (the caller decides): a forged token makes us fetch nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AppError
from app.core.identifiers import canonical_identifier
from app.credentials import repository as credentials_repository
from app.credentials.models import Credential
from app.status import bitstring
from app.status import service as status_service
from app.status.models import StatusList
from app.verify.envelope import first, issuer_id_of, types_of
from app.verify.remote import Fetcher, RemoteFetchError, fetch_status_list
from app.verify.schemas import CheckName, CheckResult

ENTRY_TYPES = frozenset({"BitstringStatusListEntry", "StatusList2021Entry"})
LIST_TYPES = frozenset({"BitstringStatusListCredential", "StatusList2021Credential"})
STATES = {"revocation": "revoked", "suspension": "suspended"}

# (result, detail, purpose): `fail` means the bit is set for that purpose.
Finding = tuple[CheckResult, str, str | None]


@dataclass(frozen=True)
class StatusOutcome:
    result: CheckResult
    detail: str
    revocation: str | None = None  # "revoked" | "suspended" when the result is `fail`


def _index(raw: Any) -> int:
    """statusListIndex as a number (the spec writes it as a string of digits); -1 if it is not."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    return -1


def list_path(settings: Settings, url: str) -> tuple[str, str, int] | None:
    """(slug, purpose, seq) of one of our status list URLs, else None."""
    prefix = settings.url("/status/")
    if not url.startswith(prefix):
        return None
    parts = url[len(prefix) :].split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def local_list(session: Session, settings: Settings, url: str) -> StatusList | None:
    """Our status list at `url`, if it exists."""
    path = list_path(settings, url)
    if path is None:
        return None
    try:
        _issuer, status_list = status_service.find_list(
            session, slug=path[0], purpose=path[1], seq=path[2]
        )
    except AppError:
        return None
    return status_list


@dataclass
class StatusChecker:
    session: Session
    settings: Settings
    fetcher: Fetcher | None
    depth: int
    # Verifies a fetched list credential (a Verification-like object with `checks`/`credential`).
    verify_list: Callable[[str | dict[str, Any]], Any]

    def check(
        self, credential: dict[str, Any], *, record: Credential | None, record_is_token: bool
    ) -> StatusOutcome:
        raw = credential.get("credentialStatus")
        if raw is None:
            return StatusOutcome(
                CheckResult.skipped, "The credential carries no status entry to check."
            )
        entries = raw if isinstance(raw, list) else [raw]
        issuer_id = issuer_id_of(credential)
        findings = [self._entry(e, issuer_id, record if record_is_token else None) for e in entries]
        for purpose in ("revocation", "suspension"):
            for result, detail, found in findings:
                if result == CheckResult.fail and found == purpose:
                    return StatusOutcome(CheckResult.fail, detail, STATES[purpose])
        errors = [detail for result, detail, _ in findings if result == CheckResult.error]
        if errors:
            return StatusOutcome(CheckResult.error, " ".join(errors))
        passed = [detail for result, detail, _ in findings if result == CheckResult.pass_]
        if passed:
            return StatusOutcome(CheckResult.pass_, " ".join(passed))
        return StatusOutcome(CheckResult.skipped, "No revocation or suspension entry to check.")

    def _entry(self, entry: Any, issuer_id: str | None, record: Credential | None) -> Finding:
        if not isinstance(entry, dict):
            return CheckResult.error, "A credentialStatus entry is not an object.", None
        kind, purpose = entry.get("type"), entry.get("statusPurpose")
        url = entry.get("statusListCredential")
        if kind not in ENTRY_TYPES:
            return CheckResult.error, f"Status entries of type {kind!r} are not supported.", None
        if purpose not in STATES:
            return (
                CheckResult.skipped,
                f"Status purpose {purpose!r} does not affect validity.",
                None,
            )
        index = _index(entry.get("statusListIndex"))
        if index < 0 or not isinstance(url, str):
            return (
                CheckResult.error,
                f"The {purpose} entry has no usable statusListIndex/statusListCredential.",
                None,
            )
        state = STATES[purpose]
        if record is not None:
            held = record.revocation_index if purpose == "revocation" else record.suspension_index
            if held == index and list_path(self.settings, url) is not None:
                # The token is the one we issued, so this entry is the one we allocated; its bit is
                # derived from this very row (same snapshot).
                if record.status == state:
                    return CheckResult.fail, f"The issuer has {state} this credential.", purpose
                return (
                    CheckResult.pass_,
                    f"Not {state} (this service's {purpose} list, read now).",
                    purpose,
                )
        if url.startswith(self.settings.url("/status/")):
            return self._local(url, purpose, index, issuer_id)
        return self._remote(url, purpose, index, issuer_id)

    def _local(self, url: str, purpose: str, index: int, issuer_id: str | None) -> Finding:
        path = list_path(self.settings, url)
        status_list = local_list(self.session, self.settings, url) if path else None
        if path is None or status_list is None or path[1] != purpose:
            return CheckResult.error, f"The {purpose} list {url} does not exist here.", None
        owner = self.settings.issuer_did(path[0])
        if issuer_id is None or canonical_identifier(issuer_id) != owner:
            return (
                CheckResult.error,
                f"The {purpose} list {url} belongs to {owner}, not to the credential's issuer: "
                f"whether it is {STATES[purpose]} is unknown.",
                None,
            )
        if index >= status_list.size:
            return CheckResult.error, f"Index {index} is outside the {purpose} list {url}.", None
        holder = credentials_repository.status_at(self.session, status_list, index)
        state = STATES[purpose]
        if holder == state:
            return (
                CheckResult.fail,
                f"The issuer has {state} this credential ({purpose} list {url}, index {index}).",
                purpose,
            )
        return CheckResult.pass_, f"Not {state} ({purpose} list {url} read now).", purpose

    def _remote(self, url: str, purpose: str, index: int, issuer_id: str | None) -> Finding:
        """Another service's list: fetched safely, verified as a credential, decoded."""
        state = STATES[purpose]
        unknown = f"whether the credential is {state} is unknown"
        if self.fetcher is None:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} was not read (remote fetching is off): {unknown}.",
                None,
            )
        if self.depth > 0:
            return (
                CheckResult.error,
                f"A status list that itself names a status list ({url}) is not followed.",
                None,
            )
        try:
            raw = fetch_status_list(self.fetcher, url)
        except RemoteFetchError as exc:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} could not be read ({exc}): {unknown}.",
                None,
            )
        listed = self.verify_list(raw)
        doubts = [
            c.detail
            for c in listed.checks
            if c.check
            in {CheckName.format, CheckName.signature, CheckName.issuer, CheckName.validity_period}
            and c.result in {CheckResult.fail, CheckResult.error}
        ]
        if doubts:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} cannot be trusted ({doubts[0]}): {unknown}.",
                None,
            )
        doc = listed.credential or {}
        if not LIST_TYPES & set(map(str, types_of(doc))):
            return CheckResult.error, f"{url} is not a status list credential: {unknown}.", None
        list_issuer = issuer_id_of(doc)
        if (
            list_issuer is None
            or issuer_id is None
            or canonical_identifier(list_issuer) != canonical_identifier(issuer_id)
        ):
            return (
                CheckResult.error,
                f"The {purpose} list at {url} was issued by {list_issuer}, not by the credential's issuer: {unknown}.",
                None,
            )
        subject = first(doc.get("credentialSubject"))
        if not isinstance(subject, dict) or subject.get("statusPurpose") != purpose:
            return CheckResult.error, f"The list at {url} is not a {purpose} list: {unknown}.", None
        try:
            bits = bitstring.decode(subject.get("encodedList", ""))
            if len(bits) * 8 < bitstring.MIN_LIST_SIZE:
                # Bitstring Status List v1.0 §3.2: shorter lists betray their holders; an error.
                raise bitstring.StatusListError(
                    f"the list has {len(bits) * 8} entries, fewer than the {bitstring.MIN_LIST_SIZE:,} the specification requires"
                )
            is_set = bitstring.bit(bits, index)
        except bitstring.StatusListError as exc:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} could not be used ({exc}): {unknown}.",
                None,
            )
        if is_set:
            return (
                CheckResult.fail,
                f"The issuer has {state} this credential ({purpose} list {url}, index {index}).",
                purpose,
            )
        return (
            CheckResult.pass_,
            f"Not {state} ({purpose} list {url}, verified and read now).",
            purpose,
        )

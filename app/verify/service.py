"""Verification of Open Badges 3.0 / W3C VC credentials: one service for the API, pages and CLI.

Every check is reported by name with pass/fail/error/skipped and a sentence; `verified` is true
only when nothing failed or errored. A check that could not be carried out is `error` and makes
the status `unknown`: the verifier never reports a fact it did not establish.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.core import jose
from app.core.config import Settings
from app.core.errors import AppError
from app.core.keys import PublicKey, UnusableKey, public_key_from_jwk
from app.core.standards import schema_errors
from app.credentials import repository as credentials_repository
from app.credentials.models import Credential
from app.issuers import repository as issuers_repository
from app.issuers.models import KeyStatus
from app.status import bitstring
from app.status import repository as status_repository
from app.status import service as status_service
from app.status.models import StatusList
from app.verify import repository as verify_repository
from app.verify.keys import (
    KeyCompromised,
    KeyNotFound,
    KeyUnresolvable,
    ResolvedKey,
    TrustedKey,
    did_of,
    resolve_offline,
)
from app.verify.remote import Fetcher, RemoteFetchError, fetch_status_list, resolve_remote_key
from app.verify.schemas import (
    AchievementSummary,
    Check,
    CheckName,
    CheckResult,
    CredentialSummary,
    IssuerSummary,
    Status,
    VerificationResult,
)

ACCEPTED_TYP = {None, "JWT", "vc+jwt", "vc+ld+jwt"}
ACCEPTED_CTY = {None, "vc", "vc+ld+json", "credential+claims"}
JWT_ONLY_CLAIMS = ("iss", "jti", "sub", "nbf", "exp", "iat", "aud")
MAX_TOKEN_CHARS = 512 * 1024
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")


@dataclass
class Verification:
    """Everything a verification found; `result()` is the public contract's shape."""

    checks: list[Check] = field(default_factory=list)
    credential: dict[str, Any] | None = (
        None  # the credential as presented/signed (unverified if it failed)
    )
    header: dict[str, Any] | None = None
    record: Credential | None = None  # our own issuance record, when the credential is ours
    record_read: bool = False  # whether `record` was looked up already (it may be None)
    jwt: str | None = None
    revocation: str | None = None  # "revoked" | "suspended" once status lists say so

    def add(self, name: CheckName, result: CheckResult, detail: str) -> None:
        self.checks.append(Check(check=name, result=result, detail=detail))

    def failed(self, name: CheckName) -> bool:
        return any(c.check == name and c.result == CheckResult.fail for c in self.checks)

    @property
    def status(self) -> Status:
        results = {c.check: c.result for c in self.checks}
        hard = (
            CheckName.format,
            CheckName.signature,
            CheckName.issuer,
            CheckName.schema,
            CheckName.record,
        )
        if any(results.get(n) == CheckResult.fail for n in hard):
            return Status.invalid
        if results.get(CheckName.status) == CheckResult.fail:
            return Status.suspended if self.revocation == "suspended" else Status.revoked
        if any(r == CheckResult.error for r in results.values()):
            return Status.unknown
        if results.get(CheckName.validity_period) == CheckResult.fail:
            return Status.not_yet_valid if self._not_yet_valid else Status.expired
        return Status.valid

    _not_yet_valid: bool = False

    def result(self) -> VerificationResult:
        status = self.status
        return VerificationResult(
            verified=status is Status.valid,
            status=status,
            checks=list(self.checks),
            credential=self.summary(),
        )

    def summary(self) -> CredentialSummary | None:
        c = self.credential
        if c is None:
            return None
        issuer = c.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        issuer_name = issuer.get("name") if isinstance(issuer, dict) else None
        subject = _first(c.get("credentialSubject"))
        achievement = subject.get("achievement") if isinstance(subject, dict) else None
        name = achievement.get("name") if isinstance(achievement, dict) else c.get("name")
        return CredentialSummary(
            id=_str(c.get("id")),
            issuer=IssuerSummary(id=_str(issuer_id), name=_str(issuer_name)),
            achievement=AchievementSummary(name=_str(name)),
            valid_from=_str(c.get("validFrom") or c.get("issuanceDate")),
            valid_until=_str(c.get("validUntil") or c.get("expirationDate")),
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def parse_time(value: Any) -> datetime | None:
    """A date-time from an ISO 8601 string or NumericDate, or None if it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # 1e20, inf, NaN: not a date, not a 500
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


@dataclass
class Verifier:
    """Verifies credentials against our database (own issuers) and offline key material (others)."""

    session: Session
    settings: Settings
    key_cache: dict[str, PublicKey] = field(default_factory=dict)
    trusted_keys: Mapping[str, TrustedKey] | None = None
    now: datetime | None = None
    # Fetches foreign issuers' did:web documents, HTTPS keys and status lists; None: offline only.
    fetcher: Fetcher | None = None
    # How deep in status-list verification we are: a list is itself a credential (no loops).
    depth: int = 0

    # --- entry points ---------------------------------------------------------------------------

    def verify_jwt(self, token: str) -> Verification:
        """Verify a compact VC-JWT (VCDM 2.0 whole-payload or legacy VCDM 1.1 `vc` claim)."""
        v = Verification(jwt=token)
        token = token.strip()
        if len(token) > MAX_TOKEN_CHARS or not _COMPACT_JWS.match(token):
            v.add(
                CheckName.format,
                CheckResult.fail,
                "Not a compact JWT: expected three base64url parts.",
            )
            return self._skip_rest(v)
        try:
            jws = jose.parse(token)  # read once: the signature is checked on these very bytes
        except jose.JoseError as exc:
            v.add(CheckName.format, CheckResult.fail, str(exc))
            return self._skip_rest(v)
        header, payload = jws.header, jws.payload
        v.header = header
        credential, problem = _credential_from_payload(header, payload)
        if credential is None:
            v.add(CheckName.format, CheckResult.fail, problem)
            return self._skip_rest(v)
        v.credential = credential
        v.add(CheckName.format, CheckResult.pass_, problem)
        cred_id = credential.get("id")
        record_id = self._own_record_id(cred_id) if isinstance(cred_id, str) else None
        # Our own credential signed by our own key: the key's row and the issuance record are
        # read together (one query), and the record answers the status check too.
        self._check_proof(v, jws, credential, record_id=record_id)
        self._check_validity(v, credential, payload)
        # The schema result is a function of the signed payload alone: remembered by its bytes.
        self._check_schema(v, credential, content_key=jws.payload_segment)
        if not v.record_read:
            v.record = self._record(record_id)
        self._check_status(v, credential)
        self._check_record(v, credential, token)
        return v

    def verify_json(self, credential: dict[str, Any]) -> Verification:
        """Verify a credential given as JSON: ours is checked against the signed record."""
        cred_id = credential.get("id")
        record = self._own_record(cred_id) if isinstance(cred_id, str) else None
        if record is not None:
            v = self.verify_jwt(record.jwt)
            if v.credential is not None and _strip_jwt_claims(v.credential) != _strip_jwt_claims(
                credential
            ):
                v.checks = [c for c in v.checks if c.check != CheckName.record]
                v.add(
                    CheckName.record,
                    CheckResult.fail,
                    "The JSON differs from the credential this service signed under that id.",
                )
                v.credential = credential
            return v
        v = Verification(credential=credential)
        if not _is_vc(credential):
            v.add(
                CheckName.format,
                CheckResult.fail,
                "The JSON is not a Verifiable Credential (no VerifiableCredential type).",
            )
            return self._skip_rest(v)
        v.add(CheckName.format, CheckResult.pass_, "A Verifiable Credential in JSON.")
        proof = credential.get("proof")
        if not proof:
            v.add(
                CheckName.signature,
                CheckResult.fail,
                "The credential carries no proof: unsecured JSON cannot be verified. Ask for the signed VC-JWT.",
            )
        else:
            kinds = {
                p.get("cryptosuite") or p.get("type")
                for p in (proof if isinstance(proof, list) else [proof])
                if isinstance(p, dict)
            }
            v.add(
                CheckName.signature,
                CheckResult.error,
                f"Embedded Data Integrity proofs ({', '.join(sorted(str(k) for k in kinds))}) are not checked by this verifier; verify the VC-JWT form instead.",
            )
        v.add(
            CheckName.issuer,
            CheckResult.skipped,
            "No signature was checked, so no key was bound to the issuer.",
        )
        self._check_validity(v, credential, {})
        self._check_schema(v, credential)
        self._check_status(v, credential)
        self._check_record(v, credential, None)
        return v

    # --- checks ---------------------------------------------------------------------------------

    def _skip_rest(self, v: Verification) -> Verification:
        done = {c.check for c in v.checks}
        for name in CheckName:
            if name not in done:
                v.add(name, CheckResult.skipped, "Not checked: the credential could not be read.")
        return v

    def _check_proof(
        self,
        v: Verification,
        jws: jose.Jws,
        credential: dict[str, Any],
        *,
        record_id: uuid.UUID | None,
    ) -> None:
        header, payload = jws.header, jws.payload
        issuer = credential.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        if not isinstance(issuer_id, str) or not issuer_id:
            v.add(
                CheckName.signature,
                CheckResult.skipped,
                "Not checked: the credential names no issuer.",
            )
            v.add(CheckName.issuer, CheckResult.fail, "The credential names no issuer.")
            return
        iss = payload.get("iss")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            v.add(CheckName.signature, CheckResult.fail, "The JWT header's kid is not a string.")
            v.add(CheckName.issuer, CheckResult.skipped, "Not checked: no usable key id.")
            return
        try:
            resolved = self._resolve_key(
                kid=kid,
                header_jwk=header.get("jwk"),
                issuer_id=issuer_id,
                fetch_record=(v, record_id),
            )
        except KeyCompromised as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Compromised signing key: {exc}.")
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "Not checked: the signing key is compromised.",
            )
            return
        except KeyNotFound as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Unknown signing key: {exc}")
            v.add(
                CheckName.issuer, CheckResult.skipped, "Not checked: the signing key was not found."
            )
            return
        except KeyUnresolvable as exc:
            v.add(CheckName.signature, CheckResult.error, f"Could not check the signature: {exc}")
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "Not checked: the signing key could not be obtained.",
            )
            return
        try:
            jose.verify_jws(jws, resolved.key)
        except jose.JoseError as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Signature invalid: {exc}.")
            v.add(CheckName.issuer, CheckResult.skipped, "Not checked: the signature is invalid.")
            return
        alg = jose.algorithm_for_key(resolved.key)
        v.add(
            CheckName.signature,
            CheckResult.pass_,
            f"Valid {alg} signature by {kid or 'the embedded key'} ({resolved.source}).",
        )
        # Issuer binding: the key must belong to the credential's issuer, and `iss` must agree.
        if iss is not None and iss != issuer_id:
            v.add(
                CheckName.issuer,
                CheckResult.fail,
                f"The JWT iss ({iss}) is not the credential's issuer ({issuer_id}).",
            )
        elif resolved.controller is not None and resolved.controller != issuer_id:
            v.add(
                CheckName.issuer,
                CheckResult.fail,
                f"The signing key belongs to {resolved.controller}, not to the credential's issuer {issuer_id}.",
            )
        elif resolved.controller is None and self._is_ours(issuer_id):
            v.add(
                CheckName.issuer,
                CheckResult.fail,
                f"{issuer_id} is an issuer of this service, and this key is not one of its keys.",
            )
        elif resolved.controller is None:
            v.add(
                CheckName.issuer,
                CheckResult.pass_,
                f"Issued by {issuer_id}; the key ({resolved.source}) is not bound to that issuer by a "
                "document of theirs, so it proves the credential is intact but not, by itself, who issued it.",
            )
        else:
            v.add(
                CheckName.issuer,
                CheckResult.pass_,
                f"The signing key belongs to the issuer {issuer_id}.",
            )

    def _resolve_key(
        self,
        *,
        kid: str | None,
        header_jwk: Any,
        issuer_id: str,
        fetch_record: tuple[Verification, uuid.UUID | None] | None = None,
    ) -> ResolvedKey:
        prefix = self._our_did_prefix()
        if kid is not None and kid.startswith("#") and issuer_id.startswith("did:"):
            # A DID URL relative to the issuer's DID ('#z6Mk…', '#0'), as some issuers write it.
            kid = did_of(issuer_id) + kid
        if kid is not None and kid.startswith(prefix):
            return self._our_key(kid, prefix, fetch_record)
        if kid is None and header_jwk is None and issuer_id.startswith(prefix):
            raise KeyNotFound("the token names no key id, and our issuers always sign with one")
        remote = (
            kid is not None
            and kid.startswith(("did:web:", "https://"))
            and self.fetcher is not None
            and not (self.trusted_keys and kid in self.trusted_keys)
        )
        if not remote or kid is None or self.fetcher is None:
            return resolve_offline(
                kid=kid, header_jwk=header_jwk, issuer_id=issuer_id, trusted=self.trusted_keys
            )
        # A kid that names a published key wins over any `jwk` the token carries about itself.
        if kid.startswith(self.settings.base_url + "/"):
            # Never fetch from ourselves: our issuers' keys are in the register, under did:web ids.
            raise KeyNotFound(f"{kid} is under this service's URL, and it publishes no such key")
        return resolve_remote_key(self.fetcher, kid, issuer_id)

    def _our_did_prefix(self) -> str:
        return f"did:web:{self.settings.did_host}:{self.settings.did_path_prefix}issuers:"

    def _is_ours(self, ident: str) -> bool:
        return ident.startswith(self._our_did_prefix())

    def _our_key(
        self,
        kid: str,
        prefix: str,
        fetch_record: tuple[Verification, uuid.UUID | None] | None = None,
    ) -> ResolvedKey:
        """One of our issuers' keys, read from the register; with `fetch_record` (the verification
        and the credential's record id) the issuance record is read in the same query."""
        did, _, fragment = kid.partition("#")
        slug = did[len(prefix) :]
        if not fragment:
            raise KeyNotFound(f"{kid} names no key (no #fragment)")
        found = verify_repository.key_and_record(
            self.session,
            slug=slug,
            key_id=fragment,
            record_id=fetch_record[1] if fetch_record is not None else None,
        )
        if found is None:
            if issuers_repository.get_by_slug(self.session, slug) is None:  # only to say which
                raise KeyNotFound(f"{did} is not an issuer of this service")
            raise KeyNotFound(f"{did} has no key {fragment}")
        state, record = found
        if fetch_record is not None:
            fetch_record[0].record = record
            fetch_record[0].record_read = True
        # Status is read from the register on every verification (before the parsed-key cache),
        # so a key marked compromised stops verifying at once, even if its key is cached. The key
        # material itself is immutable: the kid's fragment is its RFC 7638 thumbprint.
        if state.status == KeyStatus.compromised:
            when = (
                state.compromised_at.isoformat(timespec="seconds").replace("+00:00", "Z")
                if state.compromised_at
                else "an unrecorded date"
            )
            raise KeyCompromised(
                f"the key {kid} was reported compromised on {when}; "
                "credentials it signed can no longer be trusted"
            )
        key = self.key_cache.get(kid)
        if key is None:
            try:
                key = public_key_from_jwk(state.public_jwk)
            except UnusableKey as exc:  # pragma: no cover - we only store keys we generated
                raise KeyUnresolvable(str(exc)) from exc
            self.key_cache[kid] = key
        return ResolvedKey(key, did, "this service's key register")

    def _check_validity(
        self, v: Verification, credential: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        now = self.now or datetime.now(UTC)
        # The credential's own dates and the JWT's nbf/exp both bound the validity period; when
        # both are present the stricter one wins (RFC 7519: a token past its `exp` MUST NOT be
        # accepted, whatever validUntil says).
        starts = [
            ("validFrom", credential.get("validFrom", credential.get("issuanceDate"))),
            ("nbf", payload.get("nbf")),
        ]
        ends = [
            ("validUntil", credential.get("validUntil", credential.get("expirationDate"))),
            ("exp", payload.get("exp")),
        ]
        bounds: dict[str, datetime] = {}
        for name, raw in starts + ends:
            if raw is None:
                continue
            moment = parse_time(raw)
            if moment is None:
                v.add(
                    CheckName.validity_period,
                    CheckResult.fail,
                    f"{name} is not a date-time: {raw!r}.",
                )
                return
            bounds[name] = moment
        start = max((bounds[n] for n, _ in starts if n in bounds), default=None)
        end = min((bounds[n] for n, _ in ends if n in bounds), default=None)
        if start is not None and now < start:
            v._not_yet_valid = True
            v.add(
                CheckName.validity_period, CheckResult.fail, f"Not valid until {start.isoformat()}."
            )
        elif end is not None and now >= end:
            v.add(CheckName.validity_period, CheckResult.fail, f"Expired on {end.isoformat()}.")
        elif end is not None:
            v.add(CheckName.validity_period, CheckResult.pass_, f"Valid until {end.isoformat()}.")
        else:
            v.add(CheckName.validity_period, CheckResult.pass_, "Valid, with no expiry date.")

    def _check_schema(
        self, v: Verification, credential: dict[str, Any], *, content_key: str | None = None
    ) -> None:
        """The OB 3.0 schema check; `content_key` (the signed payload, which the credential is a
        function of) lets the outcome be remembered: the same token is verified again and again."""
        if content_key is None:
            v.add(CheckName.schema, *_schema_outcome(credential))
            return
        key = hashlib.sha256(content_key.encode()).digest()
        with _SCHEMA_OUTCOMES_LOCK:
            outcome = _SCHEMA_OUTCOMES.get(key)
            if outcome is not None:
                _SCHEMA_OUTCOMES.move_to_end(key)
        if outcome is None:
            outcome = _schema_outcome(credential)
            with _SCHEMA_OUTCOMES_LOCK:
                _SCHEMA_OUTCOMES[key] = outcome
                while len(_SCHEMA_OUTCOMES) > _SCHEMA_OUTCOMES_MAX:
                    _SCHEMA_OUTCOMES.popitem(last=False)
        v.add(CheckName.schema, *outcome)

    def _check_status(self, v: Verification, credential: dict[str, Any]) -> None:
        raw = credential.get("credentialStatus")
        if raw is None:
            v.add(
                CheckName.status,
                CheckResult.skipped,
                "The credential carries no status entry to check.",
            )
            return
        entries = raw if isinstance(raw, list) else [raw]
        findings: list[tuple[CheckResult, str, str | None]] = [
            self._status_entry(e, v.record, _issuer_id(credential)) for e in entries
        ]
        for purpose in ("revocation", "suspension"):
            for result, detail, found in findings:
                if result == CheckResult.fail and found == purpose:
                    v.revocation = "revoked" if purpose == "revocation" else "suspended"
                    v.add(CheckName.status, CheckResult.fail, detail)
                    return
        errors = [detail for result, detail, _ in findings if result == CheckResult.error]
        if errors:
            # Never "not revoked" for a list we could not read.
            v.add(CheckName.status, CheckResult.error, " ".join(errors))
            return
        passed = [detail for result, detail, _ in findings if result == CheckResult.pass_]
        if passed:
            v.add(CheckName.status, CheckResult.pass_, " ".join(passed))
        else:
            v.add(
                CheckName.status, CheckResult.skipped, "No revocation or suspension entry to check."
            )

    def _status_entry(
        self, entry: Any, record: Credential | None, issuer_id: str | None
    ) -> tuple[CheckResult, str, str | None]:
        """(result, detail, purpose) for one status entry; `fail` means the bit is set."""
        if not isinstance(entry, dict):
            return CheckResult.error, "A credentialStatus entry is not an object.", None
        kind = entry.get("type")
        purpose = entry.get("statusPurpose")
        url = entry.get("statusListCredential")
        index_raw = entry.get("statusListIndex")
        if kind not in {"BitstringStatusListEntry", "StatusList2021Entry"}:
            return CheckResult.error, f"Status entries of type {kind!r} are not supported.", None
        if purpose not in {"revocation", "suspension"}:
            return (
                CheckResult.skipped,
                f"Status purpose {purpose!r} does not affect validity.",
                None,
            )
        try:
            index = (
                int(index_raw)
                if isinstance(index_raw, int | str) and not isinstance(index_raw, bool)
                else -1
            )
        except ValueError:
            index = -1
        if index < 0 or not isinstance(url, str):
            return (
                CheckResult.error,
                f"The {purpose} entry has no usable statusListIndex/statusListCredential.",
                None,
            )
        prefix = self.settings.url("/status/")
        if url.startswith(prefix) and record is not None:
            held = record.revocation_index if purpose == "revocation" else record.suspension_index
            if held == index:
                # The bit of our own list is derived from this very row (same transaction).
                state = "revoked" if purpose == "revocation" else "suspended"
                if record.status == state:
                    return CheckResult.fail, f"The issuer has {state} this credential.", purpose
                return (
                    CheckResult.pass_,
                    f"Not {state} (this service's {purpose} list, read now).",
                    purpose,
                )
        if url.startswith(prefix):
            return self._local_status(url[len(prefix) :], purpose, index)
        return self._remote_status(url, purpose, index, credential_issuer=issuer_id)

    def _local_status_list(self, path: str, purpose: str | None = None) -> StatusList | None:
        parts = path.split("/")
        if len(parts) != 3 or (purpose is not None and parts[1] != purpose):
            return None
        try:
            _issuer, status_list = status_service.find_list(
                self.session, slug=parts[0], purpose=parts[1], seq=int(parts[2])
            )
        except (ValueError, AppError):
            return None
        return status_list

    def _local_status(
        self, path: str, purpose: str, index: int
    ) -> tuple[CheckResult, str, str | None]:
        status_list = self._local_status_list(path, purpose)
        if status_list is None:
            return CheckResult.error, f"The {purpose} list {path} does not exist here.", None
        if index >= status_list.size:
            return CheckResult.error, f"Index {index} is outside the {purpose} list {path}.", None
        holder = status_repository.credential_status_at(self.session, status_list, index)
        is_set = holder == ("revoked" if purpose == "revocation" else "suspended")
        if is_set:
            what = "revoked" if purpose == "revocation" else "suspended"
            return (
                CheckResult.fail,
                f"The issuer has {what} this credential ({purpose} list {path}, index {index}).",
                purpose,
            )
        return (
            CheckResult.pass_,
            f"Not {'revoked' if purpose == 'revocation' else 'suspended'} ({purpose} list {path} read now).",
            purpose,
        )

    def _remote_status(
        self, url: str, purpose: str, index: int, *, credential_issuer: str | None
    ) -> tuple[CheckResult, str, str | None]:
        """Read another service's status list: fetched safely, verified as a credential, decoded."""
        state = "revoked" if purpose == "revocation" else "suspended"
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
        lister = replace(self, depth=self.depth + 1)
        listed = lister.verify_jwt(raw) if isinstance(raw, str) else lister.verify_json(raw)
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
        subject = _first(doc.get("credentialSubject"))
        raw_types = doc.get("type")
        types: list[Any] = raw_types if isinstance(raw_types, list) else [raw_types]
        if "BitstringStatusListCredential" not in types and "StatusList2021Credential" not in types:
            return CheckResult.error, f"{url} is not a status list credential: {unknown}.", None
        if _issuer_id(doc) != credential_issuer:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} was issued by {_issuer_id(doc)}, not by the credential's issuer: {unknown}.",
                None,
            )
        if not isinstance(subject, dict) or subject.get("statusPurpose") != purpose:
            return CheckResult.error, f"The list at {url} is not a {purpose} list: {unknown}.", None
        try:
            bits = bitstring.decode(subject.get("encodedList", ""))
            is_set = bitstring.bit(bits, index)
        except bitstring.StatusListError as exc:
            return (
                CheckResult.error,
                f"The {purpose} list at {url} could not be decoded ({exc}): {unknown}.",
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

    def _own_record_id(self, credential_id: str) -> uuid.UUID | None:
        """The record id of one of our credentials from its id (URL), without reading anything."""
        prefix = self.settings.url("/credentials/")
        if not credential_id.startswith(prefix):
            return None
        try:
            return uuid.UUID(credential_id[len(prefix) :])
        except ValueError:
            return None

    def _record(self, record_id: uuid.UUID | None) -> Credential | None:
        return (
            credentials_repository.get(self.session, record_id) if record_id is not None else None
        )

    def _own_record(self, credential_id: str) -> Credential | None:
        return self._record(self._own_record_id(credential_id))

    def _check_record(self, v: Verification, credential: dict[str, Any], token: str | None) -> None:
        cred_id = credential.get("id")
        ours = isinstance(cred_id, str) and cred_id.startswith(self.settings.url("/credentials/"))
        issuer = credential.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        if not ours and not (isinstance(issuer_id, str) and self._is_ours(issuer_id)):
            v.add(
                CheckName.record,
                CheckResult.skipped,
                "Issued elsewhere: this service holds no record of it.",
            )
            return
        lists = self.settings.url("/status/")
        if isinstance(cred_id, str) and cred_id.startswith(lists):
            # Status lists are re-signed on demand, so no token is stored: the list must exist.
            if self._local_status_list(cred_id[len(lists) :]) is not None:
                v.add(
                    CheckName.record, CheckResult.pass_, "A status list published by this service."
                )
            else:
                v.add(
                    CheckName.record,
                    CheckResult.fail,
                    "This service publishes no status list under this id.",
                )
            return
        record = (
            v.record
            if v.record is not None
            else (self._own_record(cred_id) if isinstance(cred_id, str) else None)
        )
        if record is None:
            v.add(
                CheckName.record,
                CheckResult.fail,
                "This service has no record of issuing a credential with this id.",
            )
            return
        v.record = record
        if token is not None and record.jwt != token.strip():
            v.add(
                CheckName.record,
                CheckResult.fail,
                "The token differs from the one recorded at issuance.",
            )
            return
        v.add(
            CheckName.record,
            CheckResult.pass_,
            f"Matches the issuance record of {record.issued_at.date().isoformat()}.",
        )


# Schema outcomes by SHA-256 of the signed payload segment (bounded LRU, shared by all threads).
_SCHEMA_OUTCOMES: OrderedDict[bytes, tuple[CheckResult, str]] = OrderedDict()
_SCHEMA_OUTCOMES_LOCK = threading.Lock()
_SCHEMA_OUTCOMES_MAX = 4096


def _schema_outcome(credential: dict[str, Any]) -> tuple[CheckResult, str]:
    """(result, detail) of the OB 3.0 schema check: a pure function of the credential."""
    types = credential.get("type")
    types = types if isinstance(types, list) else [types]
    contexts = credential.get("@context")
    is_ob = "OpenBadgeCredential" in types or "AchievementCredential" in types
    if not is_ob:
        return (
            CheckResult.skipped,
            "Not an Open Badges credential; the OB 3.0 schema does not apply.",
        )
    if (
        not isinstance(contexts, list)
        or not contexts
        or contexts[0] != "https://www.w3.org/ns/credentials/v2"
    ):
        return (
            CheckResult.skipped,
            "A VCDM 1.1 Open Badge; the official OB 3.0 schema here describes the VCDM 2.0 form.",
        )
    document = _strip_jwt_claims(credential)
    status = document.get("credentialStatus")
    note = ""
    if _is_status_pair(status):
        # The one deviation we accept: a revocation and a suspension entry side by side (VCDM 2.0
        # allows an array; the strict OB 3.0 schema allows one object). Each entry is validated
        # in place of the pair, so everything else is held to the schema as usual.
        errors = [
            err
            for entry in status
            for err in schema_errors({**document, "credentialStatus": entry})
        ]
        note = " (credentialStatus holds a revocation and a suspension entry, as VCDM 2.0 allows)"
    else:
        errors = schema_errors(document)
    if errors:
        return CheckResult.fail, "Does not match the OB 3.0 schema: " + "; ".join(errors)
    return CheckResult.pass_, "Matches the OB 3.0 AchievementCredential schema" + note + "."


def _issuer_id(credential: dict[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    value = issuer.get("id") if isinstance(issuer, dict) else issuer
    return value if isinstance(value, str) else None


def _is_vc(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    types = obj.get("type")
    types = types if isinstance(types, list) else [types]
    return "VerifiableCredential" in types


def _is_status_pair(status: Any) -> TypeGuard[list[dict[str, Any]]]:
    return (
        isinstance(status, list)
        and len(status) == 2
        and all(isinstance(e, dict) and e.get("type") == "BitstringStatusListEntry" for e in status)
        and sorted(str(e.get("statusPurpose")) for e in status) == ["revocation", "suspension"]
    )


def _strip_jwt_claims(credential: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in credential.items() if k not in JWT_ONLY_CLAIMS}


def _credential_from_payload(
    header: dict[str, Any], payload: dict[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    """The credential inside a JWT payload, or None and the reason it is not one."""
    typ, cty = header.get("typ"), header.get("cty")
    if typ not in ACCEPTED_TYP:
        return None, f"Unsupported JWT typ {typ!r}: expected absent, 'JWT' or 'vc+jwt'."
    if cty not in ACCEPTED_CTY:
        return None, f"Unsupported JWT cty {cty!r}."
    crit = header.get("crit")
    if crit is not None:
        return (
            None,
            f"The header marks extensions as critical that this verifier does not understand: {crit!r}.",
        )
    if "@context" in payload:
        if "vc" in payload or "vp" in payload:
            return None, "A VCDM 2.0 payload must not also carry the legacy 'vc' or 'vp' claims."
        if not _is_vc(payload):
            return (
                None,
                "The payload is not a Verifiable Credential (no VerifiableCredential type).",
            )
        return payload, "A VC-JWT with the credential as its payload (VCDM 2.0)."
    vc = payload.get("vc")
    if isinstance(vc, dict):
        if not _is_vc(vc):
            return None, "The 'vc' claim is not a Verifiable Credential."
        credential = dict(vc)
        # VC-JWT 1.1 lets registered claims stand in for credential properties.
        if "id" not in credential and isinstance(payload.get("jti"), str):
            credential["id"] = payload["jti"]
        if "issuer" not in credential and isinstance(payload.get("iss"), str):
            credential["issuer"] = payload["iss"]
        if "issuanceDate" not in credential and "nbf" in payload:
            credential["issuanceDate"] = payload["nbf"]
        if "expirationDate" not in credential and "exp" in payload:
            credential["expirationDate"] = payload["exp"]
        return credential, "A legacy VC-JWT with a 'vc' claim (VCDM 1.1)."
    if "vp" in payload:
        return None, "This is a presentation (vp), not a credential."
    return None, "The payload holds no credential: neither a VCDM 2.0 credential nor a 'vc' claim."


def verify_any(verifier: Verifier, credential: str | dict[str, Any]) -> Verification:
    if isinstance(credential, dict):
        return verifier.verify_json(credential)
    return verifier.verify_jwt(credential)


def credential_uuid_from_url(settings: Settings, url: str) -> uuid.UUID | None:
    """The id of one of our credentials from its URL (the QR code's content), if it is ours."""
    parts = urlsplit(url.strip())
    base = urlsplit(settings.base_url)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        return None
    prefix = base.path.rstrip("/") + "/credentials/"
    if not parts.path.startswith(prefix):
        return None
    try:
        return uuid.UUID(parts.path[len(prefix) :].split("/")[0])
    except ValueError:
        return None

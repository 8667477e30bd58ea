"""Verification of Open Badges 3.0 / W3C VC credentials: one service for the API, pages and CLI.

The checks, in order, each in a module of its own: `format` (envelope.py: the credential out of
its JWT, claims held to its fields), `signature` and `issuer` (binding.py: the key, and whether
it is the issuer's), `trust` (trust.py: who stands behind that key), `validity_period`
(validity.py), `schema` (schema.py), `data_model` (data_model.py), `status` (status.py) and
`record` (record.py); verdict.py adds them up. Every check is reported by name with
pass/fail/error/skipped and a sentence; a check that could not be carried out is `error` and
makes the status `unknown`: the verifier never reports a fact it did not establish. Nothing is
fetched for a credential whose signature or issuer binding failed, except the key itself.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.core import jose
from app.core import text as client_text
from app.core.config import Settings
from app.core.jsonld import ContextLoader
from app.core.keys import PublicKey
from app.core.metrics import VERIFICATIONS
from app.verify.binding import (
    KeyCompromised,
    KeyLookup,
    KeyNotBound,
    KeyNotFound,
    KeyResolver,
    KeyUnresolvable,
    algorithm_problem,
    is_bound,
)
from app.verify.data_model import Version, data_model_outcome
from app.verify.envelope import (
    credential_from_jwt,
    is_vc,
    issuer_id_of,
    strip_jwt_claims,
    text_or_none,
)
from app.verify.keys import ResolvedKey, TrustedKey
from app.verify.proofs import check_proofs
from app.verify.record import own_record_id, read_record, record_outcome
from app.verify.remote import Fetcher
from app.verify.schema import cached_outcome, schema_outcome
from app.verify.schemas import CheckName, CheckResult
from app.verify.status import StatusChecker
from app.verify.trust import assess, unestablished
from app.verify.validity import validity_period
from app.verify.verdict import Verification

if TYPE_CHECKING:
    from app.core.context import AppContext

__all__ = [
    "Verification",
    "Verifier",
    "credential_uuid_from_url",
]

MAX_TOKEN_CHARS = 512 * 1024
# Shipped contexts only: for credentials whose issuer is not established, and offline verifiers.
LOCAL_CONTEXTS = ContextLoader()
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")


@dataclass
class Verifier:
    """Verifies credentials against our database (own issuers, trust list) and, for others,
    their identifiers or (with a fetcher) their issuers' published keys and status lists."""

    session: Session
    settings: Settings
    key_cache: dict[str, PublicKey] = field(default_factory=dict)
    trusted_keys: Mapping[str, TrustedKey] | None = None
    now: datetime | None = None
    # Fetches foreign issuers' did:web documents, HTTPS keys and status lists; None: offline only.
    fetcher: Fetcher | None = None
    # How deep in status-list verification we are: a list is itself a credential (no loops).
    depth: int = 0
    # JSON-LD contexts of the data_model check (shipped ones only, unless the app's loader).
    contexts: ContextLoader = field(default_factory=lambda: LOCAL_CONTEXTS)

    @classmethod
    def from_context(
        cls,
        ctx: AppContext,
        session: Session,
        *,
        trusted_keys: Mapping[str, TrustedKey] | None = None,
    ) -> Verifier:
        """The verifier of a running app: its settings, parsed-key cache and guarded fetcher."""
        return cls(
            session=session,
            settings=ctx.settings,
            key_cache=ctx.public_keys,
            trusted_keys=trusted_keys,
            fetcher=ctx.fetcher,
            contexts=ctx.contexts,
        )

    @property
    def _keys(self) -> KeyResolver:
        return KeyResolver(
            session=self.session,
            settings=self.settings,
            key_cache=self.key_cache,
            trusted_keys=self.trusted_keys,
            fetcher=self.fetcher,
        )

    # --- entry points ---------------------------------------------------------------------------

    def verify(self, credential: str | dict[str, Any]) -> Verification:
        verification = (
            self.verify_json(credential)
            if isinstance(credential, dict)
            else self.verify_jwt(credential)
        )
        VERIFICATIONS.labels(verification.status.value).inc()
        return verification

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
            return _skip_rest(v)
        try:
            jws = jose.parse(token)  # read once: the signature is checked on these very bytes
        except jose.JoseError as exc:
            v.add(CheckName.format, CheckResult.fail, str(exc))
            return _skip_rest(v)
        v.header = jws.header
        envelope = credential_from_jwt(jws.header, jws.payload)
        if envelope.credential is None:
            v.add(CheckName.format, CheckResult.fail, envelope.detail)
            return _skip_rest(v)
        credential = envelope.credential
        v.credential = credential
        v.add(CheckName.format, CheckResult.pass_, envelope.detail)
        record_id = own_record_id(self.settings, credential.get("id"))
        lookup = self._check_proof(v, jws, credential, record_id=record_id)
        if lookup is not None and lookup.record_read:
            v.record, v.record_read = lookup.record, True
        else:
            v.record, v.record_read = read_record(self.session, record_id), True
        record_is_token = v.record is not None and v.record.jwt == token
        self._check_validity(v, credential, jws.payload)
        v.add(
            CheckName.schema,
            *cached_outcome(jws.payload_segment, schema_outcome, credential),
        )
        self._check_data_model(
            v,
            credential,
            version="1.1" if envelope.legacy else "2.0",
            content_key=jws.payload_segment,
            checked_at_issuance=record_is_token,
        )
        self._check_status(v, credential, record_is_token=record_is_token)
        self._check_record(v, credential, token)
        return v

    def verify_json(self, credential: dict[str, Any]) -> Verification:
        """Verify a credential given as JSON: ours is checked against the signed record."""
        fault = client_text.find_fault(credential)
        if fault is not None:
            # Not shown back either: a page or response cannot encode a lone surrogate.
            v = Verification()
            v.add(CheckName.format, CheckResult.fail, f"The credential cannot be checked: {fault}.")
            return _skip_rest(v)
        record = read_record(self.session, own_record_id(self.settings, credential.get("id")))
        if record is not None:
            v = self.verify_jwt(record.jwt)
            signed = strip_jwt_claims(v.credential) if v.credential is not None else None
            if signed is not None and "proof" not in credential:
                # Our credential URL serves application/json without the embedded proof.
                signed.pop("proof", None)
            if signed is not None and signed != strip_jwt_claims(credential):
                v.replace(
                    CheckName.record,
                    CheckResult.fail,
                    "The JSON differs from the credential this service signed under that id.",
                )
                v.credential = credential
            elif credential.get("proof") and v.result_of(CheckName.signature) == CheckResult.pass_:
                self._check_our_embedded_proofs(v, credential)
            return v
        v = Verification(credential=credential)
        if not is_vc(credential):
            v.add(
                CheckName.format,
                CheckResult.fail,
                "The JSON is not a Verifiable Credential (no VerifiableCredential type).",
            )
            return _skip_rest(v)
        v.add(CheckName.format, CheckResult.pass_, "A Verifiable Credential in JSON.")
        if not credential.get("proof"):
            v.add(
                CheckName.signature,
                CheckResult.fail,
                "The credential carries no proof: unsecured JSON cannot be verified. Ask for the signed VC-JWT.",
            )
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "No signature was checked, so no key was bound to the issuer.",
            )
            self._add_trust(v, *unestablished("no signature was checked."))
        else:
            self._check_embedded_proofs(v, credential)
        self._check_validity(v, credential, {})
        v.add(CheckName.schema, *schema_outcome(credential))
        self._check_data_model(
            v,
            credential,
            version=_version_of(credential),
            content_key=None,
            checked_at_issuance=False,
        )
        self._check_status(v, credential, record_is_token=False)
        self._check_record(v, credential, None)
        return v

    # --- checks ---------------------------------------------------------------------------------

    def _add_trust(self, v: Verification, result: CheckResult, detail: str, summary: Any) -> None:
        v.add(CheckName.trust, result, detail)
        v.trust = summary

    def _check_proof(
        self,
        v: Verification,
        jws: jose.Jws,
        credential: dict[str, Any],
        *,
        record_id: uuid.UUID | None,
    ) -> KeyLookup | None:
        """`signature`, `issuer` and `trust`; the key lookup (with our record) when one was made."""
        issuer_id = issuer_id_of(credential)
        if issuer_id is None:
            v.add(
                CheckName.signature,
                CheckResult.skipped,
                "Not checked: the credential names no issuer.",
            )
            v.add(
                CheckName.issuer,
                CheckResult.fail,
                "The credential names no issuer (a URL, or an object with a URL id).",
            )
            self._add_trust(v, *unestablished("the credential names no issuer."))
            return None
        kid = jws.header.get("kid")
        problem = algorithm_problem(jws.header.get("alg"))
        if problem is not None:
            attack, why = problem
            v.add(
                CheckName.signature,
                CheckResult.fail if attack else CheckResult.error,
                f"Signature {'invalid' if attack else 'not checked'}: {why}.",
            )
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "Not checked: the signature was not verified.",
            )
            self._add_trust(v, *unestablished("the signature was not verified."))
            return None
        try:
            lookup = self._keys.resolve(
                kid=kid, header_jwk=jws.header.get("jwk"), issuer_id=issuer_id, record_id=record_id
            )
        except KeyNotBound as exc:
            v.add(
                CheckName.signature,
                CheckResult.skipped,
                "Not checked: the key named cannot be the issuer's.",
            )
            v.add(CheckName.issuer, CheckResult.fail, f"Not the issuer's key: {exc}.")
            self._add_trust(v, *unestablished("the key is not the issuer's."))
            return None
        except KeyCompromised as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Compromised signing key: {exc}.")
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "Not checked: the signing key is compromised.",
            )
            self._add_trust(v, *unestablished("the signing key is compromised."))
            return None
        except KeyNotFound as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Unknown signing key: {exc}")
            v.add(
                CheckName.issuer, CheckResult.skipped, "Not checked: the signing key was not found."
            )
            self._add_trust(v, *unestablished("the signing key was not found."))
            return None
        except KeyUnresolvable as exc:
            v.add(CheckName.signature, CheckResult.error, f"Could not check the signature: {exc}")
            v.add(
                CheckName.issuer,
                CheckResult.skipped,
                "Not checked: the signing key could not be obtained.",
            )
            self._add_trust(v, *unestablished("the signing key could not be obtained."))
            return None
        resolved = lookup.key
        try:
            jose.verify_jws(jws, resolved.key)
        except jose.JoseError as exc:
            v.add(CheckName.signature, CheckResult.fail, f"Signature invalid: {exc}.")
            v.add(CheckName.issuer, CheckResult.skipped, "Not checked: the signature is invalid.")
            self._add_trust(v, *unestablished("the signature is invalid."))
            return lookup
        alg = jose.algorithm_for_key(resolved.key)
        v.add(
            CheckName.signature,
            CheckResult.pass_,
            f"Valid {alg} signature by {kid or 'the embedded key'} ({resolved.source}).",
        )
        if not is_bound(resolved, issuer_id):
            owner = resolved.controller or "nobody the token can name"
            v.add(
                CheckName.issuer,
                CheckResult.fail,
                f"The signing key ({resolved.source}) belongs to {owner}, not to the credential's issuer {issuer_id}: it cannot speak for that issuer.",
            )
            self._add_trust(v, *unestablished("the key is not the issuer's."))
            return lookup
        v.add(
            CheckName.issuer,
            CheckResult.pass_,
            f"The signing key belongs to the issuer {issuer_id}.",
        )
        self._assess_trust(v, credential, resolved, issuer_id)
        return lookup

    def _assess_trust(
        self, v: Verification, credential: dict[str, Any], key: ResolvedKey, issuer_id: str
    ) -> None:
        issuer = credential.get("issuer")
        profile = issuer if isinstance(issuer, dict) else {}
        result, detail, summary = assess(
            self.session,
            self.settings,
            key=key,
            issuer_id=issuer_id,
            issuer_name=text_or_none(profile.get("name")),
            issuer_url=text_or_none(profile.get("url")),
        )
        self._add_trust(v, result, detail, summary)

    def _check_our_embedded_proofs(self, v: Verification, credential: dict[str, Any]) -> None:
        """Our credential as JSON-LD: its VC-JWT verified, and its embedded proof too (a Data
        Integrity key reported compromised makes it fail here as everywhere else)."""
        outcome = check_proofs(
            credential,
            issuer_id=issuer_id_of(credential),
            keys=self._keys,
            local=LOCAL_CONTEXTS,
            remote=LOCAL_CONTEXTS,
            now=self.now or datetime.now(UTC),
        )
        result, detail = outcome.signature
        index = next(i for i, c in enumerate(v.checks) if c.check == CheckName.signature)
        jwt_check = v.checks[index]
        if result is not CheckResult.pass_:
            detail = f"The VC-JWT is valid, but not the embedded proof: {detail}"
        else:
            detail = f"{jwt_check.detail} {detail}"
        # In place: the checks keep their order.
        v.checks[index] = jwt_check.model_copy(update={"result": result, "detail": detail})

    def _check_embedded_proofs(self, v: Verification, credential: dict[str, Any]) -> None:
        """`signature`, `issuer` and `trust` of a credential secured by Data Integrity proofs."""
        issuer_id = issuer_id_of(credential)
        outcome = check_proofs(
            credential,
            issuer_id=issuer_id,
            keys=self._keys,
            local=LOCAL_CONTEXTS,
            remote=self.contexts,
            now=self.now or datetime.now(UTC),
        )
        v.add(CheckName.signature, *outcome.signature)
        v.add(CheckName.issuer, *outcome.issuer)
        if outcome.key is None or issuer_id is None:
            self._add_trust(v, *unestablished("no proof of the issuer was verified."))
            return
        self._assess_trust(v, credential, outcome.key, issuer_id)

    def _check_validity(
        self, v: Verification, credential: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        period = validity_period(credential, payload, self.now or datetime.now(UTC))
        v.not_yet_valid, v.malformed_dates = period.not_yet_valid, period.malformed
        v.add(CheckName.validity_period, period.result, period.detail)

    def _check_data_model(
        self,
        v: Verification,
        credential: dict[str, Any],
        *,
        version: Version,
        content_key: str | None,
        checked_at_issuance: bool,
    ) -> None:
        # Remote contexts only for a credential whose issuer is established: a forged token
        # makes us fetch nothing.
        loader = self.contexts if v.identity_established else LOCAL_CONTEXTS
        result, detail = data_model_outcome(
            credential,
            version=version,
            loader=loader,
            check_jsonld=not checked_at_issuance,
            content_key=content_key,
        )
        v.add(CheckName.data_model, result, detail)

    def _check_status(
        self, v: Verification, credential: dict[str, Any], *, record_is_token: bool
    ) -> None:
        if not v.identity_established:
            v.add(
                CheckName.status,
                CheckResult.skipped,
                "Not checked: the signature or its issuer binding did not pass, so no status list was read on this credential's behalf.",
            )
            return
        checker = StatusChecker(
            session=self.session,
            settings=self.settings,
            fetcher=self.fetcher,
            depth=self.depth,
            verify_list=replace(self, depth=self.depth + 1).verify,
        )
        outcome = checker.check(credential, record=v.record, record_is_token=record_is_token)
        v.revocation = outcome.revocation
        v.add(CheckName.status, outcome.result, outcome.detail)

    def _check_record(self, v: Verification, credential: dict[str, Any], token: str | None) -> None:
        issuer_id = issuer_id_of(credential)
        result, detail = record_outcome(
            self.session,
            self.settings,
            credential,
            record=v.record,
            token=token,
            issuer_is_ours=issuer_id is not None and self._keys.is_ours(issuer_id),
        )
        v.add(CheckName.record, result, detail)


def _version_of(credential: dict[str, Any]) -> Version:
    contexts = credential.get("@context")
    first_context = contexts[0] if isinstance(contexts, list) and contexts else contexts
    return "1.1" if first_context == "https://www.w3.org/2018/credentials/v1" else "2.0"


def _skip_rest(v: Verification) -> Verification:
    done = {c.check for c in v.checks}
    for name in CheckName:
        if name not in done:
            v.add(name, CheckResult.skipped, "Not checked: the credential could not be read.")
    return v


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

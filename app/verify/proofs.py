"""The `signature` and `issuer` checks of a credential secured by embedded Data Integrity proofs.

Each proof is checked on its own (app/core/data_integrity.py does the cryptography): its
`verificationMethod` is resolved like a JWT's kid (binding.py: our register, did:key, did:web
and https documents, whose method must be an `assertionMethod`; a method that could not be the
issuer's is not fetched), then the proof is verified over the credential. The proofs add up:

- any proof that is wrong (tampered, wrong key, expired, unknown method): `signature` fails;
- else one verified proof whose key is bound to the issuer: both pass, and the other proofs
  (a co-signer's, a type we cannot check) are named in the detail;
- else a proof that could not be checked (unsupported type or suite, key or context not to be
  had): `signature` is `error`, never `fail`;
- else every proof verified is someone else's: `issuer` fails.

Contexts: the credential's contexts are needed to check the signature at all. Shipped ones
serve every proof; others are fetched (when the settings allow) only for a proof whose key is
already bound to the issuer, so a forged credential makes us fetch no context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.core import data_integrity as di
from app.core.jsonld import ContextLoader, ContextUnavailable
from app.verify.binding import (
    KeyCompromised,
    KeyLookup,
    KeyNotBound,
    KeyNotFound,
    KeyResolver,
    KeyUnresolvable,
    is_bound,
)
from app.verify.keys import ResolvedKey
from app.verify.schemas import CheckResult

MAX_PROOFS = 16


class Outcome(StrEnum):
    bound = "bound"  # verified, with a key bound to the issuer
    other = "other"  # verified, with a key that is not the issuer's
    not_bound = "not_bound"  # not checked: the method cannot be the issuer's (nothing fetched)
    invalid = "invalid"  # wrong: a `fail`
    unchecked = "unchecked"  # could not be checked: an `error`


@dataclass(frozen=True)
class ProofResult:
    suite: str
    outcome: Outcome
    detail: str
    key: ResolvedKey | None = None


@dataclass(frozen=True)
class ProofsOutcome:
    """What the proofs say: the two checks, and the key that speaks for the issuer, if any."""

    signature: tuple[CheckResult, str]
    issuer: tuple[CheckResult, str]
    key: ResolvedKey | None = None
    lookup: KeyLookup | None = None
    results: list[ProofResult] = field(default_factory=list)


def check_proofs(
    credential: dict[str, Any],
    *,
    issuer_id: str | None,
    keys: KeyResolver,
    local: ContextLoader,
    remote: ContextLoader,
    now: datetime,
) -> ProofsOutcome:
    """The `signature` and `issuer` outcomes of the credential's embedded proofs."""
    proofs = di.proofs_of(credential)
    if issuer_id is None:
        return ProofsOutcome(
            (CheckResult.skipped, "Not checked: the credential names no issuer."),
            (
                CheckResult.fail,
                "The credential names no issuer (a URL, or an object with a URL id).",
            ),
        )
    if len(proofs) > MAX_PROOFS:
        return ProofsOutcome(
            (CheckResult.fail, f"The credential carries more than {MAX_PROOFS} proofs."),
            (CheckResult.skipped, "Not checked: the proofs were not verified."),
        )
    results: list[ProofResult] = []
    lookups: dict[int, KeyLookup] = {}
    for index, proof in enumerate(proofs):
        result, lookup = _one(credential, proof, issuer_id, keys, local, remote, now)
        results.append(result)
        if lookup is not None:
            lookups[index] = lookup
    return _add_up(results, lookups, issuer_id)


def _one(
    credential: dict[str, Any],
    proof: Any,
    issuer_id: str,
    keys: KeyResolver,
    local: ContextLoader,
    remote: ContextLoader,
    now: datetime,
) -> tuple[ProofResult, KeyLookup | None]:
    suite = di.suite_of(proof)
    try:
        di.check_proof_shape(proof, now=now)
    except di.ProofUnsupported as exc:
        return ProofResult(suite, Outcome.unchecked, f"{exc}"), None
    except di.ProofInvalid as exc:
        return ProofResult(suite, Outcome.invalid, f"{exc}"), None
    method = proof["verificationMethod"]
    try:
        lookup = keys.resolve(kid=method, header_jwk=None, issuer_id=issuer_id, record_id=None)
    except KeyNotBound as exc:
        return ProofResult(suite, Outcome.not_bound, f"not the issuer's key: {exc}"), None
    except KeyCompromised as exc:
        return ProofResult(suite, Outcome.invalid, f"compromised key: {exc}"), None
    except KeyNotFound as exc:
        return ProofResult(suite, Outcome.invalid, f"unknown verification method: {exc}"), None
    except KeyUnresolvable as exc:
        return ProofResult(suite, Outcome.unchecked, f"the key could not be obtained: {exc}"), None
    bound = is_bound(lookup.key, issuer_id)
    try:
        di.verify_proof(
            credential, proof, key=lookup.key.key, loader=remote if bound else local, now=now
        )
    except di.ProofUnsupported as exc:
        return ProofResult(suite, Outcome.unchecked, f"{exc}", lookup.key), lookup
    except ContextUnavailable as exc:
        return ProofResult(
            suite, Outcome.unchecked, f"could not canonicalise the credential: {exc}", lookup.key
        ), lookup
    except di.ProofInvalid as exc:
        return ProofResult(suite, Outcome.invalid, f"{exc}", lookup.key), lookup
    return ProofResult(
        suite,
        Outcome.bound if bound else Outcome.other,
        f"valid, by {method} ({lookup.key.source})",
        lookup.key,
    ), lookup


def _add_up(
    results: list[ProofResult], lookups: dict[int, KeyLookup], issuer_id: str
) -> ProofsOutcome:
    def lines(*kinds: Outcome) -> str:
        return "; ".join(f"{r.suite}: {r.detail}" for r in results if r.outcome in kinds)

    many = len(results) > 1
    invalid = [r for r in results if r.outcome is Outcome.invalid]
    if invalid:
        return ProofsOutcome(
            (
                CheckResult.fail,
                f"{'A proof is' if many else 'The proof is'} invalid: {lines(Outcome.invalid)}.",
            ),
            (CheckResult.skipped, "Not checked: a proof of the credential is invalid."),
            results=results,
        )
    bound = [i for i, r in enumerate(results) if r.outcome is Outcome.bound]
    if bound:
        first = results[bound[0]]
        detail = f"Valid Data Integrity proof ({first.suite}), {first.detail}."
        rest = lines(Outcome.other, Outcome.not_bound, Outcome.unchecked)
        if len(bound) > 1:
            detail += f" {len(bound) - 1} more of the issuer's proofs verified."
        if rest:
            detail += f" Other proofs, which do not speak for the issuer: {rest}."
        return ProofsOutcome(
            (CheckResult.pass_, detail),
            (CheckResult.pass_, f"The verification method belongs to the issuer {issuer_id}."),
            key=first.key,
            lookup=lookups.get(bound[0]),
            results=results,
        )
    if any(r.outcome is Outcome.unchecked for r in results):
        return ProofsOutcome(
            (CheckResult.error, f"Could not check the proof: {lines(Outcome.unchecked)}."),
            (CheckResult.skipped, "Not checked: no proof of the issuer was verified."),
            results=results,
        )
    verified = [r for r in results if r.outcome is Outcome.other]
    if verified:
        owner = verified[0].key.controller if verified[0].key else None
        return ProofsOutcome(
            (CheckResult.pass_, f"Valid Data Integrity proof: {lines(Outcome.other)}."),
            (
                CheckResult.fail,
                f"The proof's key belongs to {owner or 'nobody the credential can name'}, not to the credential's issuer {issuer_id}: it cannot speak for that issuer.",
            ),
            results=results,
        )
    return ProofsOutcome(
        (CheckResult.skipped, "Not checked: no proof's verification method can be the issuer's."),
        (CheckResult.fail, f"Not the issuer's key: {lines(Outcome.not_bound)}."),
        results=results,
    )

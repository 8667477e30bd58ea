"""The verdict: the checks a verification made, and the one status they add up to.

Status precedence (the public contract): `invalid` > `revoked` / `suspended` > `unknown` >
`expired` / `not_yet_valid` > `issuer_unconfirmed` > `valid`. `verified` is true only for
`valid`: every required check passed, none failed, none could not be carried out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.verify.envelope import first, issuer_id_of, text_or_none
from app.verify.schemas import (
    AchievementSummary,
    Check,
    CheckName,
    CheckResult,
    CredentialSummary,
    IssuerSummary,
    Status,
    TrustSummary,
    VerificationResult,
)

if TYPE_CHECKING:
    from app.credentials.models import Credential

# A failure of any of these means the credential is not what it claims to be.
HARD_CHECKS = frozenset(
    {
        CheckName.format,
        CheckName.signature,
        CheckName.issuer,
        CheckName.schema,
        CheckName.data_model,
        CheckName.record,
    }
)


@dataclass
class Verification:
    """Everything a verification found; `result()` is the public contract's shape."""

    checks: list[Check] = field(default_factory=list)
    # The credential as presented (unverified if a check failed).
    credential: dict[str, Any] | None = None
    header: dict[str, Any] | None = None
    record: Credential | None = None  # our own issuance record, when the credential is ours
    record_read: bool = False  # whether `record` was looked up already (it may be None)
    jwt: str | None = None
    revocation: str | None = None  # "revoked" | "suspended" once status lists say so
    not_yet_valid: bool = False  # the validity_period failure is a start in the future
    malformed_dates: bool = False  # a date that is not a date: the credential is invalid
    trust: TrustSummary | None = None

    def add(self, name: CheckName, result: CheckResult, detail: str) -> None:
        self.checks.append(Check(check=name, result=result, detail=detail))

    def result_of(self, name: CheckName) -> CheckResult | None:
        for c in self.checks:
            if c.check == name:
                return c.result
        return None

    def replace(self, name: CheckName, result: CheckResult, detail: str) -> None:
        self.checks = [c for c in self.checks if c.check != name]
        self.add(name, result, detail)

    @property
    def identity_established(self) -> bool:
        """The signature is genuine and its key is bound to the issuer the credential names:
        only then may anything be fetched on the credential's behalf (status lists, contexts)."""
        return (
            self.result_of(CheckName.signature) == CheckResult.pass_
            and self.result_of(CheckName.issuer) == CheckResult.pass_
        )

    @property
    def status(self) -> Status:
        results = {c.check: c.result for c in self.checks}
        if any(results.get(n) == CheckResult.fail for n in HARD_CHECKS) or self.malformed_dates:
            return Status.invalid
        if results.get(CheckName.status) == CheckResult.fail:
            return Status.suspended if self.revocation == "suspended" else Status.revoked
        if any(r == CheckResult.error for r in results.values()):
            return Status.unknown
        if results.get(CheckName.validity_period) == CheckResult.fail:
            return Status.not_yet_valid if self.not_yet_valid else Status.expired
        if results.get(CheckName.trust) != CheckResult.pass_:
            return Status.issuer_unconfirmed
        return Status.valid

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
        subject = first(c.get("credentialSubject"))
        achievement = subject.get("achievement") if isinstance(subject, dict) else None
        name = achievement.get("name") if isinstance(achievement, dict) else c.get("name")
        return CredentialSummary(
            id=text_or_none(c.get("id")),
            issuer=IssuerSummary(
                id=issuer_id_of(c),
                name=text_or_none(issuer.get("name")) if isinstance(issuer, dict) else None,
                trust=self.trust,
            ),
            achievement=AchievementSummary(name=text_or_none(name)),
            valid_from=text_or_none(c.get("validFrom") or c.get("issuanceDate")),
            valid_until=text_or_none(c.get("validUntil") or c.get("expirationDate")),
        )

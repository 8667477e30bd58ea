"""The verification result, as fixed by the public contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class CheckName(StrEnum):
    format = "format"  # type: ignore[assignment]  # the contract names this check "format"; str.format is shadowed only on members
    signature = "signature"
    issuer = "issuer"
    trust = "trust"
    validity_period = "validity_period"
    schema = "schema"
    data_model = "data_model"
    status = "status"
    record = "record"


class CheckResult(StrEnum):
    pass_ = "pass"  # noqa: S105 - a check result, not a password
    fail = "fail"
    error = "error"
    skipped = "skipped"


class Status(StrEnum):
    valid = "valid"
    invalid = "invalid"
    expired = "expired"
    not_yet_valid = "not_yet_valid"
    revoked = "revoked"
    suspended = "suspended"
    unknown = "unknown"
    issuer_unconfirmed = "issuer_unconfirmed"


class TrustLevel(StrEnum):
    """Who stands behind the issuer's key (the contract's "Trust" section), strongest first."""

    registered = "registered"
    listed = "listed"
    domain = "domain"
    self_asserted = "self_asserted"


class Check(BaseModel):
    check: CheckName
    result: CheckResult
    detail: str


class TrustSummary(BaseModel):
    level: TrustLevel
    domain: str | None = Field(
        default=None, description="For `domain`: the domain that serves the key."
    )
    domain_matches_url: bool | None = Field(
        default=None,
        description="For `domain`: whether that domain is the host of the issuer profile's `url`.",
    )
    name: str | None = Field(
        default=None,
        description="The name people are shown: the register's or the trust list's name; for "
        "`domain` and `self_asserted` the name the issuer declares about itself.",
    )
    detail: str


class IssuerSummary(BaseModel):
    id: str | None
    name: str | None
    trust: TrustSummary | None = None


class AchievementSummary(BaseModel):
    name: str | None


class CredentialSummary(BaseModel):
    id: str | None
    issuer: IssuerSummary
    achievement: AchievementSummary
    valid_from: str | None
    valid_until: str | None


class VerificationResult(BaseModel):
    verified: bool = Field(description="True only if every required check passed.")
    status: Status
    checks: list[Check]
    credential: CredentialSummary | None


class VerifyRequest(BaseModel):
    credential: str | dict[str, Any] = Field(
        description="A compact VC-JWT, or an OB 3.0 credential as JSON.",
    )

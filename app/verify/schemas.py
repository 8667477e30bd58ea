"""The verification result, as fixed by the public contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class CheckName(StrEnum):
    format = "format"  # type: ignore[assignment]  # the contract names this check "format"; str.format is shadowed only on members
    signature = "signature"
    issuer = "issuer"
    validity_period = "validity_period"
    schema = "schema"
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


class Check(BaseModel):
    check: CheckName
    result: CheckResult
    detail: str


class IssuerSummary(BaseModel):
    id: str | None
    name: str | None


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

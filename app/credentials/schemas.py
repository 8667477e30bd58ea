"""Request and response bodies of the credential endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.core.email import Email

Did = Annotated[
    str,
    StringConstraints(pattern=r"^did:[a-z0-9]+:[A-Za-z0-9._:%-]+(?:[/?#].*)?$", max_length=2000),
]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Long = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]


class RecipientIn(BaseModel):
    """Who earned the credential: an email (published only salted and hashed), a DID or a URL."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    did: Did | None = None
    url: AnyUrl | None = None
    name: Short | None = Field(
        default=None, description="Display name, shown on the credential and its page."
    )

    @model_validator(mode="after")
    def _someone(self) -> RecipientIn:
        if self.email is None and self.did is None and self.url is None:
            raise ValueError("recipient needs an email, a did or a url")
        if self.did is not None and self.url is not None:
            raise ValueError("give either a did or a url for the recipient, not both")
        if self.url is not None and self.url.scheme not in {"http", "https"}:
            raise ValueError("recipient url must be http(s)")
        return self


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: AnyUrl | None = None
    name: Short | None = None
    description: Long | None = None
    narrative: Long | None = None
    genre: Short | None = None
    audience: Short | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> EvidenceIn:
        if not self.model_dump(exclude_none=True):
            raise ValueError("evidence needs at least one field")
        return self


class CredentialCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "achievement_id": "0b5f3c1e-8d2a-4c7b-9f41-6a1d2e3b4c5d",
                    "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
                    "valid_until": "2028-12-31T23:59:59Z",
                }
            ]
        },
    )

    achievement_id: uuid.UUID
    recipient: RecipientIn
    valid_from: AwareDatetime | None = Field(
        default=None, description="Defaults to the moment of issuance."
    )
    valid_until: AwareDatetime | None = None
    evidence: list[EvidenceIn] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _dates(self) -> CredentialCreate:
        if (
            self.valid_until is not None
            and self.valid_from is not None
            and self.valid_until <= self.valid_from
        ):
            raise ValueError("valid_until must be later than valid_from")
        return self


class CredentialIssued(BaseModel):
    id: uuid.UUID
    url: str = Field(
        description="Verification link; also the credential's id and the QR code's content."
    )
    jwt: str
    credential: dict[str, Any]
    qr_svg_url: str
    qr_png_url: str
    manage_url: str | None = Field(
        default=None,
        description="The recipient's private management link (portfolio, name visibility): "
        "returned once, in the 201 of issuance; hand it to the learner. Null otherwise; "
        "POST /api/v1/credentials/{id}/manage-link mints a new one.",
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Exam result withdrawn after an appeal."}]},
    )

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
    ] = Field(
        description="Why: kept in the record and the audit trail (not published in the status list)."
    )


class CredentialRead(CredentialIssued):
    status: str = Field(description="active, revoked or suspended")
    status_reason: str | None
    status_changed_at: datetime | None
    achievement_id: uuid.UUID
    subject_id: str
    recipient_name: str | None
    valid_from: datetime
    valid_until: datetime | None
    issued_at: datetime
    linkedin_add_url: str = Field(
        description="LinkedIn add-to-profile link (certification pre-filled from the credential)."
    )

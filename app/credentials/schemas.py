"""Request and response bodies of the credential endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AnyHttpUrl,
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.achievements.schemas import AchievementRef
from app.core.email import Email

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.credentials.models import Credential

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

    # Pages link to it: an http(s) URL only (never javascript:, data:, vbscript:…).
    id: AnyHttpUrl | None = None
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

    achievement_id: AchievementRef
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

    @classmethod
    def from_record(
        cls, settings: Settings, record: Credential, *, linkedin_organization_id: str | None = None
    ) -> CredentialRead:
        # Deferred: the credential service imports this module (for CredentialCreate).
        from app.credentials.service import credential_json, credential_url
        from app.sharing.service import certification

        url = credential_url(settings, record.id)
        document = credential_json(record)
        return cls(
            id=record.id,
            url=url,
            jwt=record.jwt,
            credential=document,
            qr_svg_url=f"{url}/qr.svg",
            qr_png_url=f"{url}/qr.png",
            status=record.status,
            status_reason=record.status_reason,
            status_changed_at=record.status_changed_at,
            achievement_id=record.achievement_id,
            subject_id=record.subject_id,
            recipient_name=record.recipient_name,
            valid_from=record.valid_from,
            valid_until=record.valid_until,
            issued_at=record.issued_at,
            linkedin_add_url=certification(
                settings,
                document,
                credential_id=record.id,
                issued=record.valid_from,
                expires=record.valid_until,
                organization_id=linkedin_organization_id,
            ).add_url,
        )

"""Request and response bodies of the issuer endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from app.core.email import Email
from app.core.keys import SigningAlgorithm

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LinkedInOrganizationId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,20}$")
]
LINKEDIN_ID_HELP = (
    "The issuer's LinkedIn organization id (digits, from its company page's admin URL): "
    "LinkedIn's add-to-profile form then links the certification to the organisation."
)


class IssuerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Northwind Data School",
                    "url": "https://northwind.example",
                    "email": "credentials@northwind.example",
                    "description": "Evening courses in data analysis.",
                    "suspension": True,
                }
            ]
        },
    )

    name: Name
    url: AnyHttpUrl
    slug: Slug | None = Field(
        default=None,
        description="Lower-case letters, digits and dashes; derived from the name when absent.",
    )
    email: Email | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    image: AnyHttpUrl | None = None
    algorithm: SigningAlgorithm = SigningAlgorithm.ES256
    suspension: bool = Field(
        default=False, description="Offer suspension (a second status list) besides revocation."
    )
    linkedin_organization_id: LinkedInOrganizationId | None = Field(
        default=None, description=LINKEDIN_ID_HELP
    )


class IssuerUpdate(BaseModel):
    """Fields an operator may change after creation (the name and keys are signed history)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"linkedin_organization_id": "2414183"}]},
    )

    linkedin_organization_id: LinkedInOrganizationId | None = Field(
        default=None, description=LINKEDIN_ID_HELP + " `null` removes it."
    )


class SigningKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kid: str = Field(description="The full DID URL, as in the JWT header of what the key signs.")
    key_id: str = Field(
        description="The kid's fragment (RFC 7638 thumbprint); names the key in the API."
    )
    algorithm: str
    status: str
    created_at: datetime
    retired_at: datetime | None = None
    compromised_at: datetime | None = None


WARNINGS_HELP = (
    "Things to know about the result that do not stop it, such as an algorithm that some "
    "validators refuse (EdDSA: the 1EdTech validator accepts only ES256 and RS256). Empty "
    "when there is nothing to say."
)


class SigningKeyRotated(SigningKeyRead):
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_HELP)


class KeyRotate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"algorithm": "ES256"}]}
    )

    algorithm: SigningAlgorithm | None = Field(
        default=None, description="The new key's algorithm; the issuer's current one by default."
    )


class KeyCompromise(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"since": "2026-11-30T08:00:00Z"}]}
    )

    since: AwareDatetime | None = Field(
        default=None, description="When the key was (or may have been) compromised; now by default."
    )


class IssuerRead(BaseModel):
    id: str = Field(description="The issuer's did:web identifier, as signed into its credentials.")
    slug: str
    name: str
    url: str
    email: str | None
    description: str | None
    image: str | None
    algorithm: str
    suspension: bool
    linkedin_organization_id: str | None
    profile_url: str
    did_document_url: str
    jwks_url: str
    created_at: datetime
    keys: list[SigningKeyRead]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "LMS integration"}]}
    )

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The API key itself. Shown once: only its hash is stored.")


class IssuerCreated(BaseModel):
    issuer: IssuerRead
    api_key: ApiKeyCreated
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_HELP)

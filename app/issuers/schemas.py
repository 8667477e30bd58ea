"""Request and response bodies of the issuer endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from app.core.email import Email
from app.core.keys import SigningAlgorithm
from app.issuers.models import KeyPurpose

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.issuers.models import Issuer, SigningKey

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LinkedInOrganizationId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,20}$")
]
LINKEDIN_ID_HELP = (
    "The issuer's LinkedIn organization id (digits, from its company page's admin URL): "
    "LinkedIn's add-to-profile form then links the certification to the organisation."
)
DATA_INTEGRITY_HELP = (
    "Add an embedded Data Integrity proof (eddsa-rdfc-2022, an Ed25519 key published as a "
    "Multikey in the DID document) to every credential, besides its VC-JWT: what wallets and "
    "verifiers of the Digital Credentials Consortium read."
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
    data_integrity: StrictBool = Field(default=False, description=DATA_INTEGRITY_HELP)


class IssuerUpdate(BaseModel):
    """Fields an operator may change after creation (the name and keys are signed history)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"linkedin_organization_id": "2414183"}]},
    )

    linkedin_organization_id: LinkedInOrganizationId | None = Field(
        default=None, description=LINKEDIN_ID_HELP + " `null` removes it."
    )
    data_integrity: StrictBool | None = Field(
        default=None,
        description=DATA_INTEGRITY_HELP
        + " `false` stops adding proofs; the keys stay published, so what they signed verifies.",
    )


class SigningKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kid: str = Field(description="The full DID URL, as in the JWT header of what the key signs.")
    key_id: str = Field(
        description="The kid's fragment (RFC 7638 thumbprint); names the key in the API."
    )
    algorithm: str
    purpose: str = Field(default="jwt", description="`jwt` or `data_integrity`.")
    status: str
    created_at: datetime
    retired_at: datetime | None = None
    compromised_at: datetime | None = None

    @classmethod
    def from_record(cls, did: str, key: SigningKey) -> SigningKeyRead:
        return cls(
            kid=f"{did}#{key.key_id}",
            key_id=key.key_id,
            algorithm=key.algorithm,
            purpose=key.purpose,
            status=key.status,
            created_at=key.created_at,
            retired_at=key.retired_at,
            compromised_at=key.compromised_at,
        )


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
    purpose: KeyPurpose = Field(
        default=KeyPurpose.jwt,
        description="Which key to rotate: the VC-JWT key, or the Data Integrity key (Ed25519).",
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
    data_integrity: bool = False
    linkedin_organization_id: str | None
    profile_url: str
    did_document_url: str
    jwks_url: str
    created_at: datetime
    keys: list[SigningKeyRead]

    @classmethod
    def from_record(
        cls, settings: Settings, issuer: Issuer, keys: Sequence[SigningKey]
    ) -> IssuerRead:
        did = settings.issuer_did(issuer.slug)
        return cls(
            id=did,
            slug=issuer.slug,
            name=issuer.name,
            url=issuer.url,
            email=issuer.email,
            description=issuer.description,
            image=issuer.image,
            algorithm=issuer.algorithm,
            suspension=issuer.suspension,
            data_integrity=issuer.data_integrity,
            linkedin_organization_id=issuer.linkedin_organization_id,
            profile_url=settings.url(f"/issuers/{issuer.slug}"),
            did_document_url=settings.url(f"/issuers/{issuer.slug}/did.json"),
            jwks_url=settings.url(f"/issuers/{issuer.slug}/jwks.json"),
            created_at=issuer.created_at,
            keys=[SigningKeyRead.from_record(did, k) for k in keys],
        )


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

"""Request and response bodies of the management link and the public portfolio."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from app.verify.schemas import Status

HANDLE_PATTERN = r"^[a-z0-9-]{3,40}$"


def _normalise_handle(value: object) -> object:
    # Forgive blanks and capitals (typed on a phone), before the pattern is checked.
    return value.strip().lower() if isinstance(value, str) else value


Handle = Annotated[
    str, StringConstraints(pattern=HANDLE_PATTERN), BeforeValidator(_normalise_handle)
]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
PortfolioKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]


class PortfolioJoin(BaseModel):
    """Put the credential on a portfolio: a new one (handle free) or an existing one (its key)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"handle": "amara-okafor", "display_name": "Amara Okafor"},
                {"handle": "amara-okafor", "portfolio_key": "mcp_…"},
            ]
        },
    )

    handle: Handle = Field(description="3–40 characters: a-z, 0-9 and '-'. Public: /p/{handle}.")
    display_name: DisplayName | None = Field(
        default=None,
        description="Shown on a new portfolio; defaults to the recipient name on the credential.",
    )
    portfolio_key: PortfolioKey | None = Field(
        default=None,
        description="The owner key of an existing portfolio (given once, when it was created).",
    )


class NameVisibility(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"hidden": True}]},
    )

    hidden: StrictBool = Field(description="True keeps the recipient's name off public pages.")


class ManageLink(BaseModel):
    manage_url: str = Field(description="The new management link; earlier links stop working.")


class PortfolioRef(BaseModel):
    handle: str
    display_name: str
    url: str


class PortfolioJoined(BaseModel):
    portfolio: PortfolioRef
    created: bool
    portfolio_key: str | None = Field(
        default=None,
        description="The new portfolio's owner key, shown once: needed to add more credentials.",
    )


class ManagedCredential(BaseModel):
    """What the holder of a management link sees about their credential."""

    id: uuid.UUID
    url: str
    achievement_name: str | None
    issuer_name: str | None
    recipient_name: str | None
    status: Status = Field(description="Live verification status.")
    verified: bool
    record_status: str = Field(description="active, revoked or suspended (the issuer's record)")
    changes_allowed: bool = Field(description="False once the credential is revoked.")
    name_hidden: bool
    portfolio: PortfolioRef | None


class PortfolioCredential(BaseModel):
    id: uuid.UUID
    url: str
    achievement_name: str | None
    achievement_url: str | None
    issuer_name: str | None
    issuer_url: str | None
    recipient_name: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    awarded: datetime | None
    status: Status
    status_label: str
    verified: bool
    featured: bool = Field(default=False, description="The owner features it (listed first).")


class SkillCount(BaseModel):
    name: str
    kind: Literal["alignment", "tag"]
    count: int = Field(description="How many currently verified credentials attest it.")
    url: str | None = None


class PortfolioPublic(BaseModel):
    handle: str
    display_name: str | None = Field(description="Null when the owner hid their name.")
    headline: str | None = Field(default=None, description="The owner's one-line headline.")
    bio: str | None = Field(default=None, description="The owner's short bio.")
    url: str
    qr_svg_url: str
    credentials: list[PortfolioCredential]
    skills: list[SkillCount] = Field(description="Only from credentials that verify now.")

"""Request and response bodies of the webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.webhooks.models import DeliveryState, WebhookEventType

WebhookUrl = Annotated[
    str,
    # No NUL: PostgreSQL text cannot hold it.
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048, pattern=r"^[^\x00]*$"),
    Field(
        description="An https URL on the public Internet; private, loopback and link-local "
        "addresses are refused.",
        examples=["https://hooks.northwind.example.org/microcred"],
    ),
]
Events = Annotated[
    list[WebhookEventType],
    Field(min_length=1, max_length=len(WebhookEventType), description="The events sent to it."),
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^[^\x00]*$")
]


def _unique(events: list[WebhookEventType] | None) -> list[WebhookEventType] | None:
    return None if events is None else list(dict.fromkeys(events))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://lms.example/hooks/microcred",
                    "events": ["credential.issued", "credential.revoked"],
                    "description": "Our LMS",
                }
            ]
        },
    )

    url: WebhookUrl
    events: Events
    description: Description | None = None

    _events = field_validator("events")(_unique)


class EndpointUpdate(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": False}]},
    )

    url: WebhookUrl | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None,
        description="false stops sending: the endpoint's pending deliveries are cancelled.",
    )

    _events = field_validator("events")(_unique)


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointRead):
    """The endpoint with its signing secret: answered only at creation and by rotate-secret."""

    secret: str = Field(
        description="whsec_<base64>: the HMAC-SHA256 key of the webhook-signature header. "
        "Shown only now; rotate-secret replaces it."
    )


class DeliveryRead(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event_type: str
    state: DeliveryState
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending).")
    delivered_at: datetime | None
    created_at: datetime

"""Webhook endpoints, the outbox of messages, and one delivery per (message, endpoint).

A message is one event as it will be sent: its body is stored exactly as signed, so that every
attempt and every replay sends the same bytes under the same `webhook-id`. A delivery is the
message's journey to one endpoint: pending until a 2xx answer (succeeded), until the attempts run
out (failed), or until its endpoint is disabled (cancelled).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid, true
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class WebhookEventType(StrEnum):
    credential_issued = "credential.issued"
    credential_revoked = "credential.revoked"
    credential_suspended = "credential.suspended"
    credential_unsuspended = "credential.unsuspended"
    job_completed = "job.completed"


class DeliveryState(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("issuers.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    # The event types (WebhookEventType values) this endpoint is sent.
    events: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # `whsec_<base64>`, sealed under the keys passphrase (KeyStore.seal, bound to the id): the
    # dispatcher opens it to sign every attempt (see service). Clear only without a passphrase.
    secret: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookMessage(Base):
    __tablename__ = "webhook_messages"

    # Sent as `webhook-id: msg_<hex>`: the receivers' deduplication key.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    # The JSON body exactly as signed and sent.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher's claim: pending and due, oldest due first.
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        # An endpoint's deliveries, a page at a time.
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    state: Mapped[DeliveryState] = mapped_column(String(16), default=DeliveryState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; while a dispatcher holds the delivery, the end of its lease.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The claim of the dispatcher sending it now: only that claim may record the result.
    lease_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

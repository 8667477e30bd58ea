"""Webhooks: issuers' endpoints, the transactional outbox, and Standard Webhooks signatures.

An event becomes a message row (its JSON body, exactly as it will be signed and sent) and one
delivery row per enabled endpoint of the issuer subscribed to it, written in the caller's
transaction by `enqueue` / `enqueue_many`: an event is sent if and only if the change that caused
it was committed. The dispatcher (app/webhooks/dispatcher.py) sends them later, never inside a
request.

Signatures follow the Standard Webhooks specification (https://www.standardwebhooks.com/):
`webhook-id` (the message's id, `msg_<hex>`, the same on every retry and replay),
`webhook-timestamp` (unix seconds of the attempt) and `webhook-signature`
`v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is the base64-decoded
part of the endpoint's `whsec_…` secret.

The secret is stored encrypted under the keys passphrase (`KeyStore.seal`, bound to the
endpoint's id), like the signing keys: the dispatcher must read it to sign every attempt, so a
hash would not do, but a copy of the database alone no longer lets anyone forge deliveries. It is
answered only at creation and by rotate-secret, never by a read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.fetch import Fetcher, RefusedAddress, RemoteFetchError
from app.core.keys import KeyStore
from app.issuers.models import Issuer
from app.webhooks import repository
from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEventType
from app.webhooks.schemas import EndpointCreate, EndpointUpdate

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
MAX_ENDPOINTS = 20
EVENT_TYPES = frozenset(WebhookEventType)
# Jitter from a generator of our own: the dispatcher thread must not move the global random state
# (which other code, Hypothesis included, may rely on).
_jitter = random.Random()  # noqa: S311 - jitter, not a secret


class EndpointNotFound(NotFound):
    pass


class DeliveryNotFound(NotFound):
    pass


class InvalidWebhookUrl(Unprocessable):
    title = "Webhook URL refused"


class TooManyEndpoints(Conflict):
    pass


class EndpointDisabled(Conflict):
    pass


# --- signing --------------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def webhook_id(message_id: uuid.UUID) -> str:
    return f"msg_{message_id.hex}"


def signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `{id}.{ts}.{body}`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the Standard Webhooks triple and the content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def message_body(event_type: str, data: dict[str, Any], *, at: datetime) -> str:
    """The JSON body of an event: `{"type", "timestamp", "data"}`."""
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": stamp, "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def retry_delay(attempts: int, *, base: float, cap: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base * 2^(attempts-1), at most
    `cap`, less up to 20 % of jitter (so receivers coming back are not hit by every sender at
    once, while each wait still exceeds the one before until the cap)."""
    delay: float = min(cap, base * 2.0 ** min(attempts - 1, 40))
    return delay * _jitter.uniform(0.8, 1.0)


# --- event data -----------------------------------------------------------------------------------


def event_data(
    *,
    credential_id: uuid.UUID,
    url: str,
    issuer_slug: str,
    achievement_id: uuid.UUID,
    status: str,
    reason: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """The `data` of a credential event, from its fields (bulk issuance has no ORM record)."""
    data: dict[str, Any] = {
        "id": str(credential_id),
        "url": url,
        "issuer": issuer_slug,
        "achievement_id": str(achievement_id),
        "status": status,
    }
    if reason is not None:
        data["reason"] = reason
    if external_id is not None:
        data["external_id"] = external_id
    return data


# --- the outbox -----------------------------------------------------------------------------------


def enqueue(
    session: Session, *, issuer_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> None:
    """Queue one event for the issuer's enabled endpoints subscribed to it, in the caller's
    transaction (nothing when there are none: one indexed query)."""
    enqueue_many(session, issuer_id=issuer_id, events=[(event_type, data)])


def enqueue_many(
    session: Session,
    *,
    issuer_id: uuid.UUID,
    events: Iterable[tuple[str, dict[str, Any]]],
) -> None:
    """Queue many events of one issuer: one endpoint query, then two bulk inserts (executemany).

    `events` is only read when the issuer has an endpoint: a generator spares bulk issuance the
    building of event data nobody subscribed to.
    """
    subscriptions = repository.enabled_subscriptions(session, issuer_id)
    if not subscriptions:
        return
    events = list(events)
    unknown = {event_type for event_type, _ in events} - EVENT_TYPES
    if unknown:
        raise ValueError(f"unknown webhook event types: {sorted(unknown)}")
    now = utcnow()
    messages: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for event_type, data in events:
        targets = [endpoint_id for endpoint_id, wanted in subscriptions if event_type in wanted]
        if not targets:
            continue
        message_id = uuid.uuid4()
        messages.append(
            {
                "id": message_id,
                "issuer_id": issuer_id,
                "event_type": event_type,
                "body": message_body(event_type, data, at=now),
                "created_at": now,
            }
        )
        deliveries.extend(
            {
                "id": uuid.uuid4(),
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "state": DeliveryState.pending,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in targets
        )
    repository.insert_outbox(session, messages, deliveries)


# --- endpoints ------------------------------------------------------------------------------------


def check_url(fetcher: Fetcher, url: str) -> str:
    """The URL if this service may deliver to it (https, a public address); InvalidWebhookUrl."""
    problem: str | None = None
    if not url.lower().startswith("https://"):
        problem = "The webhook URL must be an https:// URL."
    else:
        try:
            fetcher.check_url(url)
        except RefusedAddress as exc:
            problem = f"The webhook URL is refused: {exc}"
        except RemoteFetchError as exc:
            problem = f"The webhook URL cannot be used: {exc}"
    if problem is not None:
        raise InvalidWebhookUrl(
            problem, errors=[{"loc": ["body", "url"], "msg": problem, "type": "url_refused"}]
        )
    return url


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its secret in clear, to answer once (the row holds it sealed)."""

    endpoint: WebhookEndpoint
    secret: str


def secret_context(endpoint_id: uuid.UUID) -> str:
    """What a sealed secret is bound to: its endpoint (a value copied to another row won't open)."""
    return f"webhook-secret:{endpoint_id}"


def _set_secret(keystore: KeyStore, endpoint: WebhookEndpoint) -> str:
    secret = new_secret()
    endpoint.secret = keystore.seal(secret, context=secret_context(endpoint.id))
    return secret


def create_endpoint(
    session: Session, *, fetcher: Fetcher, keystore: KeyStore, issuer: Issuer, data: EndpointCreate
) -> WithSecret:
    """Register an endpoint; the answer carries its secret (answer it once)."""
    url = check_url(fetcher, data.url)
    if repository.count_endpoints(session, issuer.id) >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"An issuer can have at most {MAX_ENDPOINTS} webhook endpoints.")
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        issuer_id=issuer.id,
        url=url,
        description=data.description,
        events=[str(e) for e in data.events],
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    secret = _set_secret(keystore, endpoint)
    session.add(endpoint)
    session.flush()
    return WithSecret(endpoint, secret)


def list_endpoints(session: Session, *, issuer: Issuer) -> Sequence[WebhookEndpoint]:
    return repository.endpoints_for_issuer(session, issuer.id)


def get_endpoint(session: Session, *, issuer: Issuer, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.issuer_id != issuer.id:
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id}.")
    return endpoint


def update_endpoint(
    session: Session,
    *,
    fetcher: Fetcher,
    issuer: Issuer,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
) -> WebhookEndpoint:
    """Change what is given. Disabling cancels the pending deliveries (replay can resend them)."""
    endpoint = get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    if data.url is not None:
        endpoint.url = check_url(fetcher, data.url)
    if data.events is not None:
        endpoint.events = [str(e) for e in data.events]
    if "description" in data.model_fields_set:
        endpoint.description = data.description
    if data.enabled is not None:
        if endpoint.enabled and not data.enabled:
            repository.cancel_pending(session, endpoint.id, reason="endpoint disabled")
        endpoint.enabled = data.enabled
    endpoint.updated_at = utcnow()
    session.flush()
    return endpoint


def rotate_secret(
    session: Session, *, keystore: KeyStore, issuer: Issuer, endpoint_id: uuid.UUID
) -> WithSecret:
    """A new secret, at once: every attempt from now on (retries too) is signed with it."""
    endpoint = get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    secret = _set_secret(keystore, endpoint)
    endpoint.updated_at = utcnow()
    session.flush()
    return WithSecret(endpoint, secret)


def delete_endpoint(session: Session, *, issuer: Issuer, endpoint_id: uuid.UUID) -> None:
    """Delete the endpoint and its deliveries (pending ones are never sent)."""
    endpoint = get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    repository.delete_endpoint(session, endpoint)


# --- deliveries -----------------------------------------------------------------------------------


def list_deliveries(
    session: Session,
    *,
    issuer: Issuer,
    endpoint_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
    state: DeliveryState | None = None,
) -> Sequence[tuple[WebhookDelivery, str]]:
    """An endpoint's deliveries with their event types, newest first."""
    endpoint = get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    return repository.delivery_page(session, endpoint.id, limit=limit, before=before, state=state)


def replay(
    session: Session, *, issuer: Issuer, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, str]:
    """Send a delivery again, now, whatever its state: same webhook-id and body, a fresh count
    of attempts. An attempt in flight no longer records its result."""
    endpoint = get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled("The endpoint is disabled; enable it before replaying.")
    found = repository.delivery_with_type(session, endpoint.id, delivery_id)
    if found is None:
        raise DeliveryNotFound(f"No delivery {delivery_id} for this endpoint.")
    delivery, event_type = found
    delivery.state = DeliveryState.pending
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.lease_id = None
    delivery.delivered_at = None
    session.flush()
    return delivery, event_type

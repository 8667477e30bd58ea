"""Sharing: LinkedIn certifications, share-card data, the embed snippet and oEmbed answers."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.core.config import Settings
from app.core.errors import AppError, NotFound
from app.sharing.card import CardData
from app.sharing.linkedin import Certification

# The embed card's natural size (CSS pixels); oEmbed answers shrink it to maxwidth/maxheight.
EMBED_WIDTH, EMBED_HEIGHT = 480, 210
CARD_WIDTH, CARD_HEIGHT = 1200, 627

_CREDENTIAL_PATH = re.compile(
    r"^/credentials/(?P<id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?:/|/embed)?$"
)


class OEmbedFormatNotImplemented(AppError):
    """oEmbed §2.3: a provider answers 501 for a format it does not offer."""

    status_code = 501
    title = "Not Implemented"


def _name(value: Any) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("name")
    return value.strip() if isinstance(value, str) and value.strip() else None


def credential_page_url(settings: Settings, credential_id: uuid.UUID | str) -> str:
    return settings.url(f"/credentials/{credential_id}")


def certification(
    settings: Settings,
    credential: dict[str, Any],
    *,
    credential_id: uuid.UUID,
    issued: datetime,
    expires: datetime | None,
    organization_id: str | None,
) -> Certification:
    """The LinkedIn certification of one of our credentials, from what was signed."""
    subject = credential.get("credentialSubject")
    if isinstance(subject, list) and subject:
        subject = subject[0]
    achievement = subject.get("achievement") if isinstance(subject, dict) else None
    return Certification(
        name=_name(achievement) or _name(credential) or "Credential",
        organization_name=_name(credential.get("issuer")) or "",
        organization_id=organization_id or None,
        issued=issued,
        expires=expires,
        cert_url=credential_page_url(settings, credential_id),
        cert_id=str(credential_id),
    )


def card_url(settings: Settings, credential_id: uuid.UUID | str) -> str:
    return settings.url(f"/credentials/{credential_id}/card.png")


def embed_url(settings: Settings, credential_id: uuid.UUID | str) -> str:
    return settings.url(f"/credentials/{credential_id}/embed")


def oembed_url(settings: Settings, credential_id: uuid.UUID | str) -> str:
    page = credential_page_url(settings, credential_id)
    return settings.url("/oembed?" + urlencode({"url": page, "format": "json"}))


def embed_snippet(
    *, page_url: str, image_url: str, alt: str, width: int = 600, height: int = 314
) -> str:
    """Copy-paste HTML for any website: a link around the share card image, no JavaScript."""
    return (
        f'<a href="{html.escape(page_url)}" target="_blank" rel="noopener">'
        f'<img src="{html.escape(image_url)}" alt="{html.escape(alt)}" '
        f'width="{width}" height="{height}"></a>'
    )


def image_alt(achievement: str | None, issuer: str | None, recipient: str | None) -> str:
    """Alt text of the card (and of the embed snippet's image)."""
    text = f"Credential: {achievement or 'a credential'}"
    if issuer:
        text += f", issued by {issuer}"
    if recipient:
        text += f" to {recipient}"
    return text + ". Select to verify it."


def card_data(
    settings: Settings,
    *,
    achievement: str | None,
    issuer: str | None,
    recipient: str | None,
    status: str,
    status_label: str,
    initials: str,
) -> CardData:
    return CardData(
        achievement=achievement or "Credential",
        issuer=issuer or "an unnamed issuer",
        recipient=recipient,
        status=status,
        status_label=status_label,
        initials=initials,
        host=urlsplit(settings.base_url).netloc,
    )


def credential_id_from_url(settings: Settings, url: str) -> uuid.UUID:
    """The credential a URL of ours names (its page or its embed); NotFound for anything else."""
    parts = urlsplit(url.strip())
    base = urlsplit(settings.base_url)
    prefix = base.path.rstrip("/")
    path = parts.path
    if (
        parts.scheme.lower() != base.scheme.lower()
        or parts.netloc.lower() != base.netloc.lower()
        or not path.startswith(prefix + "/")
    ):
        raise NotFound("That URL is not a credential of this service.")
    match = _CREDENTIAL_PATH.match(path[len(prefix) :])
    if match is None:
        raise NotFound("That URL is not a credential of this service.")
    return uuid.UUID(match["id"])


def oembed_response(
    settings: Settings,
    *,
    credential_id: uuid.UUID,
    title: str,
    issuer: str | None,
    maxwidth: int | None,
    maxheight: int | None,
) -> dict[str, Any]:
    """An oEmbed 1.0 `rich` answer: an iframe of the embed card within maxwidth and maxheight."""
    width = min(EMBED_WIDTH, maxwidth) if maxwidth else EMBED_WIDTH
    height = min(EMBED_HEIGHT, maxheight) if maxheight else EMBED_HEIGHT
    src = embed_url(settings, credential_id)
    answer: dict[str, Any] = {
        "type": "rich",
        "version": "1.0",
        "title": title,
        "provider_name": "microcred",
        "provider_url": settings.url("/"),
        "html": (
            f'<iframe src="{html.escape(src)}" width="{width}" height="{height}" '
            f'title="{html.escape(title)}" loading="lazy" style="border:0;max-width:100%">'
            "</iframe>"
        ),
        "width": width,
        "height": height,
        "cache_age": 300,
    }
    if issuer:
        answer["author_name"] = issuer
    # The thumbnail must respect maxwidth/maxheight too (oEmbed §2.3.4): left out when it would not.
    if (maxwidth is None or maxwidth >= CARD_WIDTH) and (
        maxheight is None or maxheight >= CARD_HEIGHT
    ):
        answer.update(
            thumbnail_url=card_url(settings, credential_id),
            thumbnail_width=CARD_WIDTH,
            thumbnail_height=CARD_HEIGHT,
        )
    return answer

"""Achievement logic: creation, ownership checks and the OB 3.0 Achievement document."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy.orm import Session

from app.achievements import repository
from app.achievements.models import Achievement
from app.achievements.schemas import AchievementCreate, AchievementUrlId, parse_achievement_ref
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import NotFound, Unprocessable
from app.issuers.models import Issuer


class AchievementNotFound(NotFound):
    pass


class ForeignAchievementUrl(Unprocessable):
    title = "Not an achievement of this service"


def achievement_ref(
    settings: Settings, value: object, *, field: str = "achievement_id"
) -> uuid.UUID:
    """The achievement a client named (a uuid, or its URL as the API returns it), as a uuid.

    The same reading as the schemas' (`parse_achievement_ref`), plus what only settings can tell:
    a URL must point at this service (`<base>/achievements/<uuid>`), or it is refused with a 422
    naming `field`, rather than quietly taken for one of ours.
    """
    try:
        parsed = parse_achievement_ref(value)
    except ValueError as exc:
        raise Unprocessable(f"{field}: {exc}") from None
    if isinstance(parsed, AchievementUrlId):
        ours = urlsplit(achievement_url(settings, parsed))
        given = urlsplit(parsed.given.strip())
        same_origin = (given.scheme.lower(), given.hostname, _port(given)) == (
            ours.scheme,
            ours.hostname,
            _port(ours),
        )
        if not same_origin or given.path.rstrip("/").lower() != ours.path.lower():
            raise ForeignAchievementUrl(
                f"{field}: {parsed.given[:200]} is not an achievement URL of this service; "
                f"give the uuid or {settings.url('/achievements/')}<uuid>."
            )
    return uuid.UUID(int=parsed.int)


def _port(parts: SplitResult) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def create_achievement(session: Session, *, issuer: Issuer, data: AchievementCreate) -> Achievement:
    achievement = Achievement(
        id=uuid.uuid4(),
        issuer_id=issuer.id,
        name=data.name,
        description=data.description,
        criteria_narrative=data.criteria.narrative,
        criteria_url=str(data.criteria.id) if data.criteria.id else None,
        image=str(data.image) if data.image else None,
        achievement_type=data.achievement_type,
        alignments=[a.model_dump(mode="json", exclude_none=True) for a in data.alignments],
        tags=list(dict.fromkeys(data.tags)),
        created_at=utcnow(),
    )
    session.add(achievement)
    session.flush()
    return achievement


def get_achievement(
    session: Session, *, achievement_id: uuid.UUID, issuer: Issuer | None = None
) -> Achievement:
    """Fetch an achievement; with `issuer`, another issuer's achievement is reported as absent."""
    achievement = repository.get(session, achievement_id)
    if achievement is None or (issuer is not None and achievement.issuer_id != issuer.id):
        raise AchievementNotFound(f"No achievement {achievement_id}.")
    return achievement


def list_achievements(
    session: Session, *, issuer: Issuer, limit: int, after: tuple[datetime, uuid.UUID] | None = None
) -> Sequence[Achievement]:
    """A page of the issuer's achievements, oldest first (`after`: the last one seen)."""
    return repository.list_for_issuer(session, issuer.id, limit=limit, after=after)


def achievements_of(
    session: Session, *, issuer: Issuer, ids: Iterable[uuid.UUID]
) -> Sequence[Achievement]:
    """The issuer's achievements among `ids` (others' and unknown ids are simply absent)."""
    return repository.of_issuer(session, issuer.id, sorted(set(ids)))


def achievement_url(settings: Settings, achievement_id: uuid.UUID) -> str:
    return settings.url(f"/achievements/{achievement_id}")


def achievement_document(settings: Settings, achievement: Achievement) -> dict[str, Any]:
    """The OB 3.0 `Achievement` object, as embedded in credentials."""
    criteria: dict[str, str] = {}
    if achievement.criteria_url:
        criteria["id"] = achievement.criteria_url
    if achievement.criteria_narrative:
        criteria["narrative"] = achievement.criteria_narrative
    doc: dict[str, Any] = {
        "id": achievement_url(settings, achievement.id),
        "type": ["Achievement"],
        "name": achievement.name,
        "description": achievement.description,
        "criteria": criteria,
    }
    if achievement.achievement_type:
        doc["achievementType"] = achievement.achievement_type
    if achievement.image:
        doc["image"] = {"id": achievement.image, "type": "Image", "caption": achievement.name}
    if achievement.alignments:
        doc["alignment"] = [_alignment(a) for a in achievement.alignments]
    if achievement.tags:
        doc["tag"] = list(achievement.tags)
    return doc


def _alignment(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": ["Alignment"],
        "targetName": a["target_name"],
        "targetUrl": a["target_url"],
    }
    for ours, theirs in (
        ("target_framework", "targetFramework"),
        ("target_code", "targetCode"),
        ("target_description", "targetDescription"),
    ):
        if a.get(ours):
            out[theirs] = a[ours]
    return out

"""Achievement routes: the issuer's API and the public achievement page/JSON."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from app.achievements import service
from app.achievements.models import Achievement
from app.achievements.schemas import AchievementCreate, AchievementRead
from app.core.config import Settings
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep
from app.core.openapi import media_types
from app.core.pagination import Page, decode_cursor, encode_cursor
from app.core.standards import OB3_CONTEXT, VC2_CONTEXT
from app.core.web import negotiated, render, wants_html
from app.issuers import repository as issuers_repository
from app.issuers import service as issuers_service
from app.issuers.deps import CurrentIssuer

api = APIRouter(prefix="/api/v1/achievements", tags=["issuer"])
public = APIRouter(tags=["public"])


def achievement_read(
    settings: Settings, achievement: Achievement, issuer_slug: str
) -> AchievementRead:
    return AchievementRead.from_record(settings, achievement, issuer_slug)


@api.post("", status_code=201, response_model=AchievementRead)
def create_achievement(
    data: AchievementCreate, issuer: CurrentIssuer, session: SessionDep, settings: SettingsDep
) -> AchievementRead:
    """Create an achievement (badge template) for the calling issuer."""
    achievement = service.create_achievement(session, issuer=issuer, data=data)
    return achievement_read(settings, achievement, issuer.slug)


@api.get("", response_model=Page[AchievementRead])
def list_achievements(
    issuer: CurrentIssuer,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[AchievementRead]:
    """List the calling issuer's achievements, oldest first, a page at a time."""
    rows = service.list_achievements(
        session, issuer=issuer, limit=limit + 1, after=decode_cursor(cursor)
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return Page[AchievementRead](
        items=[achievement_read(settings, a, issuer.slug) for a in page], next_cursor=next_cursor
    )


@api.get("/{achievement_id}", response_model=AchievementRead)
def get_achievement(
    achievement_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep, settings: SettingsDep
) -> AchievementRead:
    """Read one of the calling issuer's achievements."""
    achievement = service.get_achievement(session, achievement_id=achievement_id, issuer=issuer)
    return achievement_read(settings, achievement, issuer.slug)


@public.get(
    "/achievements/{achievement_id}",
    response_model=None,
    response_class=Response,
    responses=media_types(
        "application/ld+json", "text/html", description="The achievement, or its page"
    ),
)
def public_achievement(
    achievement_id: uuid.UUID, request: Request, session: ReadSessionDep, settings: SettingsDep
) -> Response:
    """The achievement as an OB 3.0 Achievement (an HTML page for browsers)."""
    achievement = service.get_achievement(session, achievement_id=achievement_id)
    issuer = issuers_repository.get(session, achievement.issuer_id)
    assert issuer is not None  # noqa: S101 - the foreign key guarantees it
    document = {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        **service.achievement_document(settings, achievement),
        "creator": issuers_service.profile_document(settings, issuer),
    }
    if wants_html(request):
        return negotiated(
            render(request, "achievement.html", {"achievement": document, "issuer": issuer})
        )
    return negotiated(
        JSONResponse(
            document,
            media_type="application/ld+json",
            headers={"Cache-Control": "public, max-age=300"},
        )
    )

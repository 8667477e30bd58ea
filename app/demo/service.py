"""Demo data for `make run`: an issuer, one achievement per gig role, and a first credential."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.achievements import service as achievements_service
from app.achievements.schemas import AchievementCreate
from app.core.context import AppContext
from app.core.db import utcnow
from app.credentials import repository as credentials_repository
from app.credentials import service as credentials_service
from app.credentials.schemas import CredentialCreate
from app.issuers import repository as issuers_repository
from app.issuers import service as issuers_service
from app.issuers.schemas import IssuerCreate

ROLES_FILE = Path(__file__).resolve().parent / "gig-roles.json"
DEMO_SLUG = "skillforge-academy"
DEMO_CREDENTIAL_KEY = "demo-credential-1"

# O*NET occupations matching each role: a real, public framework to align the badges with.
ONET = {
    "freelance-data-analyst": ("15-2051.00", "Data Scientists"),
    "seo-specialist": ("13-1161.00", "Market Research Analysts and Marketing Specialists"),
    "telehealth-nurse": ("29-1141.00", "Registered Nurses"),
    "ux-ui-designer": ("15-1255.00", "Web and Digital Interface Designers"),
    "financial-modeler": ("13-2051.00", "Financial and Investment Analysts"),
}


@dataclass(frozen=True)
class DemoResult:
    issuer_slug: str
    api_key: str | None
    credential_url: str
    created: bool


def load_roles() -> list[dict[str, Any]]:
    roles: list[dict[str, Any]] = json.loads(ROLES_FILE.read_text("utf-8"))["roles"]
    return roles


def achievement_for_role(role: dict[str, Any]) -> AchievementCreate:
    code, occupation = ONET[role["id"]]
    return AchievementCreate.model_validate(
        {
            "name": role["credential_examples"][0],
            "description": f"Certifies the core skills of a {role['title']}: "
            + "; ".join(role["work"])
            + ".",
            "criteria": {
                "narrative": "Passed a proctored practical assessment covering "
                + ", ".join(role["required_skills"])
                + "."
            },
            "achievement_type": "MicroCredential",
            "alignments": [
                {
                    "target_name": occupation,
                    "target_url": f"https://www.onetonline.org/link/summary/{code}",
                    "target_framework": "O*NET-SOC",
                    "target_code": code,
                }
            ],
            "tags": role["required_skills"],
        }
    )


def seed(session: Session, ctx: AppContext) -> DemoResult:
    """Create the demo issuer, achievements and one credential; reuse them when already there."""
    existing = issuers_repository.get_by_slug(session, DEMO_SLUG)
    if existing is not None:
        record = credentials_repository.by_idempotency_key(
            session, existing.id, DEMO_CREDENTIAL_KEY
        )
        url = credentials_service.credential_url(ctx.settings, record.id) if record else ""
        return DemoResult(
            issuer_slug=existing.slug, api_key=None, credential_url=url, created=False
        )
    issuer, _key, _api, api_key = issuers_service.create_issuer(
        session,
        keystore=ctx.keystore,
        data=IssuerCreate.model_validate(
            {
                "name": "SkillForge Academy",
                "url": "https://skillforge.example",
                "slug": DEMO_SLUG,
                "email": "badges@skillforge.example",
                "description": "Short, practical courses for freelancers: data, marketing, health, design and finance.",
            }
        ),
    )
    achievements = [
        achievements_service.create_achievement(
            session, issuer=issuer, data=achievement_for_role(role)
        )
        for role in load_roles()
    ]
    now = utcnow()
    issued = credentials_service.issue_credential(
        session,
        settings=ctx.settings,
        keystore=ctx.keystore,
        issuer=issuer,
        data=CredentialCreate.model_validate(
            {
                "achievement_id": str(achievements[0].id),
                "recipient": {"email": "amara.okafor@example.com", "name": "Amara Okafor"},
                "valid_from": (now - timedelta(days=1)).isoformat(),
                "valid_until": (now + timedelta(days=730)).isoformat(),
            }
        ),
        idempotency_key=DEMO_CREDENTIAL_KEY,
    )
    url = credentials_service.credential_url(ctx.settings, issued.record.id)
    return DemoResult(issuer_slug=issuer.slug, api_key=api_key, credential_url=url, created=True)

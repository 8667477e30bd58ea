"""Request and response bodies of the achievement endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

if TYPE_CHECKING:
    from app.achievements.models import Achievement
    from app.core.config import Settings

# OB 3.0's AchievementType vocabulary; anything else must use the `ext:` extension prefix.
ACHIEVEMENT_TYPES = [
    "Achievement",
    "ApprenticeshipCertificate",
    "Assessment",
    "Assignment",
    "AssociateDegree",
    "Award",
    "Badge",
    "BachelorDegree",
    "Certificate",
    "CertificateOfCompletion",
    "Certification",
    "CommunityService",
    "Competency",
    "Course",
    "CoCurricular",
    "Degree",
    "Diploma",
    "DoctoralDegree",
    "Fieldwork",
    "GeneralEducationDevelopment",
    "JourneymanCertificate",
    "LearningProgram",
    "License",
    "Membership",
    "ProfessionalDoctorate",
    "QualityAssuranceCredential",
    "MasterCertificate",
    "MasterDegree",
    "MicroCredential",
    "ResearchDoctorate",
    "SecondarySchoolDiploma",
]

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
AchievementType = Annotated[
    str,
    StringConstraints(pattern=r"^(?:" + "|".join(ACHIEVEMENT_TYPES) + r"|ext:[A-Za-z0-9._-]+)$"),
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid")

    narrative: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]
        | None
    ) = None
    id: AnyHttpUrl | None = Field(
        default=None, description="URL of a page describing the criteria."
    )

    @model_validator(mode="after")
    def _one_of(self) -> Criteria:
        if self.narrative is None and self.id is None:
            raise ValueError("criteria needs a narrative, an id (URL), or both")
        return self


class Alignment(BaseModel):
    """A skill the achievement stands for, in a framework such as ESCO or O*NET."""

    model_config = ConfigDict(extra="forbid")

    target_name: Text200
    target_url: AnyHttpUrl
    target_framework: Text200 | None = None
    target_code: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    target_description: Annotated[str, StringConstraints(max_length=2000)] | None = None


class AchievementCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "SQL for Analysts",
                    "description": "Writes correct, efficient SQL for reporting and dashboards.",
                    "criteria": {"narrative": "Passed a proctored two-hour practical exam."},
                    "achievement_type": "MicroCredential",
                    "alignments": [
                        {
                            "target_name": "Data Scientists",
                            "target_url": "https://www.onetonline.org/link/summary/15-2051.00",
                            "target_framework": "O*NET-SOC",
                            "target_code": "15-2051.00",
                        }
                    ],
                    "tags": ["SQL", "PostgreSQL"],
                }
            ]
        },
    )

    name: Text200
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)
    ]
    criteria: Criteria
    image: AnyHttpUrl | None = None
    achievement_type: AchievementType | None = Field(default=None, examples=["MicroCredential"])
    alignments: list[Alignment] = Field(default_factory=list, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class AchievementRead(BaseModel):
    id: str = Field(description="The achievement's public URL, as signed into credentials.")
    uuid: uuid.UUID
    issuer: str
    name: str
    description: str
    criteria: dict[str, str]
    image: str | None
    achievement_type: str | None
    alignments: list[dict[str, Any]]
    tags: list[str]
    created_at: datetime
    achievement: dict[str, Any] = Field(description="The OB 3.0 Achievement object.")

    @classmethod
    def from_record(
        cls, settings: Settings, achievement: Achievement, issuer_slug: str
    ) -> AchievementRead:
        # Deferred: the service imports this module (for AchievementCreate).
        from app.achievements.service import achievement_document

        document = achievement_document(settings, achievement)
        return cls(
            id=document["id"],
            uuid=achievement.id,
            issuer=settings.issuer_did(issuer_slug),
            name=achievement.name,
            description=achievement.description,
            criteria=document["criteria"],
            image=achievement.image,
            achievement_type=achievement.achievement_type,
            alignments=achievement.alignments,
            tags=achievement.tags,
            created_at=achievement.created_at,
            achievement=document,
        )


# --- naming an achievement ------------------------------------------------------------------


class AchievementUrlId(uuid.UUID):
    """An achievement's uuid read from its URL: the URL stays attached, so that the service can
    check that it points at this service (the schema cannot: it does not know the base URL)."""

    __slots__ = ("given",)
    given: str

    def __init__(self, hex: str, given: str) -> None:
        super().__init__(hex)
        object.__setattr__(self, "given", given)  # UUID refuses plain attribute assignment


ACHIEVEMENT_REF_HELP = "The achievement's uuid, or its URL (the `id` the API returns)."


def parse_achievement_ref(value: object) -> uuid.UUID:
    """The one reading of "which achievement": a uuid, or the achievement's URL
    `<base>/achievements/<uuid>` (an `AchievementUrlId`, whose origin the service then checks).

    Raises ValueError (pydantic turns it into a 422 naming the field) for anything else.
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string: the achievement's uuid or its URL")
    text = value.strip()
    if "://" not in text:
        try:
            return uuid.UUID(text)
        except ValueError:
            raise ValueError(
                f"must be the achievement's uuid or its URL, not {text[:80]!r}"
            ) from None
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - read for its check: a port that is not a number raises
    except ValueError:
        raise ValueError(f"{text[:200]!r} has an invalid port") from None
    head, _, last = parts.path.rstrip("/").rpartition("/")
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
        or not head.endswith("/achievements")
    ):
        raise ValueError(f"{text[:200]!r} is not an achievement URL (<base>/achievements/<uuid>)")
    try:
        return AchievementUrlId(last, text)
    except ValueError:
        raise ValueError(f"{text[:200]!r} does not end in an achievement uuid") from None


def _serialise_ref(value: uuid.UUID, info: SerializationInfo) -> uuid.UUID | str:
    plain = uuid.UUID(int=value.int)  # the bare uuid: what is stored and fingerprinted
    return str(plain) if info.mode_is_json() else plain


AchievementRef = Annotated[
    uuid.UUID,
    PlainValidator(parse_achievement_ref),
    PlainSerializer(_serialise_ref),
    WithJsonSchema(
        {
            "type": "string",
            "description": ACHIEVEMENT_REF_HELP,
            "examples": [
                "0d7f6a57-8b3e-4b7a-9d2b-0f5b3d6c1a11",
                "https://badges.example.org/achievements/0d7f6a57-8b3e-4b7a-9d2b-0f5b3d6c1a11",
            ],
        }
    ),
]

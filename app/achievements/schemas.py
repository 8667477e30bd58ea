"""Request and response bodies of the achievement endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

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

"""Bodies of the bulk-issuance endpoints: one row of a batch, a job and its per-row results."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field, StringConstraints

from app.credentials.schemas import CredentialCreate

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.jobs.models import Job, JobRow

ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class BatchRow(CredentialCreate):
    """One credential of a batch: a `CredentialCreate`, plus the issuer's own id for the row.

    `achievement_id` may be left out when the request names one for all rows
    (`?achievement_id=`). A row with an `external_id` is issued at most once, ever: resubmitting
    it reports the credential already issued instead of issuing another.
    """

    external_id: ExternalId | None = Field(
        default=None,
        description="Your id for this row (learner id, enrolment id…): makes the row idempotent.",
    )


class JobRowRead(BaseModel):
    row: int = Field(
        description="1-based position among the submitted rows (CSV: the header is not a row)."
    )
    external_id: str | None
    state: str = Field(
        description="pending, issued, existing (issued earlier for this external_id) or failed"
    )
    credential_id: uuid.UUID | None = None
    credential_url: str | None = None
    error: str | None = None


class JobRead(BaseModel):
    id: uuid.UUID
    kind: str
    state: str = Field(description="queued, running or completed")
    source: str = Field(description="json or csv")
    total: int
    issued: int
    existing: int = Field(description="Rows whose external_id already had a credential.")
    failed: int
    pending: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str = Field(description="This job in the API.")
    rows: list[JobRowRead] = Field(
        description="A page of per-row results (see the `rows`, `after` and `limit` parameters)."
    )
    next_rows_cursor: str | None = Field(
        default=None, description="Pass as `after` for the next page of rows."
    )

    @classmethod
    def from_record(
        cls, settings: Settings, job: Job, rows: Sequence[JobRow], next_cursor: str | None = None
    ) -> JobRead:
        # Deferred: the jobs service imports this module (for BatchRow).
        from app.credentials.service import credential_url
        from app.jobs.service import job_url, pending

        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            source=job.source,
            total=job.total,
            issued=job.issued,
            existing=job.existing,
            failed=job.failed,
            pending=pending(job),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            url=job_url(settings, job.id),
            rows=[
                JobRowRead(
                    row=r.row_number,
                    external_id=r.external_id,
                    state=r.state,
                    credential_id=r.credential_id,
                    credential_url=credential_url(settings, r.credential_id)
                    if r.credential_id
                    else None,
                    error=r.error,
                )
                for r in rows
            ],
            next_rows_cursor=next_cursor,
        )

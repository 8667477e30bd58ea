"""Bodies of the bulk-issuance endpoints: one row of a batch, a job and its per-row results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from app.credentials.schemas import CredentialCreate

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

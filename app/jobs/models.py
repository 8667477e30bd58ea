"""Bulk issuance jobs: one row per job, one row per submitted line, all state in the database.

A job survives the death of the process working on it: rows move from `pending` to a final state
only in the transaction that stores their credentials, so a killed worker leaves them pending and
the next worker issues them, exactly once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"


class RowState(StrEnum):
    pending = "pending"
    # A credential was signed and stored for this row by this job.
    issued = "issued"
    # The row's external_id already had a credential (an earlier submission): nothing new issued.
    existing = "existing"
    failed = "failed"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_issuer_created", "issuer_id", "created_at", "id"),
        Index("ix_jobs_state_created", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="credentials.batch")
    source: Mapped[str] = mapped_column(String(8))  # json or csv
    state: Mapped[JobState] = mapped_column(String(16), default=JobState.queued)
    total: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    existing: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRow(Base):
    __tablename__ = "job_rows"
    __table_args__ = (Index("ix_job_rows_job_state", "job_id", "state", "row_number"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    # 1-based position among the submitted rows (the CSV header is not a row).
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    external_id: Mapped[str | None] = mapped_column(String(255))
    # The validated request of this row (CredentialCreate as JSON); None for rows refused up front.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[RowState] = mapped_column(String(16), default=RowState.pending)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    error: Mapped[str | None] = mapped_column(Text)

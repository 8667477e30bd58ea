"""Every SQL statement of the jobs feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Row,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.core.db import bulk_insert, on_postgresql, utcnow
from app.jobs.models import Job, JobRow, JobState, RowState


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


def add_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    bulk_insert(session, JobRow.__table__, rows)


# PostgreSQL channel on which a queued job is announced to every worker (see JobRunner._listen).
CHANNEL = "microcred_jobs"


def notify_workers(session: Session) -> None:
    """Wake the job runners of every process when this transaction commits (PostgreSQL NOTIFY:
    delivered at commit, never if it rolls back). SQLite has one process's runner, woken directly."""
    if on_postgresql(session):
        session.execute(select(func.pg_notify(CHANNEL, "")))


def open_job_ids(session: Session, limit: int) -> Sequence[uuid.UUID]:
    """Jobs with work left, oldest first."""
    return session.scalars(
        select(Job.id)
        .where(Job.state.in_([JobState.queued, JobState.running]))
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    ).all()


def claim_pending(session: Session, job_id: uuid.UUID, limit: int) -> Sequence[Row[Any]]:
    """The next pending rows of the job, locked until this transaction ends.

    `SKIP LOCKED` lets several workers (processes, replicas) take disjoint chunks of one job; if a
    worker dies, its transaction ends and the rows are pending again. SQLite has no row locks (the
    clause is left out there): its writers are serialised, so a claim is exclusive anyway.
    """
    return session.execute(
        select(JobRow.row_number, JobRow.external_id, JobRow.payload)
        .where(JobRow.job_id == job_id, JobRow.state == RowState.pending)
        .order_by(JobRow.row_number)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def count_pending(session: Session, job_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.job_id == job_id, JobRow.state == RowState.pending)
        )
        or 0
    )


def record_results(session: Session, job_id: uuid.UUID, results: Sequence[dict[str, Any]]) -> None:
    """Final states of rows: dicts of row_number, state, credential_id, error.

    PostgreSQL gets one UPDATE joined to the results passed as arrays (one statement per chunk);
    SQLite an executemany UPDATE.
    """
    if not results:
        return
    table = cast(Table, JobRow.__table__)
    if on_postgresql(session):
        values = (
            select(
                func.unnest(bindparam("b_rows", type_=ARRAY(Integer))).label("row_number"),
                func.unnest(bindparam("b_states", type_=ARRAY(String))).label("state"),
                func.unnest(bindparam("b_credentials", type_=ARRAY(Uuid))).label("credential_id"),
                func.unnest(bindparam("b_errors", type_=ARRAY(Text))).label("error"),
            )
        ).subquery("v")
        session.execute(
            update(table)
            .where(table.c.job_id == job_id, table.c.row_number == values.c.row_number)
            .values(
                state=values.c.state,
                credential_id=values.c.credential_id,
                error=values.c.error,
            ),
            {
                "b_rows": [r["row_number"] for r in results],
                "b_states": [r["state"] for r in results],
                "b_credentials": [r["credential_id"] for r in results],
                "b_errors": [r["error"] for r in results],
            },
        )
        return
    session.execute(
        update(table)
        .where(table.c.job_id == job_id, table.c.row_number == bindparam("b_row"))
        .values(
            state=bindparam("b_state"),
            credential_id=bindparam("b_credential"),
            error=bindparam("b_error"),
        ),
        [
            {
                "b_row": r["row_number"],
                "b_state": r["state"],
                "b_credential": r["credential_id"],
                "b_error": r["error"],
            }
            for r in results
        ],
    )


def add_counts(
    session: Session, job_id: uuid.UUID, *, issued: int, existing: int, failed: int
) -> None:
    """Add a chunk's outcomes to the job's counters (atomic increments: workers share a job)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            issued=Job.issued + issued,
            existing=Job.existing + existing,
            failed=Job.failed + failed,
            state=JobState.running,
            started_at=func.coalesce(Job.started_at, utcnow()),
        )
        .execution_options(synchronize_session=False)
    )


def complete(session: Session, job_id: uuid.UUID) -> bool:
    """Mark the job completed; False when another worker already did (only one may announce it)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state != JobState.completed)
        .values(
            state=JobState.completed,
            finished_at=utcnow(),
            started_at=func.coalesce(Job.started_at, utcnow()),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def rows_page(
    session: Session,
    job_id: uuid.UUID,
    *,
    states: Sequence[RowState],
    after: int | None,
    limit: int,
) -> Sequence[JobRow]:
    query = select(JobRow).where(JobRow.job_id == job_id)
    if states:
        query = query.where(JobRow.state.in_(list(states)))
    if after is not None:
        query = query.where(JobRow.row_number > after)
    return session.scalars(query.order_by(JobRow.row_number).limit(limit)).all()


def list_for_issuer(
    session: Session, issuer_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[Job]:
    query = select(Job).where(Job.issuer_id == issuer_id)
    if after is not None:
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(*after))
    return session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)).all()


def queue_depth(session: Session) -> tuple[dict[str, int], int]:
    """Jobs not yet completed by state, and their rows still pending (for /metrics).

    Reads the jobs table only (its state index), not the rows: a row's job counts what is settled.
    """
    waiting = (JobState.queued, JobState.running)
    result = session.execute(
        select(
            Job.state,
            func.count(),
            func.coalesce(func.sum(Job.total - Job.issued - Job.existing - Job.failed), 0),
        )
        .where(Job.state.in_(waiting))
        .group_by(Job.state)
    )
    jobs = {str(state): 0 for state in waiting}
    rows = 0
    for state, count, pending in result:
        jobs[str(state)] = int(count)
        rows += int(pending)
    return jobs, rows

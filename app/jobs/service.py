"""Bulk issuance jobs: read a batch (JSON or CSV), check every row, queue it, work it in chunks.

A submission is checked whole before anything is queued: rows that cannot be issued are recorded
as failed with their row number and the reason, the rest become pending rows of a job. Workers
then take chunks of pending rows (`claim_pending`), issue them with `credentials.bulk`, and record
each row's outcome in the same transaction as its credential: a chunk is issued entirely or not at
all, so a crash loses nothing and duplicates nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.achievements import service as achievements_service
from app.core import text as client_text
from app.core.config import Settings
from app.core.db import RawJSON, utcnow
from app.core.errors import (
    AppError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
)
from app.core.keys import KeyStore
from app.credentials import bulk
from app.issuers.models import Issuer
from app.jobs import repository
from app.jobs.models import Job, JobRow, JobState, RowState
from app.jobs.schemas import BatchRow
from app.webhooks import service as webhooks

CSV_COLUMNS = {
    "external_id": ("external_id",),
    "achievement_id": ("achievement_id",),
    "email": ("recipient", "email"),
    "did": ("recipient", "did"),
    "url": ("recipient", "url"),
    "name": ("recipient", "name"),
    "valid_from": ("valid_from",),
    "valid_until": ("valid_until",),
    "evidence_url": ("evidence", "id"),
    "evidence_name": ("evidence", "name"),
    "evidence_narrative": ("evidence", "narrative"),
}
# Where a validation error of a CSV row points: the column, not the JSON path.
_CSV_NAMES = {path: column for column, path in CSV_COLUMNS.items()}


class JobNotFound(NotFound):
    pass


class BatchTooLarge(PayloadTooLarge):
    title = "Too many rows"


@dataclass(frozen=True)
class RowError:
    """A row that could not even be read (a CSV line with more cells than columns)."""

    message: str


@dataclass(frozen=True)
class RawRows:
    """A batch as read from the request: one dict (or other JSON value) per row."""

    rows: list[Any]
    source: str  # "json" or "csv"


# --- reading a batch --------------------------------------------------------------------------


def rows_from_json(body: bytes) -> RawRows:
    try:
        data = client_text.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from exc
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if not isinstance(data, list):
        raise BadRequest(
            "Send the batch as a JSON array of credential rows (or as CSV with a header line)."
        )
    return RawRows(rows=data, source="json")


def rows_from_csv(body: bytes) -> RawRows:
    """CSV with a header line naming the columns in CSV_COLUMNS; empty cells count as absent."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The CSV file is not UTF-8 text: {exc}.") from exc
    fault = client_text.text_fault(text)
    if fault:  # strict UTF-8 holds no surrogate; a NUL would reach the database
        line = text.count("\n", 0, text.find("\x00")) + 1
        raise Unprocessable(f"The CSV file {fault} (line {line}).")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise BadRequest("The CSV file is empty: it needs a header line and rows.") from None
    except csv.Error as exc:
        raise BadRequest(f"The CSV header cannot be read: {exc}.") from exc
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise BadRequest(
            f"Unknown CSV column(s) {', '.join(repr(c) for c in unknown)}; "
            f"the columns are {', '.join(CSV_COLUMNS)}."
        )
    if len(set(columns)) != len(columns):
        raise BadRequest("A CSV column appears twice in the header.")
    if not {"email", "did", "url"} & set(columns):
        raise BadRequest("The CSV needs a recipient column: email, did or url.")
    rows: list[Any] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) > len(columns):
                rows.append(
                    RowError(f"has {len(cells)} cells but the header names {len(columns)} columns")
                )
                continue
            rows.append(_nest(dict(zip(columns, cells, strict=False))))
    except csv.Error as exc:
        raise BadRequest(f"The CSV cannot be read at line {reader.line_num}: {exc}.") from exc
    return RawRows(rows=rows, source="csv")


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, value in flat.items():
        value = value.strip()
        if not value:
            continue
        path = CSV_COLUMNS[column]
        if path[0] == "recipient":
            row.setdefault("recipient", {})[path[1]] = value
        elif path[0] == "evidence":
            row.setdefault("evidence", [{}])[0][path[1]] = value
        else:
            row[path[0]] = value
    row.setdefault("recipient", {})
    return row


def _describe(exc: ValidationError, source: str) -> str:
    parts = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
        where = (
            _CSV_NAMES.get(loc, ".".join(loc))
            if source == "csv"
            else ".".join(map(str, error["loc"]))
        )
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


# --- submitting -------------------------------------------------------------------------------


def submit(
    session: Session,
    *,
    settings: Settings,
    issuer: Issuer,
    batch: RawRows,
    achievement_id: uuid.UUID | str | None = None,
) -> Job:
    """Check every row and queue a job of those that can be issued; refused rows are recorded.

    `achievement_id` (for the rows that name none) and each row's own may be the achievement's
    uuid or its URL.
    """
    if not batch.rows:
        raise BadRequest("The batch has no rows.")
    if len(batch.rows) > settings.batch_max_rows:
        raise BatchTooLarge(
            f"The batch has {len(batch.rows)} rows; at most {settings.batch_max_rows} per request. "
            "Split it into several batches."
        )
    default_achievement: uuid.UUID | None = None
    if achievement_id is not None:
        default_achievement = achievements_service.achievement_ref(settings, achievement_id)
        achievements_service.get_achievement(
            session, achievement_id=default_achievement, issuer=issuer
        )
    job_id = uuid.uuid4()
    checked: list[dict[str, Any]] = []
    first_row_of: dict[str, int] = {}
    achievement_of: dict[int, uuid.UUID] = {}  # row number -> achievement, for the rows that pass
    for number, raw in enumerate(batch.rows, start=1):
        row: dict[str, Any] = {
            "job_id": job_id,
            "row_number": number,
            "external_id": None,
            "payload": None,
            "state": RowState.pending.value,
            "credential_id": None,
            "error": None,
        }
        checked.append(row)
        if isinstance(raw, RowError):
            row.update(state=RowState.failed.value, error=raw.message)
            continue
        if not isinstance(raw, dict):
            row.update(state=RowState.failed.value, error="a row must be a JSON object")
            continue
        if default_achievement is not None and raw.get("achievement_id") in (None, ""):
            raw = {**raw, "achievement_id": str(default_achievement)}
        try:
            parsed = BatchRow.model_validate(raw)
        except ValidationError as exc:
            external = raw.get("external_id")
            row.update(
                state=RowState.failed.value,
                error=_describe(exc, batch.source),
                external_id=external[:255] if isinstance(external, str) else None,
            )
            continue
        row["external_id"] = parsed.external_id
        try:
            wanted = achievements_service.achievement_ref(settings, parsed.achievement_id)
        except AppError as exc:
            row.update(state=RowState.failed.value, error=exc.message)
            continue
        if parsed.external_id is not None:
            first = first_row_of.setdefault(parsed.external_id, number)
            if first != number:
                row.update(
                    state=RowState.failed.value,
                    error=f"external_id: {parsed.external_id!r} already appears at row {first} of this batch",
                )
                continue
        # Stored as the JSON pydantic writes (one step, in Rust: a tenth of the checking's time).
        row["payload"] = RawJSON(parsed.model_dump_json(exclude_none=True, exclude={"external_id"}))
        achievement_of[number] = wanted
    owned = {
        a.id
        for a in achievements_service.achievements_of(
            session, issuer=issuer, ids=set(achievement_of.values())
        )
    }
    for number, wanted in achievement_of.items():
        if wanted not in owned:
            checked[number - 1].update(
                state=RowState.failed.value,
                payload=None,
                error=f"achievement_id: no achievement {wanted} of this issuer",
            )
    failed = sum(1 for r in checked if r["state"] == RowState.failed.value)
    job = Job(
        id=job_id,
        issuer_id=issuer.id,
        kind="credentials.batch",
        source=batch.source,
        state=JobState.queued,
        total=len(checked),
        issued=0,
        existing=0,
        failed=failed,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    repository.add_rows(session, checked)
    if failed == len(checked):
        _complete(session, settings=settings, job_id=job.id)
    else:
        repository.notify_workers(session)
    session.refresh(job)
    return job


# --- working ----------------------------------------------------------------------------------


def work_chunk(
    session: Session,
    *,
    settings: Settings,
    keystore: KeyStore,
    job_id: uuid.UUID,
    chunk_size: int,
) -> int:
    """Issue the next chunk of the job's pending rows in this transaction; the rows it settled.

    0 means nothing was claimable: the job is finished (and is marked so here), or its remaining
    rows are held by other workers.
    """
    job = repository.get(session, job_id)
    if job is None or job.state == JobState.completed:
        return 0
    rows = repository.claim_pending(session, job_id, chunk_size)
    if not rows:
        if repository.count_pending(session, job_id) == 0:
            _complete(session, settings=settings, job_id=job_id)
        return 0
    issuer = session.get(Issuer, job.issuer_id)
    if issuer is None:  # pragma: no cover - jobs are deleted with their issuer
        raise JobNotFound(f"The issuer of job {job_id} no longer exists.")
    requests = [
        bulk.BulkRequest(ref=r.row_number, data=r.payload, external_id=r.external_id)
        for r in rows
        if r.payload is not None
    ]
    try:
        with session.begin_nested():
            batch = bulk.issue_many(
                session, settings=settings, keystore=keystore, issuer=issuer, requests=requests
            )
    except ServiceUnavailable:
        # An outage (the key store, the database), not the rows' fault: the chunk stays pending
        # (the unit of work rolls back the claim) and the runner retries it with backoff.
        raise
    except AppError as exc:
        # Nothing of this chunk could be issued (e.g. the issuer has no active key): say so per row.
        batch = bulk.Batch([bulk.BulkResult(r.ref, "failed", error=exc.message) for r in requests])
    outcomes = batch.results
    repository.record_results(
        session,
        job_id,
        [
            {
                "row_number": o.ref,
                "state": o.outcome,
                "credential_id": o.credential_id,
                "error": o.error,
            }
            for o in outcomes
        ],
    )
    # Last, for they lock rows every worker of this issuer and job needs (the audit chain's head,
    # the job's counters) until the commit: the signing and inserting above runs in parallel.
    bulk.announce(session, settings=settings, issuer=issuer, batch=batch)
    repository.add_counts(
        session,
        job_id,
        issued=sum(1 for o in outcomes if o.outcome == "issued"),
        existing=sum(1 for o in outcomes if o.outcome == "existing"),
        failed=sum(1 for o in outcomes if o.outcome == "failed"),
    )
    return len(rows)


def _complete(session: Session, *, settings: Settings, job_id: uuid.UUID) -> None:
    if not repository.complete(session, job_id):
        return
    job = repository.get(session, job_id)
    if job is None:  # pragma: no cover - just updated
        return
    session.refresh(job)
    webhooks.enqueue(
        session,
        issuer_id=job.issuer_id,
        event_type="job.completed",
        data={
            "id": str(job.id),
            "url": job_url(settings, job.id),
            "state": job.state,
            "total": job.total,
            "issued": job.issued,
            "existing": job.existing,
            "failed": job.failed,
        },
    )


# --- reading ----------------------------------------------------------------------------------


def job_url(settings: Settings, job_id: uuid.UUID) -> str:
    return settings.url(f"/api/v1/jobs/{job_id}")


def get_job(session: Session, *, job_id: uuid.UUID, issuer: Issuer | None = None) -> Job:
    job = repository.get(session, job_id)
    if job is None or (issuer is not None and job.issuer_id != issuer.id):
        raise JobNotFound(f"No job {job_id}.")
    return job


def job_rows(
    session: Session,
    *,
    job: Job,
    states: Sequence[RowState],
    after: str | None,
    limit: int,
) -> tuple[Sequence[JobRow], str | None]:
    """A page of the job's rows in row order, and the cursor of the next page."""
    after_row: int | None = None
    if after is not None:
        if not (after.isascii() and after.isdigit()) or len(after) > 9:
            raise BadRequest("The cursor is not one this API handed out.")
        after_row = int(after)
    rows = repository.rows_page(session, job.id, states=states, after=after_row, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].row_number) if more and rows else None)


def pending(job: Job) -> int:
    return max(0, job.total - job.issued - job.existing - job.failed)

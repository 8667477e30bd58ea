"""Bulk issuance over HTTP: submit a batch (202 + job), then follow the job."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.core.config import Settings
from app.core.deps import ContextDep, SessionDep
from app.core.errors import BadRequest, UnsupportedMediaType
from app.core.openapi import inline_schema, problem_responses
from app.core.pagination import Page, decode_cursor, encode_cursor
from app.issuers.deps import CurrentIssuer
from app.issuers.models import Issuer
from app.jobs import repository, service
from app.jobs.models import Job, JobRow, RowState
from app.jobs.schemas import BatchRow, JobRead

api = APIRouter(prefix="/api/v1", tags=["issuer"])

JSON_TYPES = {"application/json"}
CSV_TYPES = {"text/csv", "application/csv"}
MULTIPART = "multipart/form-data"


class RowFilter(StrEnum):
    all = "all"
    failed = "failed"
    issued = "issued"
    existing = "existing"
    pending = "pending"
    none = "none"


def job_read(
    settings: Settings, job: Job, rows: list[JobRow], next_cursor: str | None = None
) -> JobRead:
    return JobRead.from_record(settings, job, rows, next_cursor)


async def _read_batch(request: Request) -> service.RawRows:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == MULTIPART:
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest(
                    'Send the batch file as the multipart/form-data file field "file".'
                )
            body = await upload.read()
            media = (upload.content_type or "").split(";", 1)[0].strip().lower()
            name = (upload.filename or "").lower()
        if media in JSON_TYPES or name.endswith(".json"):
            return service.rows_from_json(body)
        return service.rows_from_csv(body)
    body = await request.body()
    if media in JSON_TYPES:
        return service.rows_from_json(body)
    if media in CSV_TYPES:
        return service.rows_from_csv(body)
    raise UnsupportedMediaType(
        f"Unsupported content type {media or 'none'!r}: send a JSON array (application/json), "
        'CSV (text/csv), or a file as the multipart/form-data field "file".'
    )


@api.post(
    "/credentials/batch",
    status_code=202,
    response_model=JobRead,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": inline_schema(BatchRow)},
                    "example": [
                        {
                            "external_id": "enrol-1001",
                            "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
                        },
                        {
                            "external_id": "enrol-1002",
                            "recipient": {"email": "kofi@example.com", "name": "Kofi Mensah"},
                        },
                    ],
                },
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
    responses={
        400: {"description": "Unreadable JSON or CSV, unknown CSV columns, no rows"},
        404: {"description": "The `achievement_id` parameter names no achievement of yours"},
        413: {"description": "More rows (or bytes) than one request may carry"},
        415: {"description": "Neither JSON, CSV nor a multipart upload"},
        **problem_responses(409, _409="The issuer has no active key"),
    },
)
async def submit_batch(
    request: Request,
    issuer: CurrentIssuer,
    session: SessionDep,
    ctx: ContextDep,
    achievement_id: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="The achievement of every row that does not name its own: its uuid or "
            "its URL.",
        ),
    ] = None,
) -> JSONResponse:
    """Queue many credentials at once (JSON array or CSV, up to the configured number of rows).

    Every row is checked first: the 202 answer carries the job and the rows refused, each with
    its row number and the reason; the others are issued in the background. Rows with an
    `external_id` already issued (by this or an earlier batch) are reported, not issued again.
    CSV columns: external_id, achievement_id, email, did, url, name, valid_from, valid_until,
    evidence_url, evidence_name, evidence_narrative.
    """
    batch = await _read_batch(request)
    job, refused = await run_in_threadpool(
        _submit, session, ctx.settings, issuer, batch, achievement_id
    )
    read = job_read(ctx.settings, job, refused)
    runner = getattr(request.app.state, "job_runner", None)
    return JSONResponse(
        read.model_dump(mode="json"),
        status_code=202,
        headers={"Location": read.url},
        background=BackgroundTask(runner.wake) if runner is not None else None,
    )


def _submit(
    session: Session,
    settings: Settings,
    issuer: Issuer,
    batch: service.RawRows,
    achievement_id: str | None,
) -> tuple[Job, list[JobRow]]:
    job = service.submit(
        session, settings=settings, issuer=issuer, batch=batch, achievement_id=achievement_id
    )
    refused, _ = service.job_rows(
        session, job=job, states=[RowState.failed], after=None, limit=settings.batch_max_rows
    )
    return job, list(refused)


@api.get("/jobs", response_model=Page[JobRead])
def list_jobs(
    issuer: CurrentIssuer,
    session: SessionDep,
    ctx: ContextDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[JobRead]:
    """Your jobs, newest first (without their rows)."""
    jobs = repository.list_for_issuer(
        session, issuer.id, limit=limit + 1, after=decode_cursor(cursor)
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return Page[JobRead](
        items=[job_read(ctx.settings, j, []) for j in jobs],
        next_cursor=encode_cursor(jobs[-1].created_at, jobs[-1].id) if more and jobs else None,
    )


@api.get("/jobs/{job_id}", response_model=JobRead)
def get_job(
    job_id: uuid.UUID,
    issuer: CurrentIssuer,
    session: SessionDep,
    ctx: ContextDep,
    rows: Annotated[
        RowFilter,
        Query(description="Which rows to list: all, failed, issued, existing, pending or none."),
    ] = RowFilter.all,
    after: Annotated[str | None, Query(description="Row cursor from `next_rows_cursor`.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JobRead:
    """The job's state, its counts, and a page of per-row results (credential id or error)."""
    job = service.get_job(session, job_id=job_id, issuer=issuer)
    if rows is RowFilter.none:
        return job_read(ctx.settings, job, [])
    states = [] if rows is RowFilter.all else [RowState(rows.value)]
    page, next_cursor = service.job_rows(session, job=job, states=states, after=after, limit=limit)
    return job_read(ctx.settings, job, list(page), next_cursor)

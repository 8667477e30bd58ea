"""The operator's trust list API: list, read, add and remove entries, import a DCC registry."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from app.core.deps import AdminDep, ReadSessionDep, SessionDep
from app.core.errors import PROBLEM_JSON
from app.core.openapi import PROBLEM_REF
from app.trust import service
from app.trust.models import DCC_SOURCE_PREFIX, SOURCE_MAX
from app.trust.schemas import (
    DCC_REGISTRY_SCHEMA,
    TrustEntryCreate,
    TrustEntryRead,
    TrustImportResult,
)

api = APIRouter(prefix="/api/v1/trust/issuers", tags=["operator"])


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: _problem("No operator token, or not the operator's token")
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("No trust list entry has this id")}


@api.post(
    "",
    status_code=201,
    response_model=TrustEntryRead,
    responses={
        **_UNAUTHORIZED,
        400: _problem("The body is not JSON"),
        409: _problem("The identifier, in whatever spelling, is listed already"),
        413: _problem("The body exceeds the size limit"),
        422: _problem(
            "Not a DID or https URL; an empty name; NUL or control characters; values too long"
        ),
    },
)
def add_trusted_issuer(
    data: TrustEntryCreate, _admin: AdminDep, session: SessionDep
) -> TrustEntryRead:
    """Add an issuer (DID or https origin) to the trust list: verification calls it `listed`."""
    return TrustEntryRead.from_record(service.add_entry(session, data=data))


@api.get("", response_model=list[TrustEntryRead], responses=_UNAUTHORIZED)
def list_trusted_issuers(_admin: AdminDep, session: ReadSessionDep) -> list[TrustEntryRead]:
    """List the trust list's entries, by name."""
    return [TrustEntryRead.from_record(e) for e in service.list_entries(session)]


@api.post(
    "/import",
    response_model=TrustImportResult,
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": DCC_REGISTRY_SCHEMA}}}
    },
    responses={
        **_UNAUTHORIZED,
        400: _problem("The body is not JSON"),
        413: _problem("The body exceeds the size limit"),
        422: _problem(
            "Not a DCC issuer registry, or an entry that cannot be listed (named in the detail); "
            "nothing is imported"
        ),
    },
)
def import_registry(
    document: Annotated[Any, Body()],
    _admin: AdminDep,
    session: SessionDep,
    registry: Annotated[
        str,
        Query(
            min_length=1,
            max_length=SOURCE_MAX - len(DCC_SOURCE_PREFIX),
            description="The registry's name: its entries get the source "
            '"dcc-registry:<registry>".',
        ),
    ] = service.DEFAULT_REGISTRY,
    replace: Annotated[
        bool,
        Query(description="Also remove this registry's entries that the document no longer has."),
    ] = False,
) -> TrustImportResult:
    """Import a Digital Credentials Consortium issuer registry (all or nothing; re-importing
    updates names)."""
    return service.import_dcc_registry(session, document, registry=registry, replace_source=replace)


@api.get("/{entry_id}", response_model=TrustEntryRead, responses={**_UNAUTHORIZED, **_NOT_FOUND})
def get_trusted_issuer(
    entry_id: uuid.UUID, _admin: AdminDep, session: ReadSessionDep
) -> TrustEntryRead:
    """Read one trust list entry."""
    return TrustEntryRead.from_record(service.get_entry(session, entry_id=entry_id))


@api.delete(
    "/{entry_id}",
    status_code=204,
    response_class=Response,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
)
def remove_trusted_issuer(entry_id: uuid.UUID, _admin: AdminDep, session: SessionDep) -> Response:
    """Take an entry off the trust list: its issuer is no longer `listed`."""
    service.remove_entry(session, ref=entry_id)
    return Response(status_code=204)

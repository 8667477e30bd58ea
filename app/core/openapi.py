"""The OpenAPI document says what the API really answers, errors included.

FastAPI documents the success response of each route and a 422 in its own shape; the service
answers every error as an RFC 9457 problem (`app.core.errors`) and some that no route declares:
401 wherever a bearer token is needed, 404 for a path that names nothing, 400/413 for bodies that
are no JSON or too large, 503 when the database or key store is out. `complete_document` adds
those to every operation it applies to, gives every error response the `ProblemDetails` body
(the HTML error page too, where the operation also serves HTML), and documents the X-Request-ID
every response carries. Routes name only what is theirs (a 409, a 415) with `problem_responses`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from app.core.errors import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
Responses = dict[int | str, dict[str, Any]]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemDetails",
    "description": "An RFC 9457 problem: every error the API answers has this shape.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "about:blank (the status says it all)"},
        "title": {"type": "string", "description": "The status's reason phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, for a person"},
        "request_id": {
            "type": "string",
            "description": "The X-Request-ID of the request: the server's log lines name it too",
        },
        "errors": {
            "type": "array",
            "description": "For 400/404/422 from request validation: each invalid part",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

DESCRIPTIONS = {
    400: "The request is not readable (a body that is no JSON, a malformed value)",
    401: "No bearer token, or not a valid one",
    403: "The token is valid but may not do this",
    404: "Nothing has this id, or the path does not name a resource",
    409: "The resource's state does not allow this (already done, or taken)",
    408: "The request body did not arrive in time (MICROCRED_BODY_TIMEOUT)",
    413: "The request body exceeds the size limit",
    415: "The request body's content type is not one this operation reads",
    422: "The request is readable but a value is invalid",
    429: "Too many requests or failed attempts from this client: wait Retry-After seconds",
    503: "The database or the key store is unavailable: retry after Retry-After seconds",
}

REQUEST_ID_HEADER = {
    "description": "The request's id: the client's own when well-formed, else one the server made",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"},
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[0-9]+$"},
}

# What the rate limits guard (failed authentication, capability tokens, verification).
_RATE_LIMITED_PATHS = re.compile(r"\{token\}|^/api/v1/verify$|^/verify$")


def problem_responses(*statuses: int, **descriptions: str) -> Responses:
    """The `responses=` of a route's own errors: `problem_responses(409, 415)`, each with the
    ProblemDetails body; `descriptions` (`_409="…"`) say what the status means here."""
    return {
        status: {
            "description": descriptions.get(f"_{status}", DESCRIPTIONS.get(status, "An error")),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        }
        for status in statuses
    }


def media_types(*types: str, status: int = 200, description: str = "OK") -> Responses:
    """The `responses=` of a route that answers `status` in other media types than JSON
    (negotiated or fixed); use with `response_class=Response` so FastAPI adds no application/json."""
    content = {
        t: {"schema": {"type": "string"} if t.startswith("text/") else {"type": "object"}}
        for t in types
    }
    return {status: {"description": description, "content": content}}


def _error_content(html: bool) -> dict[str, Any]:
    content: dict[str, Any] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    return content


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    has_path_params = "{" in path
    has_body = "requestBody" in operation
    has_params = bool(operation.get("parameters")) or has_body
    has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
    serves_html = any(
        "text/html" in (r.get("content") or {})
        for status, r in responses.items()
        if status.startswith("2")
    )
    wanted: set[int] = {503}
    if has_path_params:
        # 400: a NUL or a lone surrogate in the path is refused at the edge (core.errors)
        wanted |= {400, 404}
    if has_params:
        wanted.add(422)
    if has_body:
        wanted |= {400, 408, 413}
    if has_query:
        wanted.add(400)  # a pagination cursor or a filter that does not parse
    if operation.get("security"):
        wanted.add(401)
    if operation.get("security") or _RATE_LIMITED_PATHS.search(path):
        wanted.add(429)
    for code in sorted(wanted):
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = REQUEST_ID_HEADER
        if not status.isdigit() or int(status) < 400:
            continue
        content = response.get("content") or {}
        schema = (content.get("application/json") or {}).get("schema") or {}
        if not content or schema.get("$ref", "").endswith("/HTTPValidationError"):
            # no content declared, or FastAPI's own 422 shape, which the error handler never sends
            content = response["content"] = _error_content(serves_html)
        content.setdefault(PROBLEM_JSON, {}).setdefault("schema", PROBLEM_REF)
        if serves_html:
            content.setdefault("text/html", {"schema": {"type": "string"}})
        if int(status) in (429, 503):
            headers["Retry-After"] = RETRY_AFTER_HEADER


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every operation's error responses, the ProblemDetails schema and the
    X-Request-ID header (in place; returned for convenience)."""
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _complete_operation(path, operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ProblemDetails"] = PROBLEM_SCHEMA
    # FastAPI's validation error shapes, now referenced by no operation
    if "/HTTPValidationError" not in json.dumps(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (FastAPI's, completed once)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` inlined.

    Pydantic refers to nested models as `#/$defs/Name`, a pointer into the document root; placed
    inside the OpenAPI document that root is the OpenAPI object, where no `$defs` exists, so
    ReDoc (rightly) refuses the whole document and Swagger UI shows resolver errors.
    """
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:  # a recursive model: stop at an open object
                    return {"type": "object", "title": name}
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[name], seen | {name}), **rest}
            return {k: resolve(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema, frozenset())
    return resolved

"""Public verification: the JSON API and the paste-a-credential page."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.badges.bake import BadImage, unbake
from app.core import text as client_text
from app.core.context import AppContext
from app.core.deps import ContextDep
from app.core.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType
from app.core.openapi import inline_schema
from app.core.ratelimit import LimitClass, RateLimited, client_address, limiter
from app.core.web import render
from app.credentials import service as credentials_service
from app.verify.envelope import is_vc
from app.verify.page import verification_context
from app.verify.prefetch import verify_for_request
from app.verify.schemas import VerificationResult, VerifyRequest
from app.verify.service import Verification, credential_uuid_from_url

api = APIRouter(tags=["public"])
pages = APIRouter(tags=["pages"], include_in_schema=False)

RAW_JWT_TYPES = {"application/vc+jwt", "application/jwt", "text/plain"}
MULTIPART = "multipart/form-data"

_RAW_JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImRpZDp3ZWI6…"
_REQUEST_EXAMPLES: dict[str, Any] = {
    "jwt": {"summary": "A compact VC-JWT", "value": {"credential": "eyJhbGciOiJFUzI1NiIs…"}},
    "json": {
        "summary": "A credential as JSON (an embedded proof, or one of ours by its id)",
        "value": {
            "credential": {
                "@context": ["https://www.w3.org/ns/credentials/v2"],
                "type": ["VerifiableCredential", "OpenBadgeCredential"],
                "id": "https://credentials.example/credentials/3f2c…",
            }
        },
    },
}


def _credential_from_body(content_type: str, body: bytes) -> str | dict[str, Any]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in RAW_JWT_TYPES:
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise BadRequest("The body is not UTF-8 text.") from exc
        if not text:
            raise BadRequest("The body is empty: send a compact JWT.")
        return text
    if media not in {"application/json", "application/ld+json", ""}:
        raise UnsupportedMediaType(
            f'Unsupported content type {media!r}: send JSON {{"credential": …}}, a raw JWT as application/vc+jwt, or a baked badge image as multipart/form-data field "file".'
        )
    try:
        data = client_text.loads(body)
    except client_text.UnacceptableJSON as exc:
        raise Unprocessable(f"{exc}.", loc=["body", *exc.fault.loc]) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    try:
        request = VerifyRequest.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(
            'Send {"credential": "<compact JWT>"} or {"credential": {…credential JSON…}}.',
            errors=[{"loc": list(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()],
        ) from exc
    if isinstance(request.credential, str) and not request.credential.strip():
        raise BadRequest("The credential is an empty string.")
    return request.credential


@api.post(
    "/api/v1/verify",
    response_model=VerificationResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": inline_schema(VerifyRequest),
                    "examples": _REQUEST_EXAMPLES,
                },
                "application/vc+jwt": {"schema": {"type": "string"}, "example": _RAW_JWT},
                "application/jwt": {"schema": {"type": "string"}, "example": _RAW_JWT},
                "text/plain": {"schema": {"type": "string"}, "example": _RAW_JWT},
                MULTIPART: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "A baked Open Badges image (PNG or SVG, recognised by its content)",
                            }
                        },
                        "required": ["file"],
                    }
                },
            },
        }
    },
    responses={
        400: {"description": "No credential, an unreadable body, or an unreadable badge image"},
        413: {"description": "The body, or a credential compressed inside an image, is too large"},
        415: {"description": "An unsupported content type, or an upload that is not PNG or SVG"},
        429: {"description": "Too many verifications from this client (see Retry-After)"},
    },
)
async def verify_credential(request: Request, ctx: ContextDep) -> Response:
    """Verify a credential (JWT, JSON, or a baked PNG/SVG badge); 200 with `verified: false` when it does not verify."""
    limiter(request).spend(LimitClass.verify, client_address(request))
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == MULTIPART:
        image = await _uploaded_image(request)
        credential = await run_in_threadpool(unbake, image)
    else:
        credential = _credential_from_body(content_type, await request.body())
    # Remote keys and status lists are fetched with no database session held (verify.prefetch).
    result = await verify_for_request(ctx, credential, Verification.result)
    # Serialised here, once: returned as a model, it would be validated again against
    # `response_model` (which stays declared, for the OpenAPI document).
    return Response(result.model_dump_json(), media_type="application/json")


async def _uploaded_image(request: Request) -> bytes:
    """The bytes of the multipart field `file` (the body size middleware has already capped them)."""
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, StarletteUploadFile):
            raise BadRequest('Send the badge image as the multipart/form-data file field "file".')
        return await upload.read()


@pages.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request) -> Response:
    """The page where anyone pastes a JWT or a credential link."""
    return render(request, "verify.html", {"submitted": None, "error": None})


def _form_error(request: Request, submitted: str, error: str) -> Response:
    """The form again, with what was wrong said in words (never a result page for garbage)."""
    return render(request, "verify.html", {"submitted": submitted, "error": error}, 400)


# Three base64url segments: the shape of a compact JWS. Anything else pasted is not a token.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


async def _credential_exists(ctx: AppContext, record_id: uuid.UUID) -> bool:
    """Whether a credential of ours has that id (a short read session of its own)."""

    def exists() -> bool:
        with ctx.read_sessions() as session:
            try:
                credentials_service.get_credential(session, credential_id=record_id)
            except NotFound:
                return False
            return True

    async with ctx.db_slots():
        return await run_in_threadpool(exists)


@pages.post("/verify", response_class=HTMLResponse)
async def verify_page_submit(
    request: Request,
    ctx: ContextDep,
    credential: Annotated[str, Form(max_length=512 * 1024)] = "",
    file: Annotated[UploadFile | None, File(description="A baked badge image")] = None,
) -> Response:
    """Verify what was pasted or uploaded and show the result page.

    `async`, with no session of its own: the verification takes one only while it reads the
    database, never while it waits for a foreign issuer's site (verify.prefetch)."""
    try:
        limiter(request).spend(LimitClass.verify_form, client_address(request))
    except RateLimited as exc:
        response = render(request, "verify.html", {"submitted": "", "error": exc.message}, 429)
        response.headers.update(exc.headers or {})
        return response
    text = credential.strip()
    image = await file.read() if file is not None else b""
    if image:
        try:
            baked = await run_in_threadpool(unbake, image)
        except BadImage as exc:
            return _form_error(request, text, f"That image could not be read: {exc.message}")
        return await _verification_page(request, ctx, baked, submitted=text)
    if not text:
        return _form_error(
            request, "", "Paste a credential JWT or a link, or upload a badge image."
        )
    if text.startswith(("http://", "https://")):
        record_id = credential_uuid_from_url(ctx.settings, text)
        if record_id is None:
            return _form_error(
                request,
                text,
                "That link is not a credential of this service. Paste the credential's JWT instead.",
            )
        if not await _credential_exists(ctx, record_id):
            return _form_error(
                request,
                text,
                "No credential of this service has that link. It may be mistyped or forged: "
                "do not rely on it.",
            )
        return RedirectResponse(f"/credentials/{record_id}", status_code=303)
    payload: str | dict[str, Any] = text
    if text.startswith("{"):
        try:
            parsed = client_text.loads(text)
        except client_text.UnacceptableJSON as exc:
            return render(
                request,
                "verify.html",
                {"submitted": "", "error": f"That JSON cannot be checked: {exc}."},
                400,
            )
        except ValueError:
            return _form_error(request, text, "That JSON could not be read.")
        if not isinstance(parsed, dict):
            return _form_error(request, text, "Paste a credential object.")
        if not is_vc(parsed):
            return _form_error(
                request, text, "That JSON is not a credential (no VerifiableCredential type)."
            )
        payload = parsed
    elif not _COMPACT_JWS.fullmatch(text):
        return _form_error(
            request,
            text,
            "That is not a credential: paste a JWT (three parts separated by dots, starting "
            "with eyJ), credential JSON or a link from this service.",
        )
    return await _verification_page(request, ctx, payload, submitted=text)


async def _verification_page(
    request: Request, ctx: AppContext, payload: str | dict[str, Any], *, submitted: str
) -> Response:
    def page(verification: Verification) -> dict[str, Any] | None:
        if not verification.credential and (
            isinstance(payload, dict) or verification.header is None
        ):
            return None  # not a token at all, or JSON that is no credential: a form error
        return verification_context(ctx.settings, verification, submitted=True)

    def failure(verification: Verification) -> str:
        return next((c.detail for c in verification.checks if c.result.value == "fail"), "")

    answer = await verify_for_request(
        ctx, payload, lambda verification: (page(verification), failure(verification))
    )
    context, failed = answer
    if context is None:
        # Not a token at all, or JSON that is no credential: say so on the form instead of a
        # result page for an "Unnamed credential". A real token whose credential breaks the
        # rules gets its red result page with the reason.
        return _form_error(
            request, submitted, f"That is not a readable credential. {failed}".strip()
        )
    return render(request, "credential.html", context)

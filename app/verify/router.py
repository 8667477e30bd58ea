"""Public verification: the JSON API and the paste-a-credential page."""

from __future__ import annotations

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
from app.core.errors import BadRequest, Unprocessable, UnsupportedMediaType
from app.core.ratelimit import LimitClass, RateLimited, client_address, limiter
from app.core.web import render
from app.verify.page import verification_context
from app.verify.prefetch import verify_for_request
from app.verify.schemas import VerificationResult, VerifyRequest
from app.verify.service import Verification, credential_uuid_from_url

api = APIRouter(tags=["public"])
pages = APIRouter(tags=["pages"], include_in_schema=False)

RAW_JWT_TYPES = {"application/vc+jwt", "application/jwt", "text/plain"}
MULTIPART = "multipart/form-data"

_REQUEST_EXAMPLES: dict[str, Any] = {
    "jwt": {"summary": "A compact VC-JWT", "value": {"credential": "eyJhbGciOiJFUzI1NiIs…"}},
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
                    "schema": VerifyRequest.model_json_schema(),
                    "examples": _REQUEST_EXAMPLES,
                },
                "application/vc+jwt": {"schema": {"type": "string"}},
                "application/jwt": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
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
            return render(
                request,
                "verify.html",
                {"submitted": text, "error": f"That image could not be read: {exc.message}"},
                400,
            )
        return await _verification_page(request, ctx, baked)
    if not text:
        return render(
            request,
            "verify.html",
            {
                "submitted": "",
                "error": "Paste a credential JWT or a link, or upload a badge image.",
            },
            400,
        )
    if text.startswith(("http://", "https://")):
        record_id = credential_uuid_from_url(ctx.settings, text)
        if record_id is None:
            return render(
                request,
                "verify.html",
                {
                    "submitted": text,
                    "error": "That link is not a credential of this service. Paste the credential's JWT instead.",
                },
                400,
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
            return render(
                request,
                "verify.html",
                {"submitted": text, "error": "That JSON could not be read."},
                400,
            )
        if not isinstance(parsed, dict):
            return render(
                request,
                "verify.html",
                {"submitted": text, "error": "Paste a credential object."},
                400,
            )
        payload = parsed
    return await _verification_page(request, ctx, payload)


async def _verification_page(
    request: Request, ctx: AppContext, payload: str | dict[str, Any]
) -> Response:
    def page(verification: Verification) -> dict[str, Any]:
        return verification_context(ctx.settings, verification, submitted=True)

    return render(request, "credential.html", await verify_for_request(ctx, payload, page))

"""`/docs` (Swagger UI) and `/redoc` (ReDoc) from assets shipped in a package, not a CDN.

The assets come from the `fastapi-offline` wheel (it vendors the Swagger UI and ReDoc builds
with their licences); our pages load them and a small init script of ours from the same origin,
so no inline script runs and the policy below is all these two pages need.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.core.web import render

pages = APIRouter(include_in_schema=False)

VENDOR_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
VENDOR_PREFIX = "/static/vendor"

# Only for the two docs pages: Swagger UI and ReDoc set element styles from their scripts
# (style-src 'unsafe-inline' covers those, no script is inline), draw icons from data: URIs, and
# ReDoc runs its search index in a blob: worker. Everything else is from this origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def vendor_files() -> StaticFiles:
    """The vendored Swagger UI / ReDoc files, mounted at VENDOR_PREFIX."""
    return StaticFiles(directory=VENDOR_DIR)


def _docs_page(request: Request, template: str) -> Response:
    response = render(
        request, template, {"openapi_url": request.app.openapi_url, "vendor": VENDOR_PREFIX}
    )
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@pages.get("/docs")
def swagger_ui(request: Request) -> Response:
    """Swagger UI: try the API from the browser."""
    return _docs_page(request, "swagger.html")


@pages.get("/redoc")
def redoc(request: Request) -> Response:
    """ReDoc: the API reference to read."""
    return _docs_page(request, "redoc.html")

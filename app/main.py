"""Application factory: `create_app(settings)` wires features, errors and long-lived objects."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.achievements import router as achievements
from app.apidocs import router as apidocs
from app.badges import router as badges
from app.core.config import Environment, Settings
from app.core.context import AppContext
from app.core.errors import (
    DATABASE_FAULTS,
    BodySizeLimitMiddleware,
    TextGuardMiddleware,
    install_error_handlers,
    problem,
)
from app.core.head import HeadAsGetMiddleware
from app.core.health import ReadinessProbe
from app.core.logs import configure_logging
from app.core.metrics import exposition, mark_process_dead, scrape_refusal
from app.core.observe import RequestObserver
from app.core.openapi import install as install_openapi
from app.core.ratelimit import RateLimiter
from app.core.web import render
from app.credentials import router as credentials
from app.credentials import status_lists
from app.issuers import audit_router
from app.issuers import router as issuers
from app.issuers import service as issuers_service
from app.jobs import repository as jobs_repository
from app.jobs import router as jobs
from app.jobs.runner import JobRunner
from app.models import load_all_models
from app.portfolios import router as portfolios
from app.trust import router as trust
from app.verify import credential_pages
from app.verify import router as verify
from app.webhooks import repository as webhooks_repository
from app.webhooks import router as webhooks
from app.webhooks.dispatcher import Dispatcher

log = logging.getLogger("microcred")

STATIC_DIR = Path(__file__).resolve().parent / "static"


class StartupRefused(RuntimeError):
    """Settings or key material that must not run in production."""


class SecurityHeadersMiddleware:
    """Baseline headers on every response; no route may be framed unless it says so.

    A response that sets its own Content-Security-Policy keeps it. If that policy lets other
    sites frame the page (`frame-ancestors` other than 'none', as the embed card does),
    X-Frame-Options is left out too: DENY would override the policy in older browsers.
    """

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' https: data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def allows_framing(headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether the response's own CSP names frame-ancestors other than 'none'."""
        for name, value in headers:
            if name.lower() != b"content-security-policy":
                continue
            for directive in value.decode("latin-1").split(";"):
                parts = directive.split()
                if parts and parts[0].lower() == "frame-ancestors":
                    return [p.lower() for p in parts[1:]] != ["'none'"]
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                framable = self.allows_framing(headers)
                extra = [
                    (n, v)
                    for n, v in self.HEADERS
                    if n not in present and not (framable and n == b"x-frame-options")
                ]
                message["headers"] = [*headers, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def check_startup(ctx: AppContext) -> None:
    """In production: no key in clear, and every active signing key decrypts (a wrong passphrase
    or a lost key file would otherwise show only at the first issuance)."""
    if ctx.settings.env is not Environment.production:
        return
    clear = ctx.keystore.unencrypted_keys()
    if clear:
        raise StartupRefused(
            f"{len(clear)} private key(s) in {ctx.settings.keys_dir} are not encrypted; "
            "re-encrypt them with MICROCRED_KEYS_PASSPHRASE before starting in production"
        )
    try:
        with ctx.read_sessions() as session:
            unreadable = issuers_service.unreadable_active_keys(session, keystore=ctx.keystore)
    except DATABASE_FAULTS as exc:
        # The database may come up after us (the server keeps retrying it); /health reports a
        # key that fails from then on.
        log.warning("start-up: active keys not checked, the database is unavailable: %s", exc)
        return
    if unreadable:
        raise StartupRefused(
            f"{len(unreadable)} active signing key(s) cannot be loaded from "
            f"{ctx.settings.keys_dir}: {unreadable[0]}"
            + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else "")
        )


def freeze_heap() -> None:
    """Move everything allocated so far (modules, app, caches) out of the cyclic GC's reach.

    Those objects live as long as the process, yet every full collection walks them again; a
    bulk submission or job chunk allocates enough to trigger several. `gc.freeze` is meant for
    this (long-lived servers after start-up): it took a 10,000-row submission from ~0.4 s to
    ~0.2 s of CPU. Called by `microcred serve` and `microcred worker`, not by `create_app`
    (tests build many apps in one process, and frozen garbage is never collected).
    """
    gc.collect()
    gc.freeze()


class MicrocredApp(FastAPI):
    """FastAPI with the request observer (request id, metrics, access line) outermost: outside
    Starlette's error middleware too, so that a 500 is counted and carries its X-Request-ID."""

    access_log: bool = False

    def build_middleware_stack(self) -> ASGIApp:
        return RequestObserver(super().build_middleware_stack(), access_log=self.access_log)


def serving_app() -> FastAPI:
    """The app as `microcred serve` runs it in each worker process (uvicorn's factory)."""
    settings = Settings()
    configure_logging(settings)
    app = create_app(settings)
    freeze_heap()
    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    load_all_models()
    ctx = AppContext.build(settings)
    try:
        check_startup(ctx)
    except StartupRefused:
        ctx.close()
        raise

    runner = JobRunner(ctx)
    dispatcher = Dispatcher.from_context(ctx)  # sends webhook deliveries (see app/webhooks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.background_workers:
            runner.start()
            dispatcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(runner.stop)
            await run_in_threadpool(dispatcher.stop)
            ctx.close()
            mark_process_dead(os.getpid())

    app = MicrocredApp(
        title="microcred",
        version="0.1.0",
        summary="Issue and verify micro-credentials as Open Badges 3.0 VC-JWTs.",
        description=(
            "Course providers sign micro-credentials as W3C Verifiable Credentials in the Open Badges 3.0 "
            "format (VC-JWT); anyone verifies them through a public API, page and QR code. Errors are "
            "RFC 9457 problem details."
        ),
        lifespan=lifespan,
        # Served by app/apidocs from our own files (the defaults load a CDN our CSP blocks).
        docs_url=None,
        redoc_url=None,
    )
    app.access_log = settings.access_log
    app.state.ctx = ctx
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.state.job_runner = runner
    app.state.webhook_dispatcher = dispatcher
    install_error_handlers(app)
    # Innermost of the three: it reads bodies the size limit outside it has already capped.
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # Bulk issuance takes a whole cohort (10,000 rows by default) in one request.
        per_path={"/api/v1/credentials/batch": settings.batch_max_bytes},
        body_timeout=settings.body_timeout,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HeadAsGetMiddleware)

    app.include_router(issuers.api)
    app.include_router(achievements.api)
    app.include_router(jobs.api)
    app.include_router(credentials.api)
    app.include_router(verify.api)
    app.include_router(audit_router.api)
    app.include_router(webhooks.api)
    app.include_router(trust.api)
    app.include_router(credential_pages.public)
    app.include_router(badges.public)
    app.include_router(issuers.public)
    app.include_router(achievements.public)
    app.include_router(status_lists.public)
    app.include_router(portfolios.router)
    app.include_router(verify.pages)
    app.include_router(apidocs.pages)
    # Before /static, which would otherwise take these paths too.
    app.mount(apidocs.VENDOR_PREFIX, apidocs.vendor_files(), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_openapi(app)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(
            STATIC_DIR / "favicon.ico",
            media_type="image/x-icon",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    readiness = ReadinessProbe(ctx)

    @app.get(
        "/health",
        tags=["public"],
        responses={
            503: {
                "description": "Not ready: a problem naming the parts that failed (`failed`)",
                "content": {"application/problem+json": {}},
            }
        },
    )
    async def health() -> Response:
        """Readiness: the database, the key store and disk; 503 naming the parts that failed."""
        result = await readiness.get()
        if result.ready:
            return JSONResponse({"status": "ok", **result.parts})
        failed = result.failed
        names = {"database": "the database", "keys": "the key store", "disk": "disk"}
        return problem(
            503,
            "Not ready: " + ", ".join(names[p] for p in failed) + " unavailable.",
            failed=failed,
            database=result.parts["database"],
            keys=result.parts["keys"],
            disk=result.parts["disk"],
        )

    @app.get("/health/live", tags=["public"])
    async def liveness() -> Response:
        """Liveness: the process answers (no database, key store or disk work)."""
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (see app/core/metrics.py for who may read them)."""
        refused = scrape_refusal(
            settings,
            request.headers.get("authorization"),
            request.client.host if request.client else None,
        )
        if refused == 401:
            return problem(
                401,
                "The metrics token is missing or wrong.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if refused == 403:
            return problem(
                403,
                "Metrics are served to loopback clients only; set MICROCRED_METRICS_TOKEN to scrape from elsewhere.",
            )
        if refused is not None:
            return problem(404, "No such resource.")
        async with ctx.db_slots():
            body, content_type = await run_in_threadpool(
                exposition, [lambda: _database_metrics(ctx)]
            )
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        return render(request, "home.html", {"settings": settings})

    return app


def _database_metrics(ctx: AppContext) -> Iterable[Metric]:
    """What is state, not an event, read from the database when scraped (right across workers
    and replicas): jobs waiting and their pending rows, webhook deliveries by state."""
    up = GaugeMetricFamily(
        "microcred_metrics_database_up", "Whether the scrape could read the database (1) or not."
    )
    try:
        with ctx.sessions() as session:
            jobs_waiting, rows_pending = jobs_repository.queue_depth(session)
            deliveries = webhooks_repository.deliveries_by_state(session)
    except SQLAlchemyError as exc:
        log.warning("metrics: database unreadable: %s", type(exc).__name__)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    jobs_family = GaugeMetricFamily(
        "microcred_jobs", "Bulk jobs not yet completed, by state.", labels=["state"]
    )
    for state, count in jobs_waiting.items():
        jobs_family.add_metric([state], count)
    rows_family = GaugeMetricFamily(
        "microcred_job_rows_pending", "Rows of queued and running bulk jobs not yet settled."
    )
    rows_family.add_metric([], rows_pending)
    deliveries_family = GaugeMetricFamily(
        "microcred_webhook_deliveries", "Webhook deliveries by state.", labels=["state"]
    )
    for state, count in deliveries.items():
        deliveries_family.add_metric([state], count)
    return [up, jobs_family, rows_family, deliveries_family]

"""Running the service: the schema, the server, the background worker, the demo data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    cli,
    context,
    group,
    load_settings,
    require_database,
    shown_url,
    unit_of_work,
    warn,
)
from app.core.config import Settings
from app.core.migrate import upgrade

WORKER_HEALTHCHECK_SECONDS = 60

db_cli = group("db", "Database schema.")


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to the newest schema (creating a SQLite file if there is none)."""
    settings = load_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {shown_url(settings.database_url)}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, envvar="MICROCRED_WORKERS", help="Worker processes.")
    ] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            envvar="MICROCRED_FORWARDED_ALLOW_IPS",
            help="Peers whose X-Forwarded-For/-Proto are believed: comma-separated addresses or "
            "networks, '*' for any (only when nothing but the proxy can reach the server). "
            "Default 127.0.0.1,::1.",
        ),
    ] = None,
) -> None:
    """Run the service with uvicorn."""
    import shutil

    import uvicorn

    from app.core.logs import configure_logging

    settings = load_settings()  # fail fast on bad settings, before forking workers
    require_database(settings)
    configure_logging(settings)
    metrics_dir = _metrics_dir(workers)
    if workers > 1 and "MICROCRED_JOB_THREADS" not in os.environ:
        # Processes already overlap each other's database waits; a second job thread per
        # process then only contends for the GIL (bench.bulk: 48 % of the ceiling with one,
        # 43 % with two, on 2 cores). The worker processes inherit the environment.
        os.environ["MICROCRED_JOB_THREADS"] = "1"
    _report_connection_budget(settings, workers)
    if workers > 1 and settings.rate_limits_enabled and settings.rate_limit_storage == "memory://":
        warn(
            [
                f"rate limits are counted per process: {workers} workers allow up to {workers}x "
                "each limit (set MICROCRED_RATE_LIMIT_STORAGE=redis://… to share the counters)"
            ]
        )
    try:
        uvicorn.run(
            "app.main:serving_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            # The app logs one structured, redacted line per request (MICROCRED_ACCESS_LOG)
            # instead, and the process's logging is configured by app.core.logs, not by uvicorn.
            access_log=False,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1,::1",
            # uvicorn's supervisor pings every worker and kills one that does not answer within
            # this many seconds, counting from its spawn. Its default (5 s) is shorter than a
            # worker takes to start when several start at once on a small machine (4 workers on
            # 2 cores: killed and respawned in a loop, never serving).
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            log_level=settings.log_level.lower(),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir(workers: int) -> str | None:
    """Multi-process metrics for `--workers N`: every worker writes its values to files in
    PROMETHEUS_MULTIPROC_DIR, which must be empty when the server starts (values of an earlier
    run would be added in). A directory the operator names is emptied of those files; otherwise a
    fresh temporary one is made, and returned so that it is removed when the server stops."""
    import tempfile

    from app.core.metrics import MULTIPROC_ENV

    if workers == 1:
        return None
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="microcred-metrics-")
    os.environ[MULTIPROC_ENV] = made  # inherited by the worker processes uvicorn spawns
    return made


def _report_connection_budget(settings: Settings, workers: int) -> None:
    """On PostgreSQL, say how many connections this server may open, and warn when that alone
    exceeds what the server accepts (requests would then fail with "too many clients").

    Every worker process has its own pool (MICROCRED_DB_POOL_SIZE, plus twice as many overflow
    connections), so the sum over workers and replicas must stay below max_connections.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from app.core.db import SIDE_POOL_CAPACITY, pool_capacity

    if make_url(settings.database_url).get_backend_name() != "postgresql":
        return
    # The pool, the side pool of short claims, and the job runner's LISTEN connection.
    per_process = pool_capacity(settings.db_pool_size) + SIDE_POOL_CAPACITY + 1
    ours = per_process * workers
    engine = create_engine(settings.database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execute(
                text(
                    "SELECT name, setting::int FROM pg_settings WHERE name IN "
                    "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
                )
            )
            rows: dict[str, int] = {str(name): int(value) for name, value in result}
    except SQLAlchemyError as exc:  # the database may come up later: the server retries anyway
        typer.secho(f"could not read PostgreSQL's max_connections ({type(exc).__name__})", err=True)
        return
    finally:
        engine.dispose()
    usable = rows.get("max_connections", 100) - sum(
        v for k, v in rows.items() if k != "max_connections"
    )
    message = (
        f"PostgreSQL connections: up to {ours} from this server ({workers} worker(s) x "
        f"{per_process}: MICROCRED_DB_POOL_SIZE={settings.db_pool_size} plus overflow) of "
        f"{usable} the database accepts; every replica adds as many."
    )
    if ours > usable:
        typer.secho(
            message + " Lower MICROCRED_DB_POOL_SIZE or --workers, or raise max_connections.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    else:
        typer.echo(message, err=True)


@cli.command()
def demo() -> None:
    """Create the demo issuer, achievements and a credential (idempotent); print the credential URL."""
    from app.demo.service import seed

    ctx = context()
    with unit_of_work(ctx) as session:
        result = seed(session, ctx)
    if result.created:
        typer.echo(
            f"demo issuer '{result.issuer_slug}' created; its API key (shown once): {result.api_key}"
        )
    typer.echo(f"demo credential: {result.credential_url}")


@cli.command()
def worker(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit once no job has work left.")
    ] = False,
) -> None:
    """Work queued bulk jobs (and deliver webhooks) without serving HTTP."""
    import signal
    import threading

    from app.core.logs import configure_logging
    from app.jobs.runner import JobRunner
    from app.main import freeze_heap
    from app.webhooks.dispatcher import Dispatcher

    ctx = context()
    configure_logging(ctx.settings)
    runner = JobRunner(ctx)
    dispatcher = Dispatcher.from_context(ctx)
    freeze_heap()
    try:
        if until_idle:
            runner.run_until_idle()
            dispatcher.run_once()
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        runner.start()
        dispatcher.start()
        typer.echo("worker: working jobs and webhooks; Ctrl-C stops", err=True)
        stop.wait()
        runner.stop()
        dispatcher.stop()
    finally:
        ctx.close()

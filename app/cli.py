"""`microcred` command line: database, server, issuers, issuance and verification."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.context import AppContext
from app.core.db import session_scope
from app.core.keys import SigningAlgorithm
from app.core.migrate import upgrade

cli = typer.Typer(help="Issue and verify Open Badges 3.0 micro-credentials.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
issuer_cli = typer.Typer(help="Issuers (course providers).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
keys_cli = typer.Typer(help="Signing keys: rotation and compromise.", no_args_is_help=True)
audit_cli = typer.Typer(help="The audit trail.", no_args_is_help=True)
cli.add_typer(issuer_cli, name="issuer")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(audit_cli, name="audit")
jobs_cli = typer.Typer(help="Bulk issuance jobs.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")
trust_cli = typer.Typer(
    help="The operator's trust list: issuers verification calls `listed`.", no_args_is_help=True
)
cli.add_typer(trust_cli, name="trust")

MAX_FETCH_BYTES = 1024 * 1024
MAX_REGISTRY_BYTES = 16 * 1024 * 1024  # `trust import`: a registry file is far smaller
WORKER_HEALTHCHECK_SECONDS = 60


def _context() -> AppContext:
    from app.models import load_all_models

    load_all_models()
    return AppContext.build(Settings())


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _warn(messages: list[str]) -> None:
    """Warnings on stderr (yellow), so that stdout stays the JSON a script reads."""
    for message in messages:
        typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def _unit_of_work(ctx: AppContext) -> Any:
    """One transaction for a CLI command: the same commit point as a request."""
    from contextlib import contextmanager

    @contextmanager
    def scope() -> Any:
        try:
            yield from session_scope(ctx.sessions)
        finally:
            # A command is one unit of work: close its connections (the engine could reconnect).
            ctx.close()

    return scope()


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to the newest schema."""
    settings = Settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


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

    settings = Settings()  # fail fast on bad settings, before forking workers
    configure_logging(settings)
    metrics_dir = _metrics_dir(workers)
    if workers > 1 and "MICROCRED_JOB_THREADS" not in os.environ:
        # Processes already overlap each other's database waits; a second job thread per
        # process then only contends for the GIL (bench.bulk: 48 % of the ceiling with one,
        # 43 % with two, on 2 cores). The worker processes inherit the environment.
        os.environ["MICROCRED_JOB_THREADS"] = "1"
    _report_connection_budget(settings, workers)
    try:
        uvicorn.run(
            "app.main:serving_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            # The app logs one structured, redacted line per request (MICROCRED_ACCESS_LOG) instead,
            # and the process's logging is configured by app.core.logs, not by uvicorn.
            access_log=False,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1,::1",
            # uvicorn's supervisor pings every worker and kills one that does not answer within this
            # many seconds, counting from its spawn. Its default (5 s) is shorter than a worker takes
            # to start when several start at once on a small machine (4 workers on 2 cores: killed
            # and respawned in a loop, never serving).
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


@issuer_cli.command("create")
def issuer_create(
    name: Annotated[str, typer.Option(help="Display name of the provider.")],
    url: Annotated[str, typer.Option(help="The provider's website.")],
    slug: Annotated[
        str | None, typer.Option(help="URL name; derived from the name when absent.")
    ] = None,
    algorithm: Annotated[
        SigningAlgorithm, typer.Option(help="Signing algorithm.")
    ] = SigningAlgorithm.ES256,
    email: Annotated[
        str | None, typer.Option(help="Contact email, published in the profile.")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    suspension: Annotated[bool, typer.Option(help="Offer suspension besides revocation.")] = False,
    linkedin_org: Annotated[
        str | None,
        typer.Option(
            "--linkedin-org", help="LinkedIn organization id (digits) for add-to-profile links."
        ),
    ] = None,
) -> None:
    """Create an issuer; prints it and its first API key (shown once)."""
    from pydantic import ValidationError

    from app.issuers import service
    from app.issuers.router import issuer_read
    from app.issuers.schemas import IssuerCreate

    try:
        data = IssuerCreate.model_validate(
            {
                "name": name,
                "url": url,
                "slug": slug,
                "algorithm": algorithm,
                "email": email,
                "description": description,
                "suspension": suspension,
                "linkedin_organization_id": linkedin_org,
            }
        )
    except ValidationError as exc:
        raise _fail(
            f"invalid issuer: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from exc
    ctx = _context()
    from app.core.errors import AppError

    try:
        with _unit_of_work(ctx) as session:
            issuer, key, _api, secret = service.create_issuer(
                session, keystore=ctx.keystore, data=data
            )
            read = issuer_read(ctx.settings, issuer, [key])
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps({"issuer": read.model_dump(mode="json"), "api_key": secret}, indent=2))
    _warn(service.algorithm_warnings(key.algorithm))


@cli.command()
def issue(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    achievement: Annotated[str, typer.Option(help="Achievement id (UUID).")],
    email: Annotated[
        str | None, typer.Option(help="Recipient email (published only salted and hashed).")
    ] = None,
    did: Annotated[str | None, typer.Option(help="Recipient DID.")] = None,
    recipient_url: Annotated[
        str | None, typer.Option("--recipient-url", help="Recipient URL.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Recipient display name.")] = None,
    valid_until: Annotated[
        str | None, typer.Option(help="ISO 8601 expiry, e.g. 2027-12-31T00:00:00Z.")
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            exists=True,
            dir_okay=False,
            help="Issue every row of a CSV file as a bulk job (columns: external_id, email, did, "
            "url, name, valid_from, valid_until, achievement_id, evidence_url, evidence_name, "
            "evidence_narrative).",
        ),
    ] = None,
) -> None:
    """Issue one credential (prints its id, URL and JWT), or a whole CSV file with --csv."""
    if csv_file is not None:
        if email or did or recipient_url or name or valid_until:
            raise _fail("--csv takes the recipients from the file: drop the recipient options.")
        _issue_csv(issuer, achievement, csv_file)
        return
    from pydantic import ValidationError

    from app.core.errors import AppError
    from app.credentials import service as credentials
    from app.credentials.schemas import CredentialCreate
    from app.issuers import service as issuers

    recipient = {
        k: v
        for k, v in {"email": email, "did": did, "url": recipient_url, "name": name}.items()
        if v
    }
    try:
        data = CredentialCreate.model_validate(
            {"achievement_id": achievement, "recipient": recipient, "valid_until": valid_until}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(
            f"invalid credential: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from exc
    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            owner = issuers.get_issuer(session, slug=issuer)
            issued = credentials.issue_credential(
                session, settings=ctx.settings, keystore=ctx.keystore, issuer=owner, data=data
            )
            record = issued.record
            url = credentials.credential_url(ctx.settings, record.id)
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps({"id": str(record.id), "url": url, "jwt": record.jwt}, indent=2))


def _issue_csv(issuer: str, achievement: str, path: Path) -> None:
    """Queue the file as a job, work it in this process with a progress bar, print a summary.

    Other workers (server processes, `microcred worker`) may take chunks of the same job.
    """
    import time
    import uuid

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.core.errors import AppError
    from app.issuers import service as issuers
    from app.jobs import service as jobs
    from app.jobs.runner import JobRunner

    try:
        achievement_id = uuid.UUID(achievement)
    except ValueError:
        raise _fail(
            f"--achievement must be an achievement id (UUID), not {achievement!r}."
        ) from None
    ctx = _context()
    try:
        try:
            with ctx.sessions.begin() as session:
                owner = issuers.get_issuer(session, slug=issuer)
                job = jobs.submit(
                    session,
                    settings=ctx.settings,
                    issuer=owner,
                    batch=jobs.rows_from_csv(path.read_bytes()),
                    achievement_id=achievement_id,
                )
                job_id, total, refused = job.id, job.total, job.failed
        except AppError as exc:
            raise _fail(exc.message) from exc
        typer.echo(f"job {job_id}: {total} rows, {refused} refused up front", err=True)
        runner = JobRunner(ctx)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        ) as progress:
            task = progress.add_task("issuing", total=total, completed=refused)
            while True:
                runner.work_job(job_id, progress=lambda n: progress.advance(task, n))
                # What is left is held by other workers (or nothing is): look, then wait.
                with ctx.read_sessions() as session:
                    current = jobs.get_job(session, job_id=job_id)
                    progress.update(task, completed=total - jobs.pending(current))
                    if current.state == "completed":
                        break
                time.sleep(0.5)
        _print_job(ctx, job_id)
        with ctx.read_sessions() as session:
            final = jobs.get_job(session, job_id=job_id)
        if final.failed:
            raise typer.Exit(1)
    finally:
        ctx.close()


def _print_job(ctx: AppContext, job_id: Any, *, all_rows: bool = False) -> None:
    from app.jobs import service as jobs
    from app.jobs.models import RowState
    from app.jobs.router import job_read

    with ctx.read_sessions() as session:
        job = jobs.get_job(session, job_id=job_id)
        rows, _ = jobs.job_rows(
            session,
            job=job,
            states=[] if all_rows else [RowState.failed],
            after=None,
            limit=job.total or 1,
        )
        read = job_read(ctx.settings, job, list(rows))
    summary = (
        f"{read.state}: {read.issued} issued, {read.existing} already issued (external_id), "
        f"{read.failed} failed, {read.pending} pending, of {read.total}"
    )
    typer.echo(json.dumps(read.model_dump(mode="json"), indent=2))
    typer.secho(summary, err=True, fg=typer.colors.RED if read.failed else typer.colors.GREEN)


def _load_credential(ctx: AppContext, session: Session, source: str) -> str | dict[str, Any]:
    from app.credentials import repository as credentials_repository
    from app.verify.service import credential_uuid_from_url

    text = source.strip()
    if text.startswith(("http://", "https://")):
        record_id = credential_uuid_from_url(ctx.settings, text)
        if record_id is not None:
            record = credentials_repository.get(session, record_id)
            if record is not None:
                return record.jwt
        return _fetch(text)
    if not text.startswith(("eyJ", "{")):
        try:
            text = Path(text).read_text("utf-8").strip()
        except OSError as exc:
            raise _fail(f"{text[:80]} is neither a JWT, JSON, a link nor a readable file") from exc
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _fail("the JSON could not be read") from exc
        if not isinstance(data, dict):
            raise _fail("expected a credential object")
        return data
    return text


def _fetch(url: str) -> str | dict[str, Any]:
    """Fetch a credential from its link, asking for the signed JWT first."""
    headers = {"Accept": "application/vc+jwt, application/jwt;q=0.9, application/ld+json;q=0.5"}
    try:
        with (
            httpx.Client(timeout=10.0, follow_redirects=False) as client,
            client.stream("GET", url, headers=headers) as r,
        ):
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_FETCH_BYTES:
                    raise _fail("the credential link answered with more than 1 MiB")
            if r.status_code != 200:
                raise _fail(f"the credential link answered HTTP {r.status_code}")
            media = r.headers.get("content-type", "").split(";")[0]
    except httpx.HTTPError as exc:
        raise _fail(f"could not fetch {url}: {type(exc).__name__}") from exc
    text = body.decode("utf-8", "replace").strip()
    if "json" in media:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    return text


@cli.command()
def verify(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH_OR_JWT_OR_URL",
            help="A JWT, a file holding one (or JSON), or a credential link; '-' reads stdin.",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the verification result as JSON.")
    ] = False,
    jwks: Annotated[
        Path | None,
        typer.Option(
            help="A JWKS file of keys you trust (offline verification of foreign credentials)."
        ),
    ] = None,
) -> None:
    """Verify a credential and print the checks; exits 0 only if it is verified."""
    from app.verify.keys import TrustedKey
    from app.verify.service import Verifier

    if source == "-":
        source = sys.stdin.read()
    trusted: dict[str, TrustedKey] = {}
    if jwks is not None:
        try:
            for jwk in json.loads(jwks.read_text("utf-8")).get("keys", []):
                if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                    trusted[jwk["kid"]] = TrustedKey(jwk=jwk)
        except (OSError, ValueError, AttributeError) as exc:
            raise _fail(f"cannot read the JWKS file: {exc}") from exc
    ctx = _context()
    with _unit_of_work(ctx) as session:
        credential = _load_credential(ctx, session, source)
        result = (
            Verifier.from_context(ctx, session, trusted_keys=trusted).verify(credential).result()
        )
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        colour = typer.colors.GREEN if result.verified else typer.colors.RED
        typer.secho(
            f"{result.status.value.upper()}  verified={str(result.verified).lower()}",
            fg=colour,
            bold=True,
        )
        if result.credential:
            c = result.credential
            typer.echo(
                f"  {c.achievement.name or '(unnamed)'} — issued by {c.issuer.name or c.issuer.id}"
            )
            if c.issuer.trust is not None:
                typer.echo(f"  issuer trust: {c.issuer.trust.level.value}: {c.issuer.trust.detail}")
        for check in result.checks:
            typer.echo(f"  [{check.result.value:7}] {check.check.value}: {check.detail}")
    raise typer.Exit(0 if result.verified else 1)


@cli.command()
def demo() -> None:
    """Create the demo issuer, achievements and a credential (idempotent); print the credential URL."""
    from app.demo.service import seed

    ctx = _context()
    with _unit_of_work(ctx) as session:
        result = seed(session, ctx)
    if result.created:
        typer.echo(
            f"demo issuer '{result.issuer_slug}' created; its API key (shown once): {result.api_key}"
        )
    typer.echo(f"demo credential: {result.credential_url}")


def _key_json(ctx: AppContext, slug: str, key: Any) -> dict[str, Any]:
    from app.issuers.router import signing_key_read

    return signing_key_read(ctx.settings.issuer_did(slug), key).model_dump(mode="json")


@keys_cli.command("list")
def keys_list(issuer: Annotated[str, typer.Option(help="Issuer slug.")]) -> None:
    """List an issuer's signing keys with their status."""
    from app.core.errors import AppError
    from app.issuers import service

    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            keys = [
                _key_json(ctx, owner.slug, k)
                for k in service.list_signing_keys(session, issuer=owner)
            ]
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps(keys, indent=2))


@keys_cli.command("rotate")
def keys_rotate(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    algorithm: Annotated[
        SigningAlgorithm | None,
        typer.Option(help="The new key's algorithm; the issuer's current one by default."),
    ] = None,
) -> None:
    """A new key signs from now on; the previous one is retired and keeps verifying."""
    from app.core.errors import AppError
    from app.issuers import service

    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            key = service.rotate_key(
                session, keystore=ctx.keystore, issuer=owner, algorithm=algorithm
            )
            out = _key_json(ctx, owner.slug, key)
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps(out, indent=2))
    _warn(service.algorithm_warnings(out["algorithm"]))


@keys_cli.command("retire")
def keys_retire(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    key: Annotated[str, typer.Option(help="Key id (the kid's #fragment).")],
) -> None:
    """Stop signing with a key (refused for the only active key: rotate first)."""
    from app.core.errors import AppError
    from app.issuers import service

    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            out = _key_json(ctx, owner.slug, service.retire_key(session, issuer=owner, key_id=key))
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps(out, indent=2))


@keys_cli.command("compromise")
def keys_compromise(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    key: Annotated[str, typer.Option(help="Key id (the kid's #fragment).")],
    since: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 moment of compromise with offset, e.g. 2026-11-28T09:00:00Z; now by default."
        ),
    ] = None,
) -> None:
    """Mark a key compromised: every credential it signed stops verifying, naming the key."""
    from datetime import datetime

    from app.core.errors import AppError
    from app.issuers import service

    moment: datetime | None = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _fail(f"--since is not an ISO 8601 date-time: {since}") from exc
    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            out = _key_json(
                ctx,
                owner.slug,
                service.compromise_key(session, issuer=owner, key_id=key, since=moment),
            )
    except AppError as exc:
        raise _fail(exc.message) from exc
    typer.echo(json.dumps(out, indent=2))


@audit_cli.command("verify")
def audit_verify(
    issuer: Annotated[
        str | None, typer.Option(help="Only this issuer's chain (slug); every chain by default.")
    ] = None,
) -> None:
    """Recompute the audit hash chains; exit 1 naming the first broken link of each broken chain."""
    from app.audit import service as audit
    from app.core.errors import AppError
    from app.issuers import repository as issuers_repository
    from app.issuers import service as issuers

    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            issuer_id = issuers.get_issuer(session, slug=issuer).id if issuer else None
            report = audit.verify_chain(
                session, issuer_id=issuer_id, names=issuers_repository.slugs(session)
            )
    except AppError as exc:
        raise _fail(exc.message) from exc
    if report.intact:
        typer.secho(
            f"audit trail intact: {report.events} events in {report.chains} chains",
            fg=typer.colors.GREEN,
        )
        raise typer.Exit(0)
    for broken in report.breaks:
        typer.secho(f"audit trail BROKEN: {broken.describe()}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@jobs_cli.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job id (UUID).")],
    all_rows: Annotated[
        bool, typer.Option("--all-rows", help="List every row, not only the failed ones.")
    ] = False,
) -> None:
    """Print a job: state, counts and its failed rows (or every row)."""
    import uuid

    from app.core.errors import AppError

    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        raise _fail(f"{job_id!r} is not a job id (UUID).") from None
    ctx = _context()
    try:
        _print_job(ctx, parsed, all_rows=all_rows)
    except AppError as exc:
        raise _fail(exc.message) from exc
    finally:
        ctx.close()


@trust_cli.command("add")
def trust_add(
    identifier: Annotated[
        str, typer.Argument(help="The issuer's DID, or an https URL (listed as its origin).")
    ],
    name: Annotated[str, typer.Option(help="The name verification shows.")],
    url: Annotated[str | None, typer.Option(help="The issuer's website (https).")] = None,
    note: Annotated[str | None, typer.Option(help="A note for operators.")] = None,
) -> None:
    """Add an issuer to the trust list; prints the entry."""
    from pydantic import ValidationError

    from app.core.errors import AppError
    from app.trust import service
    from app.trust.schemas import TrustEntryCreate, TrustEntryRead, first_error

    try:
        data = TrustEntryCreate.model_validate(
            {"identifier": identifier, "name": name, "url": url, "note": note}
        )
    except ValidationError as exc:
        raise _fail(f"invalid entry: {first_error(exc)}") from None
    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            read = TrustEntryRead.from_record(service.add_entry(session, data=data))
    except AppError as exc:
        raise _fail(exc.message) from None
    typer.echo(json.dumps(read.model_dump(mode="json"), indent=2))


@trust_cli.command("list")
def trust_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the trust list: identifier, name, source and id of each entry."""
    from app.trust import service
    from app.trust.schemas import TrustEntryRead

    ctx = _context()
    with _unit_of_work(ctx) as session:
        entries = [TrustEntryRead.from_record(e) for e in service.list_entries(session)]
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    rows = [("IDENTIFIER", "NAME", "SOURCE", "ID")]
    rows += [(e.identifier, e.name, e.source, str(e.id)) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[3]]))


@trust_cli.command("remove")
def trust_remove(
    ref: Annotated[
        str, typer.Argument(metavar="IDENTIFIER_OR_ID", help="The entry's identifier or id.")
    ],
) -> None:
    """Take an entry off the trust list; prints what was removed."""
    from app.core.errors import AppError
    from app.trust import service
    from app.trust.schemas import TrustEntryRead

    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            read = TrustEntryRead.from_record(service.remove_entry(session, ref=ref))
    except AppError as exc:
        raise _fail(exc.message) from None
    typer.echo(json.dumps(read.model_dump(mode="json"), indent=2))


@trust_cli.command("import")
def trust_import(
    file: Annotated[Path, typer.Argument(help="A DCC issuer registry file (registry.json).")],
    registry: Annotated[
        str, typer.Option(help='The registry\'s name: its entries get "dcc-registry:<name>".')
    ] = "dcc",
    replace: Annotated[
        bool, typer.Option(help="Also remove this registry's entries the file no longer has.")
    ] = False,
) -> None:
    """Import a Digital Credentials Consortium issuer registry: all of it or nothing."""
    from app.core.errors import AppError
    from app.trust import service

    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_REGISTRY_BYTES + 1)
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    if len(raw) > MAX_REGISTRY_BYTES:
        raise _fail(f"{file} is larger than {MAX_REGISTRY_BYTES // (1024 * 1024)} MiB")
    try:
        document = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise _fail(f"{file} is not JSON: {exc}") from None
    ctx = _context()
    try:
        with _unit_of_work(ctx) as session:
            result = service.import_dcc_registry(
                session, document, registry=registry, replace_source=replace
            )
    except AppError as exc:
        raise _fail(f"{file}: {exc.message} Nothing was imported.") from None
    typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))


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

    ctx = _context()
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


def main() -> None:
    cli()

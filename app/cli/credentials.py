"""Issuing credentials (one, or a CSV file as a bulk job) and managing them afterwards:
list, show, revoke, suspend, unsuspend, as the issuer API does."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import cli, context, described, echo_json, fail, group, table, unit_of_work
from app.cli.issuers import IssuerSlug
from app.core.context import AppContext

credential_cli = group("credential", "Issued credentials: list, show, revoke, suspend.")
jobs_cli = group("jobs", "Bulk issuance jobs.")

PAGE = 200


@cli.command()
def issue(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    achievement: Annotated[
        str, typer.Option(metavar="UUID_OR_URL", help="The achievement: its uuid or its URL.")
    ],
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
            raise fail("--csv takes the recipients from the file: drop the recipient options.")
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
        raise fail(
            f"invalid credential: {'.'.join(map(str, first['loc']))}: "
            + first["msg"].removeprefix("Value error, ")
        ) from exc
    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            owner = issuers.get_issuer(session, slug=issuer)
            issued = credentials.issue_credential(
                session, settings=ctx.settings, keystore=ctx.keystore, issuer=owner, data=data
            )
            record = issued.record
            url = credentials.credential_url(ctx.settings, record.id)
    except AppError as exc:
        raise fail(described(exc)) from exc
    out = {"id": str(record.id), "url": url, "jwt": record.jwt}
    if issued.manage_token is not None:
        # The recipient's private link (portfolio, sharing): shown once, as the API's 201 does.
        out["manage_url"] = credentials.manage_url(ctx.settings, issued.manage_token)
    echo_json(out)


def _issue_csv(issuer: str, achievement: str, path: Path) -> None:
    """Queue the file as a job, work it in this process with a progress bar, print a summary.

    Other workers (server processes, `microcred worker`) may take chunks of the same job.
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.achievements import service as achievements
    from app.core.errors import AppError
    from app.issuers import service as issuers
    from app.jobs import service as jobs
    from app.jobs.runner import JobRunner

    ctx = context()
    try:
        try:
            achievement_id = achievements.achievement_ref(
                ctx.settings, achievement, field="--achievement"
            )
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
            raise fail(described(exc)) from exc
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
    from app.jobs.schemas import JobRead

    with ctx.read_sessions() as session:
        job = jobs.get_job(session, job_id=job_id)
        rows, _ = jobs.job_rows(
            session,
            job=job,
            states=[] if all_rows else [RowState.failed],
            after=None,
            limit=job.total or 1,
        )
        read = JobRead.from_record(ctx.settings, job, list(rows))
    summary = (
        f"{read.state}: {read.issued} issued, {read.existing} already issued (external_id), "
        f"{read.failed} failed, {read.pending} pending, of {read.total}"
    )
    typer.echo(json.dumps(read.model_dump(mode="json"), indent=2))
    typer.secho(summary, err=True, fg=typer.colors.RED if read.failed else typer.colors.GREEN)


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
        raise fail(f"{job_id!r} is not a job id (UUID).") from None
    ctx = context()
    try:
        _print_job(ctx, parsed, all_rows=all_rows)
    except AppError as exc:
        raise fail(described(exc)) from exc
    finally:
        ctx.close()


CredentialRef = Annotated[
    str,
    typer.Argument(metavar="ID_OR_URL", help="The credential's id (UUID) or its URL."),
]
Reason = Annotated[
    str,
    typer.Option(help="Why: kept in the record and the audit trail (not published)."),
]


def _credential_id(ctx: AppContext, ref: str) -> uuid.UUID:
    """A credential named by its uuid or by its URL (the QR code's content)."""
    from app.verify.service import credential_uuid_from_url

    text = ref.strip()
    if text.startswith(("http://", "https://")):
        found = credential_uuid_from_url(ctx.settings, text)
        if found is None:
            raise fail(
                f"{text[:200]} is not a credential URL of this service ({ctx.settings.url('/credentials/')}<id>)."
            )
        return found
    try:
        return uuid.UUID(text)
    except ValueError:
        raise fail(
            f"{text[:80]!r} is neither a credential id (UUID) nor a credential URL."
        ) from None


@credential_cli.command("list")
def credential_list(
    issuer: IssuerSlug,
    achievement: Annotated[
        str | None,
        typer.Option(metavar="UUID_OR_URL", help="Only this achievement's credentials."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (oldest first).")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List an issuer's credentials, oldest first: id, status, recipient, achievement."""
    from app.achievements import service as achievements
    from app.credentials import service
    from app.credentials.schemas import CredentialRead
    from app.issuers import service as issuers

    ctx = context()
    achievement_id = (
        achievements.achievement_ref(ctx.settings, achievement, field="--achievement")
        if achievement is not None
        else None
    )
    reads: list[CredentialRead] = []
    with unit_of_work(ctx) as session:
        owner = issuers.get_issuer(session, slug=issuer)
        after = None
        while len(reads) < limit:
            page = service.list_credentials(
                session,
                issuer=owner,
                limit=min(PAGE, limit - len(reads)),
                after=after,
                achievement_id=achievement_id,
            )
            reads += [
                CredentialRead.from_record(
                    ctx.settings, r, linkedin_organization_id=owner.linkedin_organization_id
                )
                for r in page
            ]
            if not page or len(page) < PAGE:
                break
            after = (page[-1].issued_at, page[-1].id)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in reads])
        return
    rows = [("ID", "STATUS", "ISSUED", "RECIPIENT", "ACHIEVEMENT")]
    rows += [
        (
            str(r.id),
            r.status,
            r.issued_at.strftime("%Y-%m-%d %H:%M"),
            r.recipient_name or r.subject_id,
            str(r.credential.get("name") or r.achievement_id),
        )
        for r in reads
    ]
    table(rows)


@credential_cli.command("show")
def credential_show(credential: CredentialRef, issuer: IssuerSlug) -> None:
    """Print one credential: status (with reason and date), dates, recipient, JWT."""
    from app.credentials import service
    from app.credentials.schemas import CredentialRead
    from app.issuers import service as issuers

    ctx = context()
    credential_id = _credential_id(ctx, credential)
    with unit_of_work(ctx) as session:
        owner = issuers.get_issuer(session, slug=issuer)
        record = service.get_credential(session, credential_id=credential_id, issuer=owner)
        read = CredentialRead.from_record(
            ctx.settings, record, linkedin_organization_id=owner.linkedin_organization_id
        )
    echo_json(read.model_dump(mode="json"))


def _change_status(action: str, credential: str, issuer: str, reason: str) -> None:
    """revoke / suspend / unsuspend through the credential service, as the API's routes do."""
    from pydantic import ValidationError

    from app.cli.common import first_error
    from app.credentials import service
    from app.credentials.schemas import CredentialRead, StatusChange
    from app.issuers import service as issuers

    try:
        data = StatusChange.model_validate({"reason": reason})
    except ValidationError as exc:
        raise fail(f"invalid --reason: {first_error(exc).removeprefix('reason: ')}") from None
    change = {"revoke": service.revoke, "suspend": service.suspend, "unsuspend": service.unsuspend}
    ctx = context()
    credential_id = _credential_id(ctx, credential)
    with unit_of_work(ctx) as session:
        owner = issuers.get_issuer(session, slug=issuer)
        record = change[action](
            session, issuer=owner, credential_id=credential_id, reason=data.reason
        )
        read = CredentialRead.from_record(
            ctx.settings, record, linkedin_organization_id=owner.linkedin_organization_id
        )
    echo_json(
        {
            "id": str(read.id),
            "url": read.url,
            "status": read.status,
            "status_reason": read.status_reason,
            "status_changed_at": read.model_dump(mode="json")["status_changed_at"],
        }
    )


@credential_cli.command("revoke")
def credential_revoke(credential: CredentialRef, issuer: IssuerSlug, reason: Reason) -> None:
    """Revoke for good: the credential never verifies again."""
    _change_status("revoke", credential, issuer, reason)


@credential_cli.command("suspend")
def credential_suspend(credential: CredentialRef, issuer: IssuerSlug, reason: Reason) -> None:
    """Suspend for now (issuers that offer suspension); `unsuspend` lifts it."""
    _change_status("suspend", credential, issuer, reason)


@credential_cli.command("unsuspend")
def credential_unsuspend(credential: CredentialRef, issuer: IssuerSlug, reason: Reason) -> None:
    """Lift a suspension: the credential verifies again."""
    _change_status("unsuspend", credential, issuer, reason)

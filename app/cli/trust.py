"""The operator's trust list and the audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import context, described, fail, group, unit_of_work
from app.core import text as client_text

MAX_REGISTRY_BYTES = 16 * 1024 * 1024  # `trust import`: a registry file is far smaller

audit_cli = group("audit", "The audit trail.")
trust_cli = group("trust", "The operator's trust list: issuers verification calls `listed`.")


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

    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            issuer_id = issuers.get_issuer(session, slug=issuer).id if issuer else None
            report = audit.verify_chain(
                session, issuer_id=issuer_id, names=issuers_repository.slugs(session)
            )
    except AppError as exc:
        raise fail(described(exc)) from exc
    if report.intact:
        typer.secho(
            f"audit trail intact: {report.events} events in {report.chains} chains",
            fg=typer.colors.GREEN,
        )
        raise typer.Exit(0)
    for broken in report.breaks:
        typer.secho(f"audit trail BROKEN: {broken.describe()}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


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
        raise fail(f"invalid entry: {first_error(exc)}") from None
    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            read = TrustEntryRead.from_record(service.add_entry(session, data=data))
    except AppError as exc:
        raise fail(described(exc)) from None
    typer.echo(json.dumps(read.model_dump(mode="json"), indent=2))


@trust_cli.command("list")
def trust_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the trust list: identifier, name, source and id of each entry."""
    from app.trust import service
    from app.trust.schemas import TrustEntryRead

    ctx = context()
    with unit_of_work(ctx) as session:
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

    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            read = TrustEntryRead.from_record(service.remove_entry(session, ref=ref))
    except AppError as exc:
        raise fail(described(exc)) from None
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
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    if len(raw) > MAX_REGISTRY_BYTES:
        raise fail(f"{file} is larger than {MAX_REGISTRY_BYTES // (1024 * 1024)} MiB")
    try:
        document = client_text.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise fail(f"{file} is not JSON: {exc}") from None
    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            result = service.import_dcc_registry(
                session, document, registry=registry, replace_source=replace
            )
    except AppError as exc:
        raise fail(f"{file}: {exc.message} Nothing was imported.") from None
    typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))

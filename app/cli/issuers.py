"""Issuers, their API keys and their signing keys (what the admin API does, from a shell)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from app.cli.common import context, described, echo_json, fail, group, table, unit_of_work, warn
from app.core.context import AppContext
from app.core.keys import SigningAlgorithm

issuer_cli = group("issuer", "Issuers (course providers).")
api_key_cli = group("api-key", "An issuer's API keys (what its platform calls the API with).")
keys_cli = group("keys", "Signing keys: rotation and compromise.")

IssuerSlug = Annotated[str, typer.Option(metavar="SLUG", help="Issuer slug.")]


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
    data_integrity: Annotated[
        bool,
        typer.Option(
            "--data-integrity",
            help="Also add an embedded eddsa-rdfc-2022 Data Integrity proof (an Ed25519 key).",
        ),
    ] = False,
) -> None:
    """Create an issuer; prints it and its first API key (shown once)."""
    from pydantic import ValidationError

    from app.issuers import service
    from app.issuers.schemas import IssuerCreate, IssuerRead

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
                "data_integrity": data_integrity,
            }
        )
    except ValidationError as exc:
        raise fail(
            f"invalid issuer: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from exc
    ctx = context()
    from app.core.errors import AppError

    try:
        with unit_of_work(ctx) as session:
            issuer, key, _api, secret = service.create_issuer(
                session, keystore=ctx.keystore, data=data
            )
            read = IssuerRead.from_record(
                ctx.settings, issuer, list(service.list_signing_keys(session, issuer=issuer))
            )
    except AppError as exc:
        raise fail(described(exc)) from exc
    typer.echo(json.dumps({"issuer": read.model_dump(mode="json"), "api_key": secret}, indent=2))
    warn(service.algorithm_warnings(key.algorithm))


@issuer_cli.command("list")
def issuer_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every issuer: slug, name, algorithm and DID."""
    from app.issuers import service
    from app.issuers.schemas import IssuerRead

    ctx = context()
    with unit_of_work(ctx) as session:
        issuers = [
            IssuerRead.from_record(ctx.settings, issuer, keys)
            for issuer, keys in service.list_issuers(session)
        ]
    if as_json:
        echo_json([i.model_dump(mode="json") for i in issuers])
        return
    rows = [("SLUG", "NAME", "ALGORITHM", "DID")]
    rows += [(i.slug, i.name, i.algorithm, i.id) for i in issuers]
    table(rows)


@api_key_cli.command("create")
def api_key_create(
    issuer: IssuerSlug,
    name: Annotated[
        str | None, typer.Option(help="What the key is for (shown in listings).")
    ] = None,
) -> None:
    """Create another API key for an issuer; prints it (the key itself is shown once)."""
    from pydantic import ValidationError

    from app.cli.common import first_error
    from app.issuers import service
    from app.issuers.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

    try:
        data = ApiKeyCreate.model_validate({"name": name})
    except ValidationError as exc:
        raise fail(f"invalid API key: {first_error(exc)}") from None
    ctx = context()
    with unit_of_work(ctx) as session:
        owner = service.get_issuer(session, slug=issuer)
        record, secret = service.create_api_key(session, issuer=owner, data=data)
        created = ApiKeyCreated(**ApiKeyRead.model_validate(record).model_dump(), key=secret)
    echo_json(created.model_dump(mode="json"))


@api_key_cli.command("list")
def api_key_list(issuer: IssuerSlug) -> None:
    """List an issuer's API keys (never the secrets)."""
    from app.issuers import service
    from app.issuers.schemas import ApiKeyRead

    ctx = context()
    with unit_of_work(ctx) as session:
        owner = service.get_issuer(session, slug=issuer)
        keys = [ApiKeyRead.model_validate(k) for k in service.list_api_keys(session, issuer=owner)]
    echo_json([k.model_dump(mode="json") for k in keys])


@api_key_cli.command("revoke")
def api_key_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The API key's id (UUID).")],
    issuer: IssuerSlug,
) -> None:
    """Revoke an API key: it stops working at once."""
    from app.issuers import service
    from app.issuers.schemas import ApiKeyRead

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise fail(f"{key_id!r} is not an API key id (UUID).") from None
    ctx = context()
    with unit_of_work(ctx) as session:
        owner = service.get_issuer(session, slug=issuer)
        read = ApiKeyRead.model_validate(
            service.revoke_api_key(session, issuer=owner, key_id=parsed)
        )
    echo_json(read.model_dump(mode="json"))


def _key_json(ctx: AppContext, slug: str, key: Any) -> dict[str, Any]:
    from app.issuers.schemas import SigningKeyRead

    return SigningKeyRead.from_record(ctx.settings.issuer_did(slug), key).model_dump(mode="json")


@keys_cli.command("list")
def keys_list(issuer: IssuerSlug) -> None:
    """List an issuer's signing keys with their status."""
    from app.core.errors import AppError
    from app.issuers import service

    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            keys = [
                _key_json(ctx, owner.slug, k)
                for k in service.list_signing_keys(session, issuer=owner)
            ]
    except AppError as exc:
        raise fail(described(exc)) from exc
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

    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            key = service.rotate_key(
                session, keystore=ctx.keystore, issuer=owner, algorithm=algorithm
            )
            out = _key_json(ctx, owner.slug, key)
    except AppError as exc:
        raise fail(described(exc)) from exc
    typer.echo(json.dumps(out, indent=2))
    warn(service.algorithm_warnings(out["algorithm"]))


@keys_cli.command("retire")
def keys_retire(
    issuer: Annotated[str, typer.Option(help="Issuer slug.")],
    key: Annotated[str, typer.Option(help="Key id (the kid's #fragment).")],
) -> None:
    """Stop signing with a key (refused for the only active key: rotate first)."""
    from app.core.errors import AppError
    from app.issuers import service

    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            out = _key_json(ctx, owner.slug, service.retire_key(session, issuer=owner, key_id=key))
    except AppError as exc:
        raise fail(described(exc)) from exc
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
            raise fail(f"--since is not an ISO 8601 date-time: {since}") from exc
    ctx = context()
    try:
        with unit_of_work(ctx) as session:
            owner = service.get_issuer(session, slug=issuer)
            out = _key_json(
                ctx,
                owner.slug,
                service.compromise_key(session, issuer=owner, key_id=key, since=moment),
            )
    except AppError as exc:
        raise fail(described(exc)) from exc
    typer.echo(json.dumps(out, indent=2))

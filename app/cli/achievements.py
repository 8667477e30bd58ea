"""Achievements (badge templates): create and list them, as `POST/GET /api/v1/achievements` do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import context, echo_json, fail, first_error, group, table, unit_of_work
from app.cli.issuers import IssuerSlug
from app.core import text as client_text

achievement_cli = group("achievement", "Achievements (badge templates) of an issuer.")

PAGE = 200


@achievement_cli.command("create")
def achievement_create(
    issuer: IssuerSlug,
    name: Annotated[str | None, typer.Option(help="The badge's title.")] = None,
    description: Annotated[str | None, typer.Option(help="What the earner can do.")] = None,
    criteria: Annotated[
        str | None, typer.Option(help="How it is earned (criteria narrative).")
    ] = None,
    criteria_url: Annotated[
        str | None, typer.Option("--criteria-url", help="A page describing the criteria.")
    ] = None,
    achievement_type: Annotated[
        str | None,
        typer.Option("--type", help="OB 3.0 achievement type, e.g. MicroCredential, Certificate."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="A skill or keyword (repeat for several).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="The badge image's https URL.")] = None,
    from_json: Annotated[
        Path | None,
        typer.Option(
            "--from-json",
            dir_okay=False,
            help="A JSON file with the body of POST /api/v1/achievements (alignments and all); "
            "the options above override its fields.",
        ),
    ] = None,
) -> None:
    """Create an achievement for an issuer; prints it (its `id` URL and `uuid` name it later)."""
    from pydantic import ValidationError

    from app.achievements import service
    from app.achievements.schemas import AchievementCreate, AchievementRead
    from app.issuers import service as issuers

    body: dict[str, Any] = {}
    if from_json is not None:
        try:
            loaded = client_text.loads(from_json.read_bytes())
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise fail(f"{from_json} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise fail(f"{from_json} must hold a JSON object (an achievement)")
        body = loaded
    criteria_body = (
        dict(body.get("criteria") or {}) if isinstance(body.get("criteria"), dict) else {}
    )
    if criteria is not None:
        criteria_body["narrative"] = criteria
    if criteria_url is not None:
        criteria_body["id"] = criteria_url
    options = {
        "name": name,
        "description": description,
        "achievement_type": achievement_type,
        "image": image,
        "tags": tag or None,
        "criteria": criteria_body or None,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    try:
        data = AchievementCreate.model_validate(body)
    except ValidationError as exc:
        raise fail(f"invalid achievement: {first_error(exc)}") from None
    ctx = context()
    with unit_of_work(ctx) as session:
        owner = issuers.get_issuer(session, slug=issuer)
        achievement = service.create_achievement(session, issuer=owner, data=data)
        read = AchievementRead.from_record(ctx.settings, achievement, owner.slug)
    echo_json(read.model_dump(mode="json"))


@achievement_cli.command("list")
def achievement_list(
    issuer: IssuerSlug,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List an issuer's achievements, oldest first: uuid, name and URL."""
    from app.achievements import service
    from app.achievements.schemas import AchievementRead
    from app.issuers import service as issuers

    ctx = context()
    reads: list[AchievementRead] = []
    with unit_of_work(ctx) as session:
        owner = issuers.get_issuer(session, slug=issuer)
        after = None
        while True:
            page = service.list_achievements(session, issuer=owner, limit=PAGE, after=after)
            reads += [AchievementRead.from_record(ctx.settings, a, owner.slug) for a in page]
            if len(page) < PAGE:
                break
            after = (page[-1].created_at, page[-1].id)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in reads])
        return
    table([("UUID", "NAME", "URL"), *((str(r.uuid), r.name, r.id) for r in reads)])

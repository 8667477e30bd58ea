"""`microcred verify`: a credential from a JWT, JSON, a link, or a baked PNG/SVG badge file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from sqlalchemy.orm import Session

from app.cli.common import cli, context, fail, unit_of_work
from app.core import text as client_text
from app.core.context import AppContext

MAX_FETCH_BYTES = 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024  # a baked badge image is far smaller


def _load_credential(ctx: AppContext, session: Session, source: str) -> str | dict[str, Any]:
    """The credential the user named: a JWT, JSON, one of our links, a foreign link, a file
    (JWT, JSON, or a baked PNG/SVG badge) or `-` (stdin, the same kinds)."""
    from app.credentials import repository as credentials_repository
    from app.verify.service import credential_uuid_from_url

    if source == "-":
        return _from_bytes(sys.stdin.buffer.read(MAX_FILE_BYTES + 1), "stdin")
    text = source.strip()
    if text.startswith(("http://", "https://")):
        record_id = credential_uuid_from_url(ctx.settings, text)
        if record_id is not None:
            record = credentials_repository.get(session, record_id)
            if record is not None:
                return record.jwt
        return _from_bytes(_fetch(text), text)
    if text.startswith(("eyJ", "{")):
        return _from_text(text)
    try:
        with Path(text).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        shown = text if len(text) <= 240 else text[:80] + "…"  # a path whole, a long paste cut
        raise fail(
            f"{shown} is neither a JWT, JSON, a link nor a readable file"
            + (f" ({exc.strerror})" if exc.strerror else "")
        ) from None
    return _from_bytes(data, text)


def _from_bytes(data: bytes, name: str) -> str | dict[str, Any]:
    """A baked badge image (recognised by its content, as the web upload does) or text."""
    from app.badges.bake import NotABadgeImage, detect, unbake

    if len(data) > MAX_FILE_BYTES:
        raise fail(f"{name[:80]} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        detect(data)
    except NotABadgeImage:
        pass
    else:
        return unbake(data)  # an unreadable image is a BadImage: one line, exit 2
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise fail(
            f"{name[:80]} is neither a PNG or SVG badge image nor text (a JWT or credential JSON)"
        ) from None
    return _from_text(text)


def _from_text(text: str) -> str | dict[str, Any]:
    text = text.strip()
    if not text:
        raise fail("the credential is empty")
    if text.startswith("{"):
        try:
            data = client_text.loads(text)
        except client_text.UnacceptableJSON as exc:
            raise fail(f"the JSON cannot be checked: {exc}") from None
        except ValueError:
            raise fail("the JSON could not be read") from None
        if not isinstance(data, dict):
            raise fail("expected a credential object")
        return data
    return text


def _fetch(url: str) -> bytes:
    """The body at a credential link, asking for the signed JWT first."""
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
                    raise fail("the credential link answered with more than 1 MiB")
            if r.status_code != 200:
                raise fail(f"the credential link answered HTTP {r.status_code}")
    except httpx.HTTPError as exc:
        raise fail(f"could not fetch {url}: {type(exc).__name__}") from exc
    return body


@cli.command()
def verify(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH_OR_JWT_OR_URL",
            help="A JWT, a file holding one (or credential JSON), a baked PNG or SVG badge "
            "image, or a credential link; '-' reads any of these from stdin.",
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

    trusted: dict[str, TrustedKey] = {}
    if jwks is not None:
        try:
            for jwk in client_text.loads(jwks.read_text("utf-8")).get("keys", []):
                if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                    trusted[jwk["kid"]] = TrustedKey(jwk=jwk)
        except (OSError, ValueError, AttributeError) as exc:
            raise fail(f"cannot read the JWKS file: {exc}") from exc
    ctx = context()
    with unit_of_work(ctx) as session:
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

"""What every `microcred` command shares: the root command, settings, the database check, the
unit of work, and the one place where failures become a one-line message.

A command that cannot do its job says why in one line on stderr and exits 2: bad settings
(production refusals), a database that is missing, unreachable or not migrated, an unreadable
key store. Tracebacks are for bugs, not for a setting to fix.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

# Typer vendors click (typer._click): its classes, not the click package's, are the ones in play.
from typer._click.core import Command, Context, Parameter
from typer._click.exceptions import ClickException
from typer._click.globals import get_current_context
from typer.core import TyperArgument, TyperGroup, TyperOption

from app.core.config import Settings
from app.core.context import AppContext
from app.core.db import session_scope
from app.core.errors import DATABASE_FAULTS, AppError, ServiceUnavailable, database_unavailable
from app.core.keys import UnusableKey
from app.core.migrate import MigrationsNotFound

EXIT_TROUBLE = 2  # the command could not run (exit 1 means "ran, and the answer is no")
_DATABASE = "microcred.database"  # click's ctx.meta key: the database a command uses, for errors


class CommandFailed(Exception):
    """A one-line reason why a command cannot run, shown as is."""


class MicrocredGroup(TyperGroup):
    """Typer's group, with one error boundary and help text free of `<str>`/`<bool>` tags."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except BrokenPipeError:
            # The reader went away (`microcred … | head`): nobody is left to tell. Point stdout
            # at /dev/null so that the interpreter's last flush does not complain either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None  # 128 + SIGPIPE, as a shell reports it
        except Exception as exc:
            message = describe_failure(exc, ctx.meta.get(_DATABASE))
            if message is None:
                raise  # a bug: let the traceback show it
            typer.secho(f"microcred: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_TROUBLE) from None

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _plain_metavars(params, ctx)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, MicrocredGroup):
            _plain_metavars(command.get_params(ctx), ctx)
        return command


def _plain_metavars(params: list[Parameter], ctx: Context) -> None:
    """Typer shows every option's Python type (`<str>`, `<bool>`); show what click does instead:
    the value's kind in capitals (TEXT, INTEGER, PATH, the choices), nothing for a flag."""
    for param in params:
        if isinstance(param, TyperArgument):
            # An argument is shown by its name (or metavar); typer would add its type beside it.
            param.display_type_rich = _no_type  # type: ignore[method-assign]
        if param.metavar is not None or isinstance(param, TyperArgument):
            continue
        if isinstance(param, TyperOption) and (param.is_flag or param.count):
            param.metavar = ""
        elif isinstance(param, TyperOption):
            label = param.display_type(ctx).strip("<>")
            if param.type_descriptor.is_choice:
                param.metavar = f"[{label}]"
            else:
                inner = label.removeprefix("list[").removesuffix("]")
                param.metavar = _KINDS.get(inner, inner.upper())


def _no_type(ctx: Context) -> None:
    return None


_KINDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}


def describe_failure(exc: BaseException, database: str | None) -> str | None:
    """The one line for a failure the user can fix; None for a bug."""
    where = f" at {database}" if database else ""
    if isinstance(exc, CommandFailed):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return "configuration: " + settings_problems(exc)
    if isinstance(exc, ServiceUnavailable):
        # An outage names the part and what is wrong with it (the operator's to fix).
        return f"{exc.part.replace('_', ' ')} unavailable: {exc.log_detail}"
    if isinstance(exc, AppError):
        return exc.message
    if isinstance(exc, (SQLAlchemyError, sqlite3.Error, *DATABASE_FAULTS)):
        detail = _first_line(getattr(exc, "orig", None) or exc)
        # SQLite's and PostgreSQL's words for a missing table (not for a missing database).
        if "no such table" in detail or re.search(r'relation "[^"]+" does not exist', detail):
            return f"the database{where} is not migrated ({detail}): run `microcred db upgrade`"
        if isinstance(exc, DATABASE_FAULTS):
            return f"database unavailable{where}: {database_unavailable(exc).log_detail}"
        return f"database error{where}: {detail}"
    if isinstance(exc, UnusableKey):
        return f"key store: {exc}"
    if isinstance(exc, MigrationsNotFound):
        return str(exc)
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror or exc}"
    return None


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def settings_problems(exc: ValidationError) -> str:
    """`MICROCRED_X: why` for each bad setting, on one line."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        names = [str(p) for p in error["loc"] if isinstance(p, str)]
        parts.append(f"MICROCRED_{names[0].upper()}: {message}" if names else message)
    return "; ".join(parts)


def load_settings() -> Settings:
    """The settings, and the database they name remembered for error messages."""
    settings = Settings()
    context = get_current_context(silent=True)
    if context is not None:
        context.meta[_DATABASE] = shown_url(settings.database_url)
    return settings


def shown_url(database_url: str) -> str:
    """The database URL without its password; a SQLite file as its absolute path."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return str(Path(url.database).resolve())
    return url.render_as_string(hide_password=True)


def require_database(settings: Settings) -> None:
    """Refuse to run on a database that is absent or not at the newest schema.

    A missing SQLite file is never created here (SQLite would, silently, wherever the command
    happens to run): only `microcred db upgrade` creates a database.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.core.migrate import alembic_config

    url = make_url(settings.database_url)
    shown = shown_url(settings.database_url)
    if (
        url.get_backend_name() == "sqlite"
        and url.database
        and url.database != ":memory:"
        and not Path(url.database).exists()
    ):
        origin = (
            "MICROCRED_DATABASE_URL"
            if "MICROCRED_DATABASE_URL" in os.environ
            else "the default, relative to the current folder"
        )
        raise CommandFailed(
            f"there is no database at {shown} ({origin}): set MICROCRED_DATABASE_URL to "
            "your database (e.g. sqlite:////srv/microcred/microcred.db or "
            "postgresql+psycopg://…), or create this one with `microcred db upgrade`"
        )
    engine = create_engine(settings.database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise CommandFailed(
            f"database unavailable: cannot open the database at {shown}: "
            f"{_first_line(getattr(exc, 'orig', None) or exc)}"
        ) from None
    finally:
        engine.dispose()
    if current is None:
        raise CommandFailed(f"the database at {shown} is not migrated: run `microcred db upgrade`")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current != head:
        raise CommandFailed(
            f"the database at {shown} is at schema revision {current}, this microcred needs "
            f"{head}: run `microcred db upgrade`"
        )


def context() -> AppContext:
    """Settings, a checked database and the key store, as the server builds them."""
    from app.models import load_all_models

    settings = load_settings()
    require_database(settings)
    load_all_models()
    return AppContext.build(settings)


@contextmanager
def unit_of_work(ctx: AppContext) -> Iterator[Session]:
    """One transaction for a CLI command: the same commit point as a request; then close."""
    try:
        yield from session_scope(ctx.sessions)
    finally:
        # A command is one unit of work: close its connections (the engine could reconnect).
        ctx.close()


def fail(message: str, code: int = EXIT_TROUBLE) -> typer.Exit:
    """Say why on one line of stderr (as the error boundary does); raise what this returns."""
    typer.secho(f"microcred: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def warn(messages: list[str]) -> None:
    """Warnings on stderr (yellow), so that stdout stays the JSON a script reads."""
    for message in messages:
        typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def first_error(exc: ValidationError) -> str:
    """`field.path: message` of a validation error's first problem."""
    error = exc.errors()[0]
    where = ".".join(map(str, error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell (the last one left as is)."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


cli = typer.Typer(
    cls=MicrocredGroup,
    help="Issue and verify Open Badges 3.0 micro-credentials.",
    no_args_is_help=True,
    # The error boundary above prints one line; a bug still gets Python's own traceback.
    pretty_exceptions_enable=False,
)


def group(name: str, help: str) -> typer.Typer:
    """A command group of `microcred` (`microcred <name> …`)."""
    sub = typer.Typer(cls=MicrocredGroup, help=help, no_args_is_help=True)
    cli.add_typer(sub, name=name)
    return sub


def described(exc: AppError) -> str:
    """An AppError for the operator: an outage names the part and what is wrong with it."""
    return describe_failure(exc, None) or exc.message

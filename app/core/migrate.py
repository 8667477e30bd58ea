"""Running Alembic from code: the CLI, start-up of `make run`, and the tests use this.

`upgrade()` is safe to run from several processes or replicas at once: on PostgreSQL it holds an
advisory lock for the whole upgrade, on SQLite an exclusive lock on a file beside the database, so
the second caller waits, then finds the schema at head and does nothing.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent.parent

# Where the Alembic scripts are: a source checkout (and an editable install) has them beside the
# `app` package; an installed package finds them under the environment's data prefix, where the
# Dockerfile puts them (the usual place for a package's data files, <prefix>/share/<name>).
MIGRATION_DIRS = (ROOT / "migrations", Path(sys.prefix) / "share" / "microcred" / "migrations")

# pg_advisory_lock(int, int): the first key names the lock's purpose, the second the schema being
# migrated, so that migrations of different schemas (tests) never wait for each other.
ADVISORY_LOCK_CLASS = 0x6D63  # "mc"
_LOCK = "SELECT pg_advisory_lock(:cls, hashtext(coalesce(current_schema(), '')))"
_UNLOCK = "SELECT pg_advisory_unlock(:cls, hashtext(coalesce(current_schema(), '')))"


class MigrationsNotFound(RuntimeError):
    """Neither a source checkout nor an installed data folder holds the migration scripts."""


def migrations_dir() -> Path:
    for candidate in MIGRATION_DIRS:
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationsNotFound(
        "the Alembic migrations are not installed; looked in "
        + ", ".join(str(c) for c in MIGRATION_DIRS)
    )


def alembic_config(database_url: str | None = None, connection: Connection | None = None) -> Config:
    # alembic.ini only matters to the `alembic` command of a checkout (file template, logging);
    # an installed package runs without it.
    ini = ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`, holding the database's migration lock: concurrent callers line up."""
    backend = make_url(database_url).get_backend_name()
    if backend == "postgresql":
        _upgrade_postgresql(database_url, revision)
        return
    with _sqlite_file_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


def _upgrade_postgresql(database_url: str, revision: str) -> None:
    # A session-level advisory lock on a connection of our own, which Alembic then migrates on:
    # it lasts across Alembic's transaction and ends with the connection even if this process
    # dies. The waiting caller reads alembic_version only once it holds the lock, so it sees the
    # schema the first one left and has nothing to do.
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            keys = {"cls": ADVISORY_LOCK_CLASS}
            conn.execute(text(_LOCK), keys)
            conn.commit()
            try:
                command.upgrade(alembic_config(database_url, connection=conn), revision)
                conn.commit()
            finally:
                conn.rollback()  # a failed migration leaves its transaction open: end it first
                conn.execute(text(_UNLOCK), keys)
                conn.commit()
    finally:
        engine.dispose()


@contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    """An exclusive flock on `<database>.migrate-lock` while migrating (SQLite lives on one host)."""
    database = make_url(database_url).database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database + ".migrate-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

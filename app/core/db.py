"""Engine, sessions and the declarative base. The request-scoped session is the one commit point."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Row,
    create_engine,
    event,
    insert,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.core.errors import DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both backends (SQLite drops the offset; we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (see _sqlite_begin): pysqlite's implicit transactions start only at
    # the first INSERT/UPDATE, which breaks SAVEPOINT and lets a RELEASE commit half a unit of work.
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the writer and takes inserts from ~0.8k to ~4k rows/s;
    # foreign keys are off by default in SQLite; busy_timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class _SQLiteWriteGate:
    """One writer at a time per process, handed over by a lock rather than by SQLite's busy handler.

    A writer takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that read
    first and writes later fails at once with SQLITE_BUSY when another writer committed in between.
    Within a process, writers queue on a lock, which hands over at once, instead of on SQLite's
    busy handler, which sleeps and retries (and made tail latencies explode under load); other
    processes still wait on busy_timeout. Read-only sessions (engine option sqlite_write=False)
    begin deferred and never wait for writers (WAL).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def begin(self, conn: Connection) -> None:
        if not conn.get_execution_options().get("sqlite_write", True):
            conn.exec_driver_sql("BEGIN")
            return
        if not self._lock.acquire(timeout=30):
            raise DatabaseUnavailable(
                "The database is busy; try again shortly.",
                log_detail="no SQLite write slot within 30 s",
            )
        conn.info["sqlite_write_gate"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(conn)
            raise

    def end(self, conn: Connection) -> None:
        if conn.info.pop("sqlite_write_gate", False):
            self._lock.release()

    def reset(self, dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        # A connection returned to the pool mid-transaction is rolled back by the pool: let go too.
        if connection_record.info.pop("sqlite_write_gate", False):
            self._lock.release()


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        gate = _SQLiteWriteGate()
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", gate.begin)
        event.listen(engine, "commit", gate.end)
        event.listen(engine, "rollback", gate.end)
        event.listen(engine.pool, "reset", gate.reset)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
    side = create_engine(url, pool_size=1, max_overflow=SIDE_POOL_CAPACITY - 1, pool_pre_ping=True)
    _side_engines[engine] = side
    event.listen(engine, "engine_disposed", lambda _engine: side.dispose())
    return engine


# Connections of the side pool of a PostgreSQL engine (see `side_session`).
SIDE_POOL_CAPACITY = 4
_side_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def side_session(session: Session) -> Session:
    """A session for a short transaction that commits apart from `session`'s (PostgreSQL).

    Its connection comes from a small pool of its own: a caller holding a connection of the main
    pool never waits for another connection of that same pool (with every connection held by
    such callers, they would all wait for each other until the pool times out).
    """
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    side = _side_engines.get(engine.engine)
    if side is None:  # an engine not made by make_engine (a script's): its own pool then
        side = engine.engine
    return Session(bind=side, expire_on_commit=False)


def pool_capacity(pool_size: int) -> int:
    """Connections an engine of make_engine() may open: its pool plus the overflow (on
    PostgreSQL, its side pool adds SIDE_POOL_CAPACITY)."""
    return pool_size * 3


def read_only(engine: Engine) -> Engine:
    """The same pool, for sessions that only read (on SQLite they then never take the write lock)."""
    return engine.execution_options(sqlite_write=False)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def add_unless_conflict(session: Session, row: Base) -> bool:
    """Insert `row` in a savepoint; False (and nothing written) when a unique constraint refuses it.

    The database's constraint is the guard against races between threads, processes and replicas;
    the savepoint keeps the rest of the unit of work alive when it says no.
    """
    savepoint = session.begin_nested()
    try:
        session.add(row)
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def on_postgresql(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (which gets COPY, arrays and row locks)."""
    return bool(session.get_bind().dialect.name == "postgresql")


def insert_ignoring_conflicts(
    session: Session, table: Any, rows: Sequence[dict[str, Any]], *returning: Any
) -> list[Row[Any]]:
    """Bulk-insert `rows` (executemany), skipping those a unique constraint refuses.

    Returns the `returning` columns of the rows actually inserted: what is missing was taken by a
    concurrent writer (another thread, process or replica), which the caller then looks up.
    """
    if not rows:
        return []
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).on_conflict_do_nothing()
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two supported backends are above
        raise NotImplementedError(f"no conflict-ignoring insert for {name}")
    if not returning:
        session.execute(statement, list(rows))
        return []
    return list(session.execute(statement.returning(*returning), list(rows)).all())


class RawJSON(str):
    """Text that is JSON already (e.g. pydantic's `model_dump_json`), for a JSON column that
    `bulk_insert` writes: stored as is, not encoded a second time."""


def bulk_insert(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction, as fast as the backend allows.

    PostgreSQL gets `COPY … FROM STDIN` (psycopg adapts the values in C: several times the rate of
    an executemany INSERT for wide rows); SQLite gets an executemany INSERT. Values must be what
    the columns store (UTC-aware datetimes, UUIDs, dicts for JSON columns).
    """
    if not rows:
        return
    columns = list(rows[0])
    if not on_postgresql(session):
        session.execute(insert(table), [_decode_raw(row) for row in rows])
        return
    raw = session.connection().connection.driver_connection
    if raw is None:  # pragma: no cover - a checked-out connection always has its driver's
        raise RuntimeError("no database connection")
    names = ", ".join(f'"{c}"' for c in columns)
    as_json = [n for n, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    # Binary: no escaping of long text (a credential's JWT) on our side, no parsing on the server's.
    statement = f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT BINARY)'
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_copy_type(table.c[c]) for c in columns])
            for row in rows:
                cells = values(row)
                if as_json:
                    cells = list(cells)
                    for n in as_json:
                        if cells[n] is not None and not isinstance(cells[n], RawJSON):
                            cells[n] = json.dumps(cells[n])
                copy.write_row(cells)
    except raw.IntegrityError as exc:
        # As SQLAlchemy would raise it: callers catch one IntegrityError on both backends.
        raise IntegrityError(statement, None, exc) from exc


def _decode_raw(row: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy's JSON type encodes what it is given: hand it the value, not its JSON."""
    if not any(isinstance(v, RawJSON) for v in row.values()):
        return row
    return {k: json.loads(v) if isinstance(v, RawJSON) else v for k, v in row.items()}


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# PostgreSQL types of the columns bulk_insert writes, for binary COPY. Text, VARCHAR(n) and JSON
# travel as their text (the server still checks lengths and JSON syntax).
_BINARY_COPY_TYPES = {
    "BOOLEAN": "bool",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "UUID": "uuid",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TEXT": "text",
    "VARCHAR": "text",
    "JSON": "text",
}


@lru_cache(maxsize=256)
def _copy_type(column: Column[Any]) -> str:
    name = column.type.compile(dialect=_PG_DIALECT).split("(")[0]
    try:
        return _BINARY_COPY_TYPES[name]
    except KeyError:
        raise TypeError(f"bulk_insert cannot copy {column} of type {name}") from None


def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit when the unit of work ends cleanly, roll back on any exception: one commit point."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

"""Long-lived objects of one running app, built once by the lifespan and shared by requests."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import ImageCache
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker, pool_capacity, read_only
from app.core.fetch import Fetcher
from app.core.jsonld import ContextLoader
from app.core.keys import KeyStore, PublicKey


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    keystore: KeyStore
    fetcher: Fetcher  # guarded HTTPS fetches of foreign issuers' keys and status lists
    # JSON-LD contexts for the data_model check: shipped ones, others through `fetcher` when the
    # settings allow remote contexts (expanded contexts are cached here, for the app's life).
    contexts: ContextLoader = field(default_factory=ContextLoader)
    # Parsed public keys by full kid: parsing a JWK costs more than verifying with it.
    public_keys: dict[str, PublicKey] = field(default_factory=dict)
    # Immutable rendered images (QR codes) by cache key.
    images: ImageCache = field(default_factory=lambda: ImageCache(4096))
    # Requests holding a database session at once: the pool's capacity (see core.deps).
    db_capacity: int = 15
    # Sessions of the verify API, which only reads, mostly one statement: on PostgreSQL in
    # autocommit, which saves the BEGIN and ROLLBACK round trips around it (at READ COMMITTED
    # every statement sees its own snapshot anyway). None: `read_sessions`.
    verify_sessions: sessionmaker[Session] | None = None
    _slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def db_slots(self) -> asyncio.Semaphore:
        """The semaphore of the running event loop (tests run apps on several loops in turn)."""
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.db_capacity)
        return slots

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        readers = read_only(engine)
        passphrase = (
            settings.keys_passphrase.get_secret_value() if settings.keys_passphrase else None
        )
        fetcher = Fetcher.from_settings(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            read_sessions=make_sessionmaker(readers),
            verify_sessions=make_sessionmaker(
                readers.execution_options(isolation_level="AUTOCOMMIT")
            )
            if engine.dialect.name == "postgresql"
            else None,
            keystore=KeyStore(settings.keys_dir, passphrase),
            fetcher=fetcher,
            contexts=ContextLoader.from_settings(settings, fetch=fetcher.get_json),
            images=ImageCache(settings.qr_cache_size),
            db_capacity=pool_capacity(settings.db_pool_size),
        )

    def ping_database(self) -> None:
        """Whether the database answers: a pooled connection and `SELECT 1` on the engine of
        verification (on PostgreSQL outside any transaction: no BEGIN/ROLLBACK round trips; on
        SQLite without the write slot)."""
        sessions = self.verify_sessions or self.read_sessions
        engine: Engine = sessions.kw["bind"]
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()
        self.fetcher.close()

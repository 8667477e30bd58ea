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
from app.core.keys import KeyStore, PublicKey


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    keystore: KeyStore
    fetcher: Fetcher  # guarded HTTPS fetches of foreign issuers' keys and status lists
    # Parsed public keys by full kid: parsing a JWK costs more than verifying with it.
    public_keys: dict[str, PublicKey] = field(default_factory=dict)
    # Immutable rendered images (QR codes) by cache key.
    images: ImageCache = field(default_factory=lambda: ImageCache(4096))
    # Requests holding a database session at once: the pool's capacity (see core.deps).
    db_capacity: int = 15
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
        passphrase = (
            settings.keys_passphrase.get_secret_value() if settings.keys_passphrase else None
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            read_sessions=make_sessionmaker(read_only(engine)),
            keystore=KeyStore(settings.keys_dir, passphrase),
            fetcher=Fetcher.from_settings(settings),
            images=ImageCache(settings.qr_cache_size),
            db_capacity=pool_capacity(settings.db_pool_size),
        )

    def close(self) -> None:
        self.engine.dispose()
        self.fetcher.close()

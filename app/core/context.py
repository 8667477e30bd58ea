"""Long-lived objects of one running app, built once by the lifespan and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import ImageCache
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.core.keys import KeyStore, PublicKey


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keystore: KeyStore
    # Parsed public keys by full kid: parsing a JWK costs more than verifying with it.
    public_keys: dict[str, PublicKey] = field(default_factory=dict)
    # Immutable rendered images (QR codes) by cache key.
    images: ImageCache = field(default_factory=lambda: ImageCache(4096))

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
            keystore=KeyStore(settings.keys_dir, passphrase),
            images=ImageCache(settings.qr_cache_size),
        )

    def close(self) -> None:
        self.engine.dispose()

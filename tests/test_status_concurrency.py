"""Several processes issuing at once on PostgreSQL never share a status index (issue 3, line 3)."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.credentials.models import Credential
from conftest import World, make_settings

PROCESSES = 4
THREADS = 4
PER_PROCESS = 500


def _issue_many(
    database_url: str, keys_dir: str, slug: str, achievement_id: str, count: int
) -> int:
    """One worker process: its own engine and key store, `THREADS` concurrent issuers."""
    from app.core.context import AppContext
    from app.core.db import session_scope
    from app.credentials import service as credentials
    from app.credentials.schemas import CredentialCreate
    from app.issuers import service as issuers
    from app.models import load_all_models

    load_all_models()
    ctx = AppContext.build(make_settings(database_url, Path(keys_dir), db_pool_size=THREADS))

    def one(n: int) -> None:
        data = CredentialCreate.model_validate(
            {"achievement_id": achievement_id, "recipient": {"email": f"learner{n}@example.com"}}
        )
        for session in session_scope(ctx.sessions):
            issuer = issuers.get_issuer(session, slug=slug)
            credentials.issue_credential(
                session, settings=ctx.settings, keystore=ctx.keystore, issuer=issuer, data=data
            )

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(count)))
    ctx.close()
    return count


@pytest.mark.slow
def test_concurrent_processes_get_distinct_indices(
    database_url: str, settings: Settings, world: World
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("this is the PostgreSQL contention test; SQLite serialises writers by design")
    issuer = world.issuer(name="Mooc Platform")
    achievement = world.achievement(issuer["api_key"]["key"])
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        done = pool.starmap(
            _issue_many,
            [
                (
                    database_url,
                    str(settings.keys_dir),
                    "mooc-platform",
                    achievement["uuid"],
                    PER_PROCESS,
                )
                for _ in range(PROCESSES)
            ],
        )
    assert sum(done) == PROCESSES * PER_PROCESS
    engine = create_engine(database_url)
    with Session(engine) as session:
        issuer_id = uuid.UUID(str(session.scalar(select(Credential.issuer_id).limit(1))))
        total = session.scalar(select(func.count()).where(Credential.issuer_id == issuer_id))
        distinct = session.scalar(
            select(func.count()).select_from(
                select(Credential.revocation_list_id, Credential.revocation_index)
                .where(Credential.issuer_id == issuer_id)
                .distinct()
                .subquery()
            )
        )
    engine.dispose()
    assert total == PROCESSES * PER_PROCESS
    assert distinct == PROCESSES * PER_PROCESS

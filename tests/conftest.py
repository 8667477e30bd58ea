"""Test harness: every database test runs on SQLite and, when configured, on PostgreSQL.

Each test starts from an empty database built by `alembic upgrade head`: a copy of a migrated
SQLite file, or, on PostgreSQL (MICROCRED_TEST_DATABASE_URL, set by `.ci/run`; unset, a
throwaway cluster of `pgcluster.py` when PostgreSQL's binaries are installed), a schema of its
test process migrated once and emptied before every test.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import budget
import hypothesis
import pgcluster
import pytest
import trustme
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.core.config import Settings
from app.core.db import Base
from app.core.migrate import alembic_config, upgrade
from app.main import create_app
from app.models import load_all_models

PG_URL = os.environ.get(pgcluster.ENV)
ADMIN_TOKEN = "test-admin-token"
BASE_URL = "http://testserver"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
STANDARDS = SHARED / "standards"


_cluster: pgcluster.Cluster | None = None


def _cache_fastapi_signatures() -> None:
    """Each test builds its own app, and FastAPI works out every route's dependencies again on
    an app's first request (~0.1 s of CPU for ~200 routes; a fifth of that is reading the same
    functions' signatures). A function's signature does not change: read it once per process.
    Only the test process does this; without the private helper (another FastAPI), nothing."""
    import inspect
    from collections.abc import Callable

    import fastapi.dependencies.utils as fastapi_utils

    original = getattr(fastapi_utils, "_get_signature", None)
    if original is None:
        return
    cached: dict[Any, inspect.Signature] = {}

    def signature(call: Callable[..., Any]) -> inspect.Signature:
        try:
            return cached[call]
        except KeyError:
            found: inspect.Signature = original(call)
            cached[call] = found
            return found
        except TypeError:  # an unhashable callable
            return original(call)  # type: ignore[no-any-return]

    fastapi_utils._get_signature = signature


_cache_fastapi_signatures()


def pytest_configure(config: pytest.Config) -> None:
    """No PostgreSQL configured: start a throwaway cluster, once, before xdist starts workers."""
    global PG_URL, _cluster
    if hasattr(config, "workerinput") or pgcluster.ENV in os.environ:
        return  # a worker inherits the controller's URL; a set (even empty) URL is the user's
    bindir = pgcluster.find_bindir()
    if bindir is None:
        return
    _cluster = pgcluster.start(bindir)
    os.environ[pgcluster.ENV] = PG_URL = _cluster.url
    # SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C, so the cluster is still removed.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# Tests without their own example count: hypothesis's default (100) in CI, five times that in full.
hypothesis.settings.register_profile("ci", deadline=None)
hypothesis.settings.register_profile("full", deadline=None, max_examples=500)
hypothesis.settings.load_profile(budget.current())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests first, so xdist hands out their files while there is plenty left to balance
    them with: the tail of a run is then short files, where a long one started last would hold
    one worker while the other idles. (`--dist loadfile` keeps a file on one worker, so module
    fixtures that start servers start once; `loadgroup` cannot group here: xdist 3.8 renames
    `item._nodeid`, which pytest 9 no longer reads.) Same order on every worker, as xdist needs.
    """
    items.sort(key=lambda item: not _long(item))


# Long files not (yet) marked `slow`: the schemathesis run (~2.5 min of a CI run, on one worker).
LONG_FILES = {"test_fuzz_openapi.py"}


def _long(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None or item.path.name in LONG_FILES


def pytest_unconfigure(config: pytest.Config) -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        os.environ.pop(pgcluster.ENV, None)
        _cluster = None


def pytest_report_header(config: pytest.Config) -> str:
    if _cluster is not None:
        return f"PostgreSQL: throwaway cluster {_cluster.url} ({_cluster.bindir})"
    if PG_URL:
        return f"PostgreSQL: {PG_URL}"
    return "PostgreSQL: none (no server binaries, or MICROCRED_TEST_DATABASE_URL empty): skipped"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test copies it (a copy costs far less than migrating)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str | None]:
    """One migrated PostgreSQL schema per test process (xdist worker); tests truncate it, not rebuild it."""
    if not PG_URL:
        yield None
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    try:
        yield rendered
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


_pg_engines: dict[str, Engine] = {}


def _empty_database(url: str) -> None:
    """Delete every row (children first); migrate back to head if a test moved the schema."""
    engine = _pg_engines.get(url)
    if engine is None:
        engine = _pg_engines[url] = create_engine(url, poolclass=NullPool)
    load_all_models()
    with engine.begin() as conn:
        version = conn.scalar(text("SELECT max(version_num) FROM alembic_version"))
        if version == _head_revision():
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            return
    upgrade(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@cache
def _head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_schema_url: str | None
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "microcred.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    if pg_schema_url is None:
        pytest.skip(
            "PostgreSQL tests need PostgreSQL's server binaries (initdb, pg_ctl) or "
            "MICROCRED_TEST_DATABASE_URL"
        )
    _empty_database(pg_schema_url)
    yield pg_schema_url


def make_settings(database_url: str, keys_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "database_url": database_url,
        "keys_dir": keys_dir,
        "admin_token": SecretStr(ADMIN_TOKEN),
        "env": "development",
        # No job runner or webhook dispatcher threads: tests drive them, or ask for them.
        "background_workers": False,
        # Many tests send bursts from one client; the rate-limit tests turn limits on.
        "rate_limits_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "keys")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as c:
        yield c


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class World:
    """A small fluent helper over the real HTTP API (no shortcuts into the database)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def issuer(self, **body: Any) -> dict[str, Any]:
        body = {"name": "Data Academy", "url": "https://data-academy.example", **body}
        response = self.client.post("/api/v1/issuers", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def achievement(self, api_key: str, **body: Any) -> dict[str, Any]:
        body = {
            "name": "SQL for Analysts",
            "description": "Writes correct, efficient SQL for reporting.",
            "criteria": {"narrative": "Passed a proctored practical exam."},
            "achievement_type": "MicroCredential",
            "alignments": [
                {
                    "target_name": "Data Scientists",
                    "target_url": "https://www.onetonline.org/link/summary/15-2051.00",
                    "target_framework": "O*NET-SOC",
                    "target_code": "15-2051.00",
                }
            ],
            "tags": ["SQL", "data visualisation"],
            **body,
        }
        response = self.client.post("/api/v1/achievements", json=body, headers=bearer(api_key))
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def credential(
        self, api_key: str, achievement_id: str, headers: dict[str, str] | None = None, **body: Any
    ) -> dict[str, Any]:
        body = {
            "achievement_id": achievement_id,
            "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
            **body,
        }
        response = self.client.post(
            "/api/v1/credentials", json=body, headers={**bearer(api_key), **(headers or {})}
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def issued(self, **credential_body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A fresh issuer with one achievement and one credential: (issuer response, credential)."""
        issuer = self.issuer()
        key = issuer["api_key"]["key"]
        achievement = self.achievement(key)
        return issuer, self.credential(key, achievement["uuid"], **credential_body)

    def verify(self, credential: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/verify", json={"credential": credential})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


def check(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The named check of a verification result."""
    matches = [c for c in result["checks"] if c["check"] == name]
    assert len(matches) == 1, result
    found: dict[str, Any] = matches[0]
    return found


def ob_credential(issuer_id: str, **extra: Any) -> dict[str, Any]:
    """A minimal OB 3.0 credential from a foreign issuer, as a VCDM 2.0 VC-JWT payload."""
    cred_id = f"urn:uuid:{uuid.uuid4()}"
    subject = "did:example:learner-7"
    credential = {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": cred_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer_id, "type": ["Profile"], "name": "Acme Academy"},
        "validFrom": "2024-01-01T00:00:00Z",
        "name": "Foreign Badge",
        "credentialSubject": {
            "id": subject,
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://acme.example/achievements/1",
                "type": ["Achievement"],
                "name": "Foreign Badge",
                "description": "Awarded by another issuer.",
                "criteria": {"narrative": "Did the thing."},
            },
        },
        **extra,
    }
    claims = {"iss": issuer_id, "jti": cred_id, "sub": subject}
    # OB 3.0 §8.2.4.1: nbf is validFrom and exp is validUntil (when set).
    for claim, field in (("nbf", "validFrom"), ("exp", "validUntil")):
        stamp = credential.get(field)
        if isinstance(stamp, str):
            claims[claim] = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return {**credential, **claims}


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A test certificate authority for HTTPS servers on loopback (foreign sites, webhook receivers)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA's certificate as a PEM file, for MICROCRED_FETCH_CA_BUNDLE."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path

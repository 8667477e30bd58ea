"""What outlives a process: the database, the key files, the schema, and production start-up."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, inspect, text

from app.core.config import Settings
from app.core.migrate import alembic_config, upgrade
from app.main import StartupRefused, create_app
from conftest import ADMIN, BASE_URL, World, bearer, check, make_settings

PASSPHRASE = "correct horse battery staple"
STRONG_TOKEN = "an-operator-token-of-32-characters!"
PEM_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() reads MICROCRED_*: keep the developer's environment out of these tests."""
    for name in ("KEYS_PASSPHRASE", "ADMIN_TOKEN", "ENV", "BASE_URL", "KEYS_DIR"):
        monkeypatch.delenv(f"MICROCRED_{name}", raising=False)


def _page_title(html: str) -> str:
    match = re.search(r'<h1 class="banner-title">\s*([^<]+?)\s*</h1>', html)
    assert match, html[:500]
    return match.group(1)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["clear", "encrypted"])
def test_credentials_survive_a_restart(
    database_url: str, tmp_path: Path, passphrase: str | None
) -> None:
    overrides = {"keys_passphrase": SecretStr(passphrase)} if passphrase else {}
    settings = make_settings(database_url, tmp_path / "keys", **overrides)
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = World(client)
        issuer, issued = world.issued()
        key = issuer["api_key"]["key"]
        achievement = issued["credential"]["credentialSubject"]["achievement"]["id"]
        qr = client.get(f"/credentials/{issued['id']}/qr.png")
        assert world.verify(issued["jwt"])["verified"] is True

    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = World(client)
        result = world.verify(issued["jwt"])
        assert result["verified"] is True, result
        assert check(result, "record")["result"] == "pass"
        page = client.get(f"/credentials/{issued['id']}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert _page_title(page.text) == "Verified"
        assert client.get(f"/credentials/{issued['id']}?format=jwt").text == issued["jwt"]
        again = client.get(f"/credentials/{issued['id']}/qr.png")
        assert again.headers["etag"] == qr.headers["etag"]
        # The issuer's key is read back from disk: the API key works and new credentials verify.
        fresh = world.credential(key, achievement.rsplit("/", 1)[1])
        assert world.verify(fresh["jwt"])["verified"] is True
        listed = client.get("/api/v1/credentials", headers=bearer(key)).json()
        assert [c["id"] for c in listed["items"]] == [issued["id"], fresh["id"]]


def test_the_schema_is_built_by_migrations_from_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"issuers", "signing_keys", "api_keys", "achievements", "credentials"} <= tables
    assert "alembic_version" in tables
    # Going back to nothing and up again works too.
    command.downgrade(alembic_config(url), "base")
    upgrade(url)


def test_lists_from_before_slot_allocation_are_closed_or_keyed(tmp_path: Path) -> None:
    """The slot migration closes lists that handed out random indices and keys unused ones;
    going back rebuilds the allocation rows from the credentials."""
    url = f"sqlite:///{tmp_path / 'lists.db'}"
    config = alembic_config(url)
    command.upgrade(config, "b7e1a0c4d2f1")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO issuers (id, slug, name, url, algorithm, suspension, created_at) "
                    "VALUES ('11111111111111111111111111111111', 'old', 'Old', 'https://old.example', "
                    "'ES256', 1, '2026-01-01 00:00:00')"
                )
            )
            for n, list_id in enumerate(("a" * 32, "b" * 32), start=1):
                conn.execute(
                    text(
                        'INSERT INTO status_lists (id, issuer_id, purpose, seq, size, "full", '
                        "version, created_at, updated_at) VALUES (:id, "
                        "'11111111111111111111111111111111', :p, 1, 131072, 0, 0, "
                        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                    ),
                    {"id": list_id, "p": ("revocation", "suspension")[n - 1]},
                )
            conn.execute(
                text('INSERT INTO status_allocations (list_id, "index") VALUES (:l, 77)'),
                {"l": "a" * 32},
            )
        command.upgrade(config, "head")
        with engine.connect() as conn:
            lists = {
                row.id: row
                for row in conn.execute(
                    text('SELECT id, "full", next_slot, index_key FROM status_lists')
                )
            }
            assert "status_allocations" not in inspect(conn).get_table_names()
        assert lists["a" * 32].full
        assert lists["a" * 32].index_key is None
        unused = lists["b" * 32]
        assert not unused.full
        assert unused.next_slot == 0
        assert len(unused.index_key) == 64
        command.downgrade(config, "b7e1a0c4d2f1")
        with engine.connect() as conn:
            assert "status_allocations" in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    """`alembic check`: the migrated database (SQLite and PostgreSQL) has no drift from the models."""
    command.check(alembic_config(database_url))


def test_health_reports_the_database(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "keys")
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "database": "ok",
            "keys": "ok",
            "disk": "ok",
        }


# --- production refuses insecure settings ------------------------------------------------------


def _production(tmp_path: Path, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "env": "production",
        "base_url": "https://badges.example.org",
        "database_url": f"sqlite:///{tmp_path / 'prod.db'}",
        "keys_dir": tmp_path / "keys",
        "admin_token": SecretStr(STRONG_TOKEN),
        "keys_passphrase": SecretStr(PASSPHRASE),
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keys_passphrase": None}, "MICROCRED_KEYS_PASSPHRASE"),
        ({"admin_token": None}, "MICROCRED_ADMIN_TOKEN"),
        ({"admin_token": SecretStr("dev-admin-token")}, "MICROCRED_ADMIN_TOKEN"),
        ({"admin_token": SecretStr("short")}, "at least 24"),
        ({"base_url": "http://badges.example.org"}, "https"),
    ],
)
def test_production_refuses_insecure_settings(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**_production(tmp_path, **change))  # type: ignore[arg-type]


def test_production_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROCRED_ENV", "production")
    monkeypatch.setenv("MICROCRED_BASE_URL", "https://badges.example.org")
    with pytest.raises(ValidationError, match="MICROCRED_ADMIN_TOKEN"):
        Settings()
    monkeypatch.setenv("MICROCRED_ADMIN_TOKEN", STRONG_TOKEN)
    with pytest.raises(ValidationError, match="MICROCRED_KEYS_PASSPHRASE"):
        Settings()
    monkeypatch.setenv("MICROCRED_KEYS_PASSPHRASE", PASSPHRASE)
    settings = Settings()
    assert settings.keys_passphrase is not None
    assert PASSPHRASE not in repr(settings)
    assert STRONG_TOKEN not in repr(settings)


def test_production_refuses_unencrypted_keys(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with TestClient(create_app(make_settings(database_url, keys)), base_url=BASE_URL) as client:
        World(client).issuer()
    [pem] = keys.glob("*.pem")
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    production = Settings(**_production(tmp_path, database_url=database_url))  # type: ignore[arg-type]
    with pytest.raises(StartupRefused, match="not encrypted"):
        create_app(production)


def test_keys_are_encrypted_at_rest_with_a_passphrase(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    production = Settings(**_production(tmp_path, database_url=database_url))  # type: ignore[arg-type]
    with TestClient(create_app(production), base_url=BASE_URL) as client:
        for algorithm in ("ES256", "EdDSA", "RS256"):
            response = client.post(
                "/api/v1/issuers",
                json={
                    "name": f"Academy {algorithm}",
                    "url": "https://a.example",
                    "algorithm": algorithm,
                },
                headers={"Authorization": f"Bearer {STRONG_TOKEN}"},
            )
            assert response.status_code == 201, response.text
        # The development token means nothing here.
        assert client.get("/api/v1/issuers", headers=ADMIN).status_code == 401
    files = sorted(keys.glob("*.pem"))
    assert len(files) == 3
    for path in files:
        assert path.read_bytes().startswith(PEM_HEADER), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert not list(keys.glob("*.tmp"))
    # Encrypted keys pass the production start-up check, and a restart can sign with them.
    with TestClient(create_app(production), base_url=BASE_URL) as client:
        slug = client.get(
            "/api/v1/issuers", headers={"Authorization": f"Bearer {STRONG_TOKEN}"}
        ).json()[0]["slug"]
        response = client.post(
            f"/api/v1/issuers/{slug}/api-keys", headers={"Authorization": f"Bearer {STRONG_TOKEN}"}
        )
        world = World(client)
        key = response.json()["key"]
        achievement = world.achievement(key)
        issued = world.credential(key, achievement["uuid"])
        assert issued["url"].startswith("https://badges.example.org/credentials/")


def test_a_wrong_passphrase_cannot_sign(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    settings = make_settings(database_url, keys, keys_passphrase=SecretStr(PASSPHRASE))
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = World(client)
        key = world.issuer()["api_key"]["key"]
        achievement = world.achievement(key)["uuid"]
    wrong = make_settings(database_url, keys, keys_passphrase=SecretStr("not the passphrase"))
    with TestClient(create_app(wrong), base_url=BASE_URL, raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/credentials",
            json={"achievement_id": achievement, "recipient": {"email": "a@example.com"}},
            headers=bearer(key),
        )
        assert response.status_code >= 500
        assert "not the passphrase" not in response.text
        assert PASSPHRASE not in response.text

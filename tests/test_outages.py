"""Outages: the database gone, the disk full, the key store broken. Each is a 503 problem with
Retry-After on every route that needs the part, `/health` names the part, the service recovers
by itself when the fault is removed (no restart), and no acknowledged credential is lost.

How each fault is made (real, and reversible):
- PostgreSQL gone: a database of the test's own is closed to connections (`ALTER DATABASE …
  ALLOW_CONNECTIONS false`) and its backends killed (`pg_terminate_backend`): the pool's
  connections die and new ones are refused, as when the server goes away.
- SQLite gone: the database's folder is moved away and the pool's connections dropped (as after
  a restart: an open SQLite connection keeps reading a moved file, so without the drop nothing
  would fail); opening it then fails with "unable to open database file".
- Disk full: the SQLite database and the keys folder on a small tmpfs, filled to the last byte
  (ENOSPC, SQLITE_FULL); on PostgreSQL, the credentials table moved to a tablespace on such a
  tmpfs (DiskFull, 53100). Mounting needs root (CAP_SYS_ADMIN), and the tablespace a server on
  this host: skipped without them.
- Read-only keys folder: that tmpfs remounted read-only (EROFS, which binds root too); without
  root, a 0500 folder.
- Key files: a wrong passphrase, garbage in the file, the file deleted, the file unreadable
  (0000 without root; as root, which reads any file, a folder in its place: EISDIR).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.keys import KeyStoreUnavailable
from app.core.migrate import upgrade
from app.main import StartupRefused, create_app
from conftest import ADMIN, BASE_URL, PG_URL, World, bearer, make_settings

PASSPHRASE = "correct horse battery staple"
ROOT = os.geteuid() == 0
HTML = {"Accept": "text/html"}


def _assert_503(response: Any, part: str) -> dict[str, Any]:
    assert response.status_code == 503, (response.status_code, response.text[:400])
    assert int(response.headers["retry-after"]) > 0
    if response.request.headers.get("accept", "").startswith("text/html"):
        # A person's browser gets the error page (issue 14), with the same status and wait.
        assert response.headers["content-type"].startswith("text/html")
        assert "try again" in response.text.lower(), response.text[:400]
        return {}
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["unavailable"] == part, body
    return body


def _health(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/health")
    return response.status_code, response.json()


# --- fixtures: a database of the test's own, a small tmpfs --------------------------------------


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database the test may take away: a SQLite file in a folder of its own, or a whole
    PostgreSQL database (the shared schema of the other tests must stay reachable)."""
    if database_url.startswith("sqlite"):
        folder = tmp_path / "db"
        folder.mkdir()
        shutil.copy(make_url(database_url).database or "", folder / "microcred.db")
        yield f"sqlite:///{folder / 'microcred.db'}"
        return
    assert PG_URL is not None
    name = f"outage_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def _database_gone(url: str, client: TestClient) -> Iterator[None]:
    if url.startswith("sqlite"):
        database = Path(make_url(url).database or "")
        away = database.parent.with_name("db-gone")
        away.mkdir()
        client.app.state.ctx.engine.dispose()  # type: ignore[attr-defined]
        moved = [f for f in database.parent.iterdir() if f.name.startswith(database.name)]
        for f in moved:  # the file with its -wal and -shm: the WAL holds committed pages
            f.rename(away / f.name)
        database.mkdir()  # a folder where the file was: "unable to open database file"
        try:
            yield
        finally:
            database.rmdir()
            for f in moved:
                (away / f.name).rename(f)
        return
    assert PG_URL is not None
    name = make_url(url).database
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {result.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (root only)."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    path = tmp_path / "tmpfs"
    _mount(path, "4m")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the file system is full (ENOSPC)."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(chunk)
        with contextlib.suppress(OSError):  # the last few bytes, a page at a time
            while True:
                fh.write(b"\0" * 512)
    return filler


# --- a small world, counted ---------------------------------------------------------------------


class Issuance:
    """One issuer and achievement; every credential acknowledged with a 201 is remembered."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        world = World(client)
        issuer = world.issuer()
        self.slug: str = issuer["issuer"]["slug"]
        self.key: str = issuer["api_key"]["key"]
        self.achievement: str = world.achievement(self.key)["uuid"]
        self.acknowledged: list[str] = []

    def issue(self, client: TestClient | None = None) -> Any:
        response = (client or self.client).post(
            "/api/v1/credentials",
            json={"achievement_id": self.achievement, "recipient": {"email": "a@example.com"}},
            headers=bearer(self.key),
        )
        if response.status_code == 201:
            self.acknowledged.append(response.json()["id"])
        return response

    def all_there(self, client: TestClient) -> None:
        """Every acknowledged credential is stored, and nothing else was."""
        listed = client.get("/api/v1/credentials?limit=200", headers=bearer(self.key))
        assert listed.status_code == 200, listed.text
        ids = sorted(item["id"] for item in listed.json()["items"])
        assert ids == sorted(self.acknowledged)


# --- database gone ------------------------------------------------------------------------------


def test_database_gone_is_503_everywhere_and_the_service_recovers(
    own_database: str, tmp_path: Path
) -> None:
    settings = make_settings(own_database, tmp_path / "keys", health_cache_ttl=0)
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = Issuance(client)
        for _ in range(3):
            assert world.issue().status_code == 201
        credential_id = world.acknowledged[0]
        jwt = client.get(f"/api/v1/credentials/{credential_id}", headers=bearer(world.key))
        token = jwt.json()["jwt"]
        status_url = jwt.json()["credential"]["credentialStatus"]["statusListCredential"]
        assert _health(client)[0] == 200

        with _database_gone(own_database, client):
            attempts = [
                ("POST", "/api/v1/issuers", ADMIN, {"name": "N", "url": "https://n.example"}),
                ("GET", "/api/v1/issuers", ADMIN, None),
                ("GET", f"/api/v1/issuers/{world.slug}/keys", ADMIN, None),
                ("POST", f"/api/v1/issuers/{world.slug}/keys", ADMIN, None),
                ("GET", "/api/v1/credentials", bearer(world.key), None),
                ("GET", f"/api/v1/credentials/{credential_id}", bearer(world.key), None),
                (
                    "POST",
                    "/api/v1/credentials",
                    bearer(world.key),
                    {"achievement_id": world.achievement, "recipient": {"email": "b@example.com"}},
                ),
                ("POST", "/api/v1/verify", {}, {"credential": token}),
                ("GET", f"/issuers/{world.slug}", HTML, None),
                ("GET", f"/issuers/{world.slug}/did.json", {}, None),
                ("GET", f"/credentials/{credential_id}", HTML, None),
                ("GET", status_url.removeprefix(BASE_URL), {}, None),
                ("GET", "/api/v1/audit", ADMIN, None),
            ]
            for method, path, headers, body in attempts:
                response = client.request(method, path, headers=headers, json=body)
                _assert_503(response, "database")
            page = client.post("/verify", data={"credential": token})
            _assert_503(page, "database")
            status, body = _health(client)
            assert status == 503
            assert body["database"] == "unreachable"
            assert body["failed"] == ["database"]
            assert client.get("/health/live").status_code == 200

        # Back: no restart, the next requests are served.
        status, body = _health(client)
        assert status == 200, body
        assert world.issue().status_code == 201
        assert client.post("/api/v1/verify", json={"credential": token}).json()["verified"]
        world.all_there(client)
        assert len(world.acknowledged) == 4


def test_database_gone_at_the_cli_is_one_line_and_exit_2(own_database: str, tmp_path: Path) -> None:
    settings = make_settings(own_database, tmp_path / "keys")
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = Issuance(client)
        with _database_gone(own_database, client):
            for args in (
                ["issuer", "create", "--name", "X", "--url", "https://x.example"],
                ["keys", "rotate", "--issuer", world.slug],
            ):
                result = _microcred(args, own_database, tmp_path / "keys")
                assert result.returncode == 2, (args, result.stdout, result.stderr)
                assert "Traceback" not in result.stderr, result.stderr
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1, result.stderr
                assert "database unavailable" in lines[0]


def _microcred(args: list[str], database_url: str, keys: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MICROCRED_DATABASE_URL": database_url,
        "MICROCRED_KEYS_DIR": str(keys),
        "MICROCRED_BASE_URL": BASE_URL,
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "microcred"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# --- disk full ----------------------------------------------------------------------------------


def test_sqlite_disk_full_is_503_and_recovers(tmpfs: Path, sqlite_template: Path) -> None:
    database = tmpfs / "microcred.db"
    shutil.copy(sqlite_template, database)
    settings = make_settings(
        f"sqlite:///{database}",
        tmpfs / "keys",
        health_cache_ttl=0,
        health_min_free_bytes=256 * 1024,
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = Issuance(client)
        assert world.issue().status_code == 201
        filler = _fill(tmpfs)
        status, body = _health(client)
        assert status == 503
        assert body["disk"] == "unavailable"
        assert "disk" in body["failed"]
        # A new issuer needs a key file: the key store cannot write it.
        created = client.post(
            "/api/v1/issuers", json={"name": "Full", "url": "https://full.example"}, headers=ADMIN
        )
        _assert_503(created, "key_store")
        # A batch needs pages the file system no longer has: SQLITE_FULL.
        rows = [
            {
                "achievement_id": world.achievement,
                "recipient": {"email": f"r{n}@example.com", "name": "x" * 200},
            }
            for n in range(3000)
        ]
        batch = client.post("/api/v1/credentials/batch", json=rows, headers=bearer(world.key))
        _assert_503(batch, "database")
        for _ in range(5):
            assert world.issue().status_code in {201, 503}

        filler.unlink()
        status, body = _health(client)
        assert status == 200, body
        assert world.issue().status_code == 201
        assert (
            client.post(
                "/api/v1/issuers",
                json={"name": "Freed", "url": "https://freed.example"},
                headers=ADMIN,
            ).status_code
            == 201
        )
        names = [i["name"] for i in client.get("/api/v1/issuers", headers=ADMIN).json()]
        assert "Full" not in names  # no half-created issuer
        world.all_there(client)


# --- the key store ------------------------------------------------------------------------------


def _job_credentials(client: TestClient, world: Issuance) -> list[str]:
    """Credentials a job issued (to the batch's recipient), to count them as acknowledged."""
    listed = client.get("/api/v1/credentials?limit=200", headers=bearer(world.key)).json()
    return [i["id"] for i in listed["items"] if i["id"] not in world.acknowledged]


def _key_file(keys: Path) -> Path:
    [pem] = list(keys.glob("*.pem"))
    return pem


@pytest.mark.parametrize("fault", ["wrong_passphrase", "corrupt", "missing", "unreadable"])
def test_key_store_faults_are_503_and_recover(
    database_url: str, tmp_path: Path, fault: str
) -> None:
    keys = tmp_path / "keys"
    right = make_settings(
        database_url, keys, keys_passphrase=SecretStr(PASSPHRASE), health_cache_ttl=0
    )
    with TestClient(create_app(right), base_url=BASE_URL) as client:
        world = Issuance(client)
        assert world.issue().status_code == 201
        status_url = client.get(
            f"/api/v1/credentials/{world.acknowledged[0]}", headers=bearer(world.key)
        ).json()["credential"]["credentialStatus"]["statusListCredential"]
    pem = _key_file(keys)
    good = pem.read_bytes()
    settings = right
    if fault == "wrong_passphrase":
        settings = make_settings(
            database_url, keys, keys_passphrase=SecretStr("not the passphrase"), health_cache_ttl=0
        )
    elif fault == "corrupt":
        pem.write_bytes(good[:40] + b"garbage" + good[60:])
    elif fault == "missing":
        pem.unlink()
    elif ROOT:  # root reads any file whatever its mode: a folder in its place cannot be read
        pem.unlink()
        pem.mkdir()
    else:
        pem.chmod(0)

    # A fresh process (nothing cached): every signing needs the key file.
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        assert _health(client)[0] == 200  # nothing has needed the key yet
        _assert_503(world.issue(client), "key_store")
        _assert_503(client.get(status_url.removeprefix(BASE_URL)), "key_store")
        batch = client.post(
            "/api/v1/credentials/batch",
            json=[{"achievement_id": world.achievement, "recipient": {"email": "b@example.com"}}],
            headers=bearer(world.key),
        )
        assert batch.status_code == 202, batch.text  # queued: signed in the background
        job = batch.json()["id"]
        runner = client.app.state.job_runner  # type: ignore[attr-defined]
        with pytest.raises(KeyStoreUnavailable):
            runner.run_once()  # the runner's loop logs this and retries later
        pending = client.get(f"/api/v1/jobs/{job}", headers=bearer(world.key)).json()
        assert pending["state"] != "completed", pending
        status, body = _health(client)
        assert status == 503, body
        assert body["keys"] == "unavailable"
        assert body["failed"] == ["keys"]
        assert "key store" in body["detail"]
        # Verification needs no private key: it goes on.
        assert client.get(f"/issuers/{world.slug}/did.json").status_code == 200

        if fault == "wrong_passphrase":
            pass  # the passphrase is the process's: recovery is the restart below
        else:
            if pem.is_dir():
                pem.rmdir()
            pem.write_bytes(good)
            pem.chmod(0o600)
            status, body = _health(client)
            assert status == 200, body  # the failed key is read again: no restart
            assert world.issue(client).status_code == 201
            runner.run_until_idle()
            done = client.get(f"/api/v1/jobs/{job}", headers=bearer(world.key)).json()
            assert done["state"] == "completed", done
            assert done["issued"] == 1, done  # the row was kept, not failed by the outage
            world.acknowledged.extend(_job_credentials(client, world))

    with TestClient(create_app(right), base_url=BASE_URL) as client:
        assert _health(client)[0] == 200
        assert world.issue(client).status_code == 201
        if fault == "wrong_passphrase":
            client.app.state.job_runner.run_until_idle()  # type: ignore[attr-defined]
            done = client.get(f"/api/v1/jobs/{job}", headers=bearer(world.key)).json()
            assert done["issued"] == 1, done
            world.acknowledged.extend(_job_credentials(client, world))
        world.all_there(client)


def _read_only(folder: Path) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def remount() -> Iterator[None]:
        if ROOT:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            try:
                yield
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
        else:
            folder.chmod(0o500)
            try:
                yield
            finally:
                folder.chmod(0o700)

    return remount()


def test_read_only_keys_folder_is_503_on_issuer_creation_and_rotation(
    database_url: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    if ROOT:
        _mount(keys, "1m")
    try:
        # A 1 MiB folder: the free-space floor of /health is lowered to fit it.
        settings = make_settings(database_url, keys, health_cache_ttl=0, health_min_free_bytes=1024)
        with TestClient(create_app(settings), base_url=BASE_URL) as client:
            world = Issuance(client)
            assert world.issue().status_code == 201
            before = client.get("/api/v1/issuers", headers=ADMIN).json()
            with _read_only(keys):
                created = client.post(
                    "/api/v1/issuers",
                    json={"name": "RO", "url": "https://ro.example"},
                    headers=ADMIN,
                )
                _assert_503(created, "key_store")
                _assert_503(
                    client.post(f"/api/v1/issuers/{world.slug}/keys", headers=ADMIN), "key_store"
                )
                status, body = _health(client)
                assert status == 503
                assert body["keys"] == "unavailable"
                assert "keys" in body["failed"]
                # Signing with the key already loaded goes on.
                assert world.issue().status_code == 201
                assert client.get("/api/v1/issuers", headers=ADMIN).json() == before
                keys_listed = client.get(f"/api/v1/issuers/{world.slug}/keys", headers=ADMIN)
                assert len(keys_listed.json()) == 1  # no half-made rotation
                result = _microcred(
                    ["issuer", "create", "--name", "CLI", "--url", "https://cli.example"],
                    database_url,
                    keys,
                )
                assert result.returncode == 2, (result.stdout, result.stderr)
                assert result.stderr.strip().splitlines() == [result.stderr.strip()]
                assert "key store unavailable" in result.stderr, result.stderr
            assert _health(client)[0] == 200
            rotated = client.post(f"/api/v1/issuers/{world.slug}/keys", headers=ADMIN)
            assert rotated.status_code == 201, rotated.text
            assert world.issue().status_code == 201
            world.all_there(client)
    finally:
        if ROOT:
            subprocess.run(["umount", "-l", str(keys)], check=False)


def test_keys_folder_is_created_0700_and_key_files_0600(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "deeper" / "keys"
    with TestClient(create_app(make_settings(database_url, keys)), base_url=BASE_URL) as client:
        World(client).issuer()
    assert keys.stat().st_mode & 0o777 == 0o700
    for pem in keys.iterdir():
        assert pem.stat().st_mode & 0o777 == 0o600


# --- production start-up ------------------------------------------------------------------------


def _production(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "production",
        "base_url": "https://badges.example.org",
        "database_url": database_url,
        "keys_dir": tmp_path / "keys",
        "admin_token": SecretStr("an-operator-token-of-32-characters!"),
        "keys_passphrase": SecretStr(PASSPHRASE),
        "background_workers": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keys_passphrase": SecretStr("")}, "MICROCRED_KEYS_PASSPHRASE"),
        ({"keys_passphrase": SecretStr("   \t ")}, "MICROCRED_KEYS_PASSPHRASE"),
        ({"admin_token": SecretStr(" " * 30)}, "MICROCRED_ADMIN_TOKEN"),
        ({"admin_token": SecretStr("")}, "MICROCRED_ADMIN_TOKEN"),
        ({"admin_token": SecretStr("a" * 40)}, "MICROCRED_ADMIN_TOKEN"),
        ({"admin_token": SecretStr(" an-operator-token-of-32-characters! ")}, "blank-padded"),
        ({"admin_token": SecretStr("0123456789abcdefghijklm")}, "at least 24"),
    ],
)
def test_production_refuses_blank_and_weak_secrets(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _production(tmp_path, "sqlite:///x.db", **change)


@pytest.mark.parametrize("fault", ["wrong_passphrase", "missing", "corrupt"])
def test_production_start_up_refuses_an_active_key_that_does_not_load(
    database_url: str, tmp_path: Path, fault: str
) -> None:
    production = _production(tmp_path, database_url)
    create_app(production)  # starts: nothing wrong yet
    development = make_settings(
        database_url, tmp_path / "keys", keys_passphrase=SecretStr(PASSPHRASE)
    )
    with TestClient(create_app(development), base_url=BASE_URL) as client:
        issuer = World(client).issuer(name="Northwind", slug="northwind")
        kid = issuer["issuer"]["keys"][0]["key_id"]
    create_app(production)  # starts: the key decrypts
    pem = _key_file(tmp_path / "keys")
    if fault == "wrong_passphrase":
        production = _production(tmp_path, database_url, keys_passphrase=SecretStr("wrong one"))
    elif fault == "missing":
        pem.unlink()
    else:
        pem.write_bytes(pem.read_bytes()[:100])
    with pytest.raises(StartupRefused, match="issuer northwind, key") as refused:
        create_app(production)
    assert "\n" not in str(refused.value)
    assert kid in str(refused.value)


# --- /health: readiness cached, liveness free ---------------------------------------------------


def test_health_is_cached_and_liveness_touches_nothing(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "keys", health_cache_ttl=30)
    app = create_app(settings)
    statements: list[str] = []
    event.listen(
        app.state.ctx.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: statements.append(statement),
    )
    with TestClient(app, base_url=BASE_URL) as client:
        for _ in range(20):
            assert client.get("/health").status_code == 200
        assert statements.count("SELECT 1") == 1
        statements.clear()
        for _ in range(20):
            assert client.get("/health/live").json() == {"status": "ok"}
        assert statements == []


def test_postgresql_disk_full_is_503_and_recovers(own_database: str, tmp_path: Path) -> None:
    """The credentials table moved to a tablespace on a full tmpfs: PostgreSQL cannot extend
    it ("could not extend file": DiskFull, SQLSTATE 53100). Needs root and the server on this
    host (it must own the tablespace's folder)."""
    if not own_database.startswith("postgresql"):
        pytest.skip("the PostgreSQL server's own disk")
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no local PostgreSQL server (no postgres user) to own a tablespace")
    # Not below tmp_path: the server's user must be able to reach the folder (pytest's are 0700).
    folder = Path(tempfile.mkdtemp(prefix="microcred-tablespace-"))
    _mount(folder, "2m")
    os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    tablespace = f"full_{uuid.uuid4().hex[:10]}"
    admin = create_engine(own_database, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            try:
                conn.execute(text(f"CREATE TABLESPACE {tablespace} LOCATION '{folder}'"))
            except Exception as exc:  # a server on another host cannot see the folder
                pytest.skip(f"the server cannot use a local tablespace: {exc}")
            conn.execute(text(f"ALTER TABLE credentials SET TABLESPACE {tablespace}"))
        settings = make_settings(own_database, tmp_path / "keys", health_cache_ttl=0)
        with TestClient(create_app(settings), base_url=BASE_URL) as client:
            world = Issuance(client)
            assert world.issue().status_code == 201
            filler = _fill(folder)
            statuses = [world.issue().status_code for _ in range(40)]
            assert set(statuses) <= {201, 503}, statuses
            assert 503 in statuses, statuses
            refused = world.issue()
            _assert_503(refused, "database")
            filler.unlink()
            assert world.issue().status_code == 201
            assert _health(client)[0] == 200
            world.all_there(client)
    finally:
        with admin.connect() as conn:
            conn.execute(text("ALTER TABLE credentials SET TABLESPACE pg_default"))
            conn.execute(text(f"DROP TABLESPACE IF EXISTS {tablespace}"))
        admin.dispose()
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()

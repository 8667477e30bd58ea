"""Bulk issuance: batches over HTTP (JSON and CSV), jobs worked in chunks, exactly once.

The job runner is the real background thread of the app (TestClient runs the lifespan) or the
real `microcred worker` process, killed with SIGKILL in the middle of a job on PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.core.keys import public_key_from_jwk
from app.core.standards import schema_errors
from app.credentials.models import Credential
from app.jobs.models import Job
from app.main import create_app
from conftest import BASE_URL, World, bearer

WAIT = 180.0  # seconds a job may take on a slow CI machine


def csv_body(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def cohort(n: int, prefix: str = "learner") -> list[dict[str, str]]:
    return [
        {
            "external_id": f"{prefix}-{i}",
            "email": f"{prefix}{i}@example.com",
            "name": f"Learner {i}",
        }
        for i in range(1, n + 1)
    ]


def wait_for(client: TestClient, key: str, job_id: str, timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/jobs/{job_id}?rows=none", headers=bearer(key))
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] == "completed":
            return job
        assert time.monotonic() < deadline, f"job not completed in {timeout} s: {job}"
        time.sleep(0.2)


def all_rows(client: TestClient, key: str, job_id: str, rows: str = "all") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = ""
    while True:
        response = client.get(
            f"/api/v1/jobs/{job_id}?rows={rows}&limit=5000{after}", headers=bearer(key)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        out.extend(page["rows"])
        if page["next_rows_cursor"] is None:
            return out
        after = f"&after={page['next_rows_cursor']}"


def public_keys(client: TestClient, slug: str) -> dict[str, Any]:
    jwks = client.get(f"/issuers/{slug}/jwks.json").json()
    return {k["kid"]: public_key_from_jwk(k) for k in jwks["keys"]}


def assert_all_verify(jwts: list[str], keys: dict[str, Any], issuer_did: str) -> None:
    """Every token's signature with the issuer's published key (PyJWT, not our verifier)."""
    for token in jwts:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token, keys[header["kid"]], algorithms=["ES256"], options={"verify_aud": False}
        )
        assert claims["iss"] == issuer_did


@pytest.fixture
def batch_client(settings: Any) -> Iterator[TestClient]:
    app = create_app(
        settings.model_copy(update={"job_poll_interval": 0.2, "background_workers": True})
    )
    with TestClient(app, base_url=BASE_URL) as c:
        yield c


@pytest.mark.slow
def test_csv_cohort_of_10000_is_issued_once_and_resubmitting_issues_nothing(
    batch_client: TestClient, database_url: str
) -> None:
    world = World(batch_client)
    issuer = world.issuer(slug="mooc")
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    body = csv_body(cohort(10_000), ["external_id", "email", "name"])

    started = time.monotonic()
    response = batch_client.post(
        f"/api/v1/credentials/batch?achievement_id={achievement}",
        content=body,
        headers={**bearer(key), "Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert response.headers["location"] == submitted["url"]
    assert submitted["total"] == 10_000
    assert submitted["failed"] == 0
    assert submitted["rows"] == []
    job = wait_for(batch_client, key, submitted["id"])
    elapsed = time.monotonic() - started
    print(f"10,000-row CSV job on {database_url.split(':')[0]}: {elapsed:.1f} s")
    assert (job["issued"], job["existing"], job["failed"], job["pending"]) == (10_000, 0, 0, 0)

    rows = all_rows(batch_client, key, submitted["id"])
    assert [r["row"] for r in rows] == list(range(1, 10_001))
    assert {r["state"] for r in rows} == {"issued"}
    assert len({r["credential_id"] for r in rows}) == 10_000

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        stored = conn.execute(
            select(
                Credential.id,
                Credential.external_id,
                Credential.jwt,
                Credential.revocation_list_id,
                Credential.revocation_index,
            )
        ).all()
    engine.dispose()
    assert len(stored) == 10_000
    assert {str(s.id) for s in stored} == {r["credential_id"] for r in rows}
    assert len({(s.revocation_list_id, s.revocation_index) for s in stored}) == 10_000
    assert {s.external_id for s in stored} == {f"learner-{i}" for i in range(1, 10_001)}
    assert_all_verify(
        [s.jwt for s in stored], public_keys(batch_client, "mooc"), issuer["issuer"]["id"]
    )
    # The same credentials as single issuance: schema-valid and verified by our own verifier.
    for sample in random.sample(stored, 5):
        payload = jwt.decode(sample.jwt, options={"verify_signature": False})
        assert schema_errors(payload) == []
        result = world.verify(sample.jwt)
        assert result["verified"] is True, result

    again = batch_client.post(
        f"/api/v1/credentials/batch?achievement_id={achievement}",
        content=body,
        headers={**bearer(key), "Content-Type": "text/csv"},
    )
    assert again.status_code == 202, again.text
    second = wait_for(batch_client, key, again.json()["id"])
    assert (second["issued"], second["existing"], second["failed"]) == (0, 10_000, 0)
    first_ids = {r["external_id"]: r["credential_id"] for r in rows}
    for row in all_rows(batch_client, key, second["id"])[:50]:
        assert row["state"] == "existing"
        assert row["credential_id"] == first_ids[row["external_id"]]
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Credential)) == 10_000
    # One audit event per credential, on an unbroken chain (the links written in bulk hash the
    # same way the verifier recomputes them).
    with Session(engine) as session:
        report = verify_chain(session)
        issued_events = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.type == "credential.issued")
        )
    engine.dispose()
    assert report.intact, report
    assert issued_events == 10_000


def test_bad_rows_are_reported_by_row_number_and_the_rest_issued(
    batch_client: TestClient,
) -> None:
    world = World(batch_client)
    key = world.issuer()["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    rows = cohort(40)
    rows[6]["email"] = "not-an-email"  # row 7
    rows[19]["email"] = ""  # row 20: no recipient at all
    rows[32]["valid_until"] = "next tuesday"  # row 33
    body = csv_body(rows, ["external_id", "email", "name", "valid_until"])
    response = batch_client.post(
        "/api/v1/credentials/batch",
        params={"achievement_id": achievement},
        files={"file": ("cohort.csv", body, "text/csv")},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    submitted = response.json()
    refused = {r["row"]: r for r in submitted["rows"]}
    assert sorted(refused) == [7, 20, 33]
    assert refused[7]["error"].startswith("email:")
    assert refused[7]["external_id"] == "learner-7"
    assert "recipient" in refused[20]["error"] or "email" in refused[20]["error"]
    assert refused[33]["error"].startswith("valid_until:")
    job = wait_for(batch_client, key, submitted["id"])
    assert (job["issued"], job["failed"], job["total"]) == (37, 3, 40)
    failed = all_rows(batch_client, key, submitted["id"], rows="failed")
    assert [r["row"] for r in failed] == [7, 20, 33]
    assert all(r["credential_id"] is None for r in failed)


def test_json_batch_checks_each_row(batch_client: TestClient) -> None:
    world = World(batch_client)
    key = world.issuer()["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    other = world.issuer(slug="someone-else")
    foreign = world.achievement(other["api_key"]["key"])["uuid"]
    batch: list[Any] = [
        {"external_id": "a", "achievement_id": achievement, "recipient": {"did": "did:example:a"}},
        {
            "external_id": "b",
            "achievement_id": achievement,
            "recipient": {"url": "https://b.example/me"},
            "valid_until": "2099-01-01T00:00:00Z",
            "evidence": [{"narrative": "Built a dashboard."}],
        },
        {"external_id": "a", "achievement_id": achievement, "recipient": {"did": "did:example:a2"}},
        {"external_id": "c", "achievement_id": foreign, "recipient": {"email": "c@example.com"}},
        "not an object",
        {"achievement_id": achievement, "recipient": {"email": "d@example.com"}, "colour": "red"},
        {"recipient": {"email": "e@example.com"}},
    ]
    response = batch_client.post("/api/v1/credentials/batch", json=batch, headers=bearer(key))
    assert response.status_code == 202, response.text
    refused = {r["row"]: r["error"] for r in response.json()["rows"]}
    assert sorted(refused) == [3, 4, 5, 6, 7]
    assert "already appears at row 1" in refused[3]
    assert "no achievement" in refused[4]
    assert "JSON object" in refused[5]
    assert "colour" in refused[6]
    assert refused[7].startswith("achievement_id:")
    job = wait_for(batch_client, key, response.json()["id"])
    assert (job["issued"], job["failed"]) == (2, 5)
    issued = all_rows(batch_client, key, job["id"], rows="issued")
    cred = batch_client.get(
        f"/api/v1/credentials/{issued[1]['credential_id']}", headers=bearer(key)
    ).json()
    assert cred["credential"]["validUntil"] == "2099-01-01T00:00:00Z"
    assert cred["credential"]["evidence"][0]["narrative"] == "Built a dashboard."
    assert cred["credential"]["credentialSubject"]["id"] == "https://b.example/me"
    # Jobs are private to their issuer.
    assert (
        batch_client.get(
            f"/api/v1/jobs/{job['id']}", headers=bearer(other["api_key"]["key"])
        ).status_code
        == 404
    )
    listing = batch_client.get("/api/v1/jobs", headers=bearer(key)).json()
    assert [j["id"] for j in listing["items"]] == [job["id"]]


def test_batch_errors_are_problems(settings: Any) -> None:
    app = create_app(settings.model_copy(update={"batch_max_rows": 5, "batch_max_bytes": 4096}))
    with TestClient(app, base_url=BASE_URL) as client:
        world = World(client)
        key = world.issuer()["api_key"]["key"]
        achievement = world.achievement(key)["uuid"]
        auth = bearer(key)

        def post(content: bytes, content_type: str, **params: str) -> Any:
            return client.post(
                "/api/v1/credentials/batch",
                content=content,
                params=params,
                headers={**auth, "Content-Type": content_type},
            )

        cases = [
            (post(b"[{", "application/json"), 400, "not valid JSON"),
            (post(b'{"a": 1}', "application/json"), 400, "JSON array"),
            (post(b"[]", "application/json"), 400, "no rows"),
            (post(b"email,shoe_size\nx@example.com,9\n", "text/csv"), 400, "shoe_size"),
            (post(b"name\nAda\n", "text/csv"), 400, "recipient column"),
            (post(b"", "text/csv"), 400, "empty"),
            (post(b"\xff\xfe", "text/csv"), 400, "UTF-8"),
            (post(b"<rows/>", "application/xml"), 415, "Unsupported content type"),
            (
                post(
                    csv_body(cohort(6), ["external_id", "email"]),
                    "text/csv",
                    achievement_id=achievement,
                ),
                413,
                "at most 5",
            ),
            (post(b"x" * 5000, "text/csv"), 413, "exceeds the limit"),
            (
                post(b"email\na@example.com\n", "text/csv", achievement_id=str(uuid.uuid4())),
                404,
                "No achievement",
            ),
            (post(b"email\na@example.com\n", "text/csv", achievement_id="nope"), 422, ""),
        ]
        for response, status, words in cases:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert words in response.json()["detail"] or not words
        unauthenticated = client.post(
            "/api/v1/credentials/batch", content=b"[]", headers={"Content-Type": "application/json"}
        )
        assert unauthenticated.status_code == 401
        assert client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=auth).status_code == 404
        assert client.get("/api/v1/jobs/not-a-uuid", headers=auth).status_code == 404
        # Nothing half-written: no job exists after all these refusals.
        assert client.get("/api/v1/jobs", headers=auth).json()["items"] == []


@pytest.mark.slow
def test_cli_issues_a_csv_and_shows_the_job(
    tmp_path: Path, settings: Any, database_url: str
) -> None:
    app = create_app(settings.model_copy(update={"background_workers": False}))
    with TestClient(app, base_url=BASE_URL) as client:
        world = World(client)
        issuer_key = world.issuer(slug="cli-academy-2")["api_key"]["key"]
        achievement = world.achievement(issuer_key)["uuid"]
    rows = cohort(120)
    rows[4]["email"] = "broken"
    path = tmp_path / "cohort.csv"
    path.write_bytes(csv_body(rows, ["external_id", "email", "name"]))
    env = cli_env(database_url, settings.keys_dir, MICROCRED_JOB_CHUNK_SIZE="50")
    issue = ("issue", "--issuer", "cli-academy-2", "--achievement", achievement, "--csv", str(path))
    done = run_cli(env, *issue)
    assert done.returncode == 1, done.stderr  # one row failed: the exit code says so
    report = json.loads(done.stdout)
    assert (report["issued"], report["failed"], report["state"]) == (119, 1, "completed")
    assert [(r["row"], r["error"].split(":")[0]) for r in report["rows"]] == [(5, "email")]
    assert "119 issued" in done.stderr
    assert "1 failed" in done.stderr
    shown = run_cli(env, "jobs", "show", report["id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["issued"] == 119
    missing = run_cli(env, "jobs", "show", str(uuid.uuid4()))
    assert missing.returncode != 0
    assert "No job" in missing.stderr
    # Resubmitting the file issues nothing new (external ids), and exits 1 only for the bad row.
    again = run_cli(env, *issue)
    assert json.loads(again.stdout)["existing"] == 119


MICROCRED = str(Path(sys.executable).parent / "microcred")


def cli_env(database_url: str, keys_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `microcred` subprocess on the test's database and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
    env.update(
        MICROCRED_DATABASE_URL=database_url,
        MICROCRED_KEYS_DIR=str(keys_dir),
        MICROCRED_BASE_URL=BASE_URL,
        **extra,
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MICROCRED, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _count(url: str, sql: str, **params: Any) -> int:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text(sql), params) or 0)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_worker_process_joins_a_job_queued_elsewhere_at_once(
    settings: Any, database_url: str, tmp_path: Path
) -> None:
    """A job submitted to one process wakes the runners of the others (NOTIFY at commit), long
    before their next poll."""
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "LISTEN/NOTIFY is PostgreSQL's; on SQLite one process's runner is woken directly"
        )
    settings = settings.model_copy(update={"background_workers": False})
    env = cli_env(database_url, settings.keys_dir, MICROCRED_JOB_POLL_INTERVAL="60")
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    worker = subprocess.Popen([MICROCRED, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while b"worker: working jobs" not in log_path.read_bytes():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        time.sleep(2)  # its first look at the empty queue is over; it now waits up to 60 s
        app = create_app(settings)
        with TestClient(app, base_url=BASE_URL) as client:
            world = World(client)
            key = world.issuer(slug="elsewhere")["api_key"]["key"]
            achievement = world.achievement(key)["uuid"]
            response = client.post(
                f"/api/v1/credentials/batch?achievement_id={achievement}",
                json=[{"recipient": {"email": f"e{i}@example.com"}} for i in range(20)],
                headers=bearer(key),
            )
            assert response.status_code == 202, response.text
            queued = time.monotonic()
            job = wait_for(client, key, response.json()["id"], timeout=50)
            took = time.monotonic() - queued
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    assert job["state"] == "completed"
    assert job["issued"] == 20
    assert took < 50, f"picked up after {took:.1f} s: not woken, polled"


@pytest.mark.slow
def test_sigkill_mid_job_on_postgresql_then_resume_issues_every_row_exactly_once(
    settings: Any, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the crash test runs worker processes on PostgreSQL")
    settings = settings.model_copy(update={"background_workers": False, "batch_max_rows": 20_000})
    app = create_app(settings)
    with TestClient(app, base_url=BASE_URL) as client:
        world = World(client)
        issuer = world.issuer(slug="cohort-20k", suspension=True)
        key = issuer["api_key"]["key"]
        achievement = world.achievement(key)["uuid"]
        batch = [
            {"external_id": f"s-{i}", "recipient": {"email": f"s{i}@example.com"}}
            for i in range(20_000)
        ]
        response = client.post(
            f"/api/v1/credentials/batch?achievement_id={achievement}",
            content=json.dumps(batch),
            headers={**bearer(key), "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        keys = public_keys(client, "cohort-20k")

    env = cli_env(database_url, settings.keys_dir, MICROCRED_JOB_CHUNK_SIZE="250")
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([MICROCRED, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while _count(database_url, "SELECT count(*) FROM credentials") < 3_000:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not get going"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    stored = _count(database_url, "SELECT count(*) FROM credentials")
    settled = _count(database_url, "SELECT issued FROM jobs WHERE id = :j", j=job_id)
    pending = _count(
        database_url,
        "SELECT count(*) FROM job_rows WHERE job_id = :j AND state = 'pending'",
        j=job_id,
    )
    print(f"killed at {stored} credentials; {pending} rows pending")
    assert 0 < stored < 20_000, "the kill must land mid-job"
    # What the dead worker committed is whole: every stored credential is a settled row.
    assert stored == settled == 20_000 - pending

    # Two workers resume the job together (they share it through row locks).
    resumed = [
        subprocess.Popen(
            [MICROCRED, "worker", "--until-idle"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    for process in resumed:
        output, _ = process.communicate(timeout=WAIT)
        assert process.returncode == 0, output.decode()

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        job = conn.execute(select(Job).where(Job.id == uuid.UUID(job_id))).one()
        rows = conn.execute(
            select(
                Credential.external_id,
                Credential.jwt,
                Credential.revocation_list_id,
                Credential.revocation_index,
                Credential.suspension_list_id,
                Credential.suspension_index,
            )
        ).all()
        row_states = conn.execute(
            text("SELECT state, count(*) FROM job_rows WHERE job_id = :j GROUP BY state"),
            {"j": job_id},
        ).all()
        events = conn.scalar(
            text("SELECT count(*) FROM audit_events WHERE type = 'credential.issued'")
        )
    engine.dispose()
    assert (job.state, job.issued, job.failed, job.existing) == ("completed", 20_000, 0, 0)
    assert dict(row_states) == {"issued": 20_000}
    assert len(rows) == 20_000
    assert len({r.external_id for r in rows}) == 20_000
    assert len({(r.revocation_list_id, r.revocation_index) for r in rows}) == 20_000
    assert len({(r.suspension_list_id, r.suspension_index) for r in rows}) == 20_000
    assert events == 20_000
    assert_all_verify([r.jwt for r in rows], keys, issuer["issuer"]["id"])


def test_a_job_tells_webhooks_about_each_credential_and_its_completion(settings: Any) -> None:
    # Deliveries are only queued here (the receiver's port is closed and the dispatcher is off):
    # the signed sending itself is tested in test_webhooks.py.
    app = create_app(
        settings.model_copy(update={"fetch_allow_loopback": True, "background_workers": False})
    )
    with TestClient(app, base_url=BASE_URL) as client:
        world = World(client)
        key = world.issuer()["api_key"]["key"]
        achievement = world.achievement(key)["uuid"]
        endpoint = client.post(
            "/api/v1/webhooks",
            json={
                "url": "https://127.0.0.1:9/hooks",
                "events": ["credential.issued", "job.completed"],
            },
            headers=bearer(key),
        )
        assert endpoint.status_code == 201, endpoint.text
        rows = [
            {"external_id": f"w-{i}", "recipient": {"email": f"w{i}@example.com"}} for i in range(7)
        ]
        rows.append({"recipient": {"email": "broken"}})
        submitted = client.post(
            f"/api/v1/credentials/batch?achievement_id={achievement}",
            json=rows,
            headers=bearer(key),
        )
        assert submitted.status_code == 202, submitted.text
        app.state.job_runner.run_until_idle()
        deliveries = client.get(
            f"/api/v1/webhooks/{endpoint.json()['id']}/deliveries?limit=100", headers=bearer(key)
        ).json()["items"]
        kinds = sorted(d["event_type"] for d in deliveries)
        assert kinds == ["credential.issued"] * 7 + ["job.completed"]
        assert len({d["webhook_id"] for d in deliveries}) == 8

"""Bulk issuance on PostgreSQL: credentials/s of a whole job against sign + Core bulk insert.

For each size (10,000 and 100,000 by default) this run measures, on one fresh PostgreSQL database,
in rounds (3 by default; the median round is the figure), each round a pair measured back to back:

- the **ceiling**: the same number of credential payloads, built beforehand, then signed with the
  issuer's key (`app.core.jose.sign`) and stored with SQLAlchemy Core `insert()` executemany in
  chunks of 1,000, one commit per chunk, into a table shaped like `credentials` with the same
  indexes (`CREATE TABLE … (LIKE credentials INCLUDING ALL)`, so without its foreign keys): the
  raw rate of "sign and store" on this machine, in as many processes as the job has workers;
- the **job**: the rows submitted through `POST /api/v1/credentials/batch` (10,000 rows per
  request, the default limit) to `microcred worker` processes already running (one job thread
  each, as `serve --workers N` runs them) — parsing and checking every row, status-list indices,
  signing, the credentials, the audit chain, the per-row results — from the first request to the
  last job's `finished_at`.

`python -m bench.bulk [--sizes 10000,100000] [--workers 2] [--rounds 3]`. The database comes from
MICROCRED_BENCH_DATABASE_URL, else from `../shared/ci/ensure-postgres` (a fresh one).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine

from app.core import jose
from app.core.config import Settings
from app.core.db import utcnow
from app.core.migrate import upgrade
from app.credentials import builder
from app.main import create_app, freeze_heap

ROOT = Path(__file__).resolve().parent.parent
ENSURE_POSTGRES = ROOT.parent / "shared" / "ci" / "ensure-postgres"
ADMIN_TOKEN = "bench-admin-token-not-a-secret"
BASE_URL = "https://badges.example.org"
PER_REQUEST = 10_000
STARTUP_S = 6.0
ROUNDS = 3


@dataclass
class Round:
    """One ceiling run and, right after it, one job run of the same size."""

    ceiling_per_s: float
    submit_s: float
    total_s: float
    size: int

    @property
    def job_per_s(self) -> float:
        return self.size / self.total_s

    @property
    def ratio(self) -> float:
        return self.job_per_s / self.ceiling_per_s


@dataclass
class Figures:
    """A size's rounds; the figure is the median round (by ratio).

    This machine's speed drifts by half from one minute to the next (a virtual machine among
    others): a ceiling measured once and a job measured once can fall on different sides of a
    drift. Pairs measured back to back, several times, give a ratio that holds.
    """

    size: int
    rounds: list[Round]

    @property
    def median(self) -> Round:
        return sorted(self.rounds, key=lambda r: r.ratio)[len(self.rounds) // 2]

    @property
    def ceiling_per_s(self) -> float:
        return self.median.ceiling_per_s

    @property
    def job_per_s(self) -> float:
        return self.median.job_per_s

    @property
    def submit_s(self) -> float:
        return self.median.submit_s

    @property
    def total_s(self) -> float:
        return self.median.total_s

    @property
    def ratio(self) -> float:
        return self.median.ratio


def database_url() -> str:
    url = os.environ.get("MICROCRED_BENCH_DATABASE_URL")
    if url:
        return url
    done = subprocess.run([str(ENSURE_POSTGRES)], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def _setup(settings: Settings) -> tuple[TestClient, str, str, str]:
    app = create_app(settings)
    client = TestClient(app, base_url=BASE_URL)
    client.__enter__()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    issuer = client.post(
        "/api/v1/issuers",
        json={
            "name": "Cohort Academy",
            "url": "https://cohort.example",
            "slug": f"c{uuid.uuid4().hex[:8]}",
        },
        headers=admin,
    ).json()
    key = issuer["api_key"]["key"]
    achievement = client.post(
        "/api/v1/achievements",
        json={
            "name": "Data Analysis Fundamentals",
            "description": "Cleans, analyses and visualises data to answer business questions.",
            "criteria": {"narrative": "Passed the capstone project."},
        },
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    return client, key, achievement["uuid"], issuer["issuer"]["slug"]


def ceiling(url: str, settings: Settings, slug: str, size: int, processes: int) -> float:
    """Sign + Core bulk insert of `size` prebuilt credentials by `processes` processes; per second.

    Each process builds its share of the payloads first (not timed), then all start together on a
    barrier; the figure is the size over the wall time from the first start to the last commit.
    """
    engine = create_engine(url)
    with engine.begin() as conn:
        key_row = conn.execute(
            text(
                "SELECT k.id, k.key_id, i.id FROM signing_keys k JOIN issuers i ON i.id = k.issuer_id "
                "WHERE i.slug = :s AND k.status = 'active'"
            ),
            {"s": slug},
        ).one()
        achievement_id = conn.execute(
            text("SELECT id FROM achievements WHERE issuer_id = :i"), {"i": key_row[2]}
        ).scalar_one()
        conn.execute(text("DROP TABLE IF EXISTS bench_ceiling"))
        conn.execute(text("CREATE TABLE bench_ceiling (LIKE credentials INCLUDING ALL)"))
    engine.dispose()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    results: Any = context.Queue()
    share = -(-size // processes)
    workers = [
        context.Process(
            target=_ceiling_share,
            args=(
                url,
                settings,
                slug,
                tuple(key_row),
                achievement_id,
                n * share,
                min(size, (n + 1) * share),
                barrier,
                results,
            ),
        )
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans = [results.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    engine = create_engine(url)
    with engine.begin() as conn:
        stored = conn.execute(text("SELECT count(*) FROM bench_ceiling")).scalar_one()
        conn.execute(text("DROP TABLE bench_ceiling"))
    engine.dispose()
    if stored != size:
        raise SystemExit(f"the ceiling stored {stored} rows of {size}")
    return float(size / (max(end for _, end in spans) - min(begin for begin, _ in spans)))


def _ceiling_share(
    url: str,
    settings: Settings,
    slug: str,
    key_row: tuple[Any, Any, Any],
    achievement_id: uuid.UUID,
    first: int,
    last: int,
    barrier: Any,
    results: Any,
) -> None:
    from app.core.keys import KeyStore, SigningAlgorithm

    engine = create_engine(url)
    table = _ceiling_table(engine)
    private = KeyStore(settings.keys_dir, None).load(str(key_row[0]))
    kid = f"{settings.issuer_did(slug)}#{key_row[1]}"
    now = utcnow().replace(microsecond=0)
    profile = {
        "id": settings.issuer_did(slug),
        "type": ["Profile"],
        "name": "Cohort Academy",
        "url": "https://cohort.example",
    }
    achievement = {
        "id": f"{BASE_URL}/achievements/{achievement_id}",
        "type": ["Achievement"],
        "name": "Data Analysis Fundamentals",
        "description": "Cleans, analyses and visualises data to answer business questions.",
        "criteria": {"narrative": "Passed the capstone project."},
    }
    prepared = []
    for i in range(first, last):
        credential_id = uuid.uuid4()
        url_ = f"{BASE_URL}/status/{slug}/revocation/1"
        recipient = builder.Recipient(
            subject_id=f"urn:uuid:{uuid.uuid4()}",
            email_hash=builder.identity_hash(f"learner{i}@example.com", "00" * 16),
            salt="00" * 16,
            name=f"Learner {i}",
        )
        claims = builder.jwt_claims(
            builder.build_credential(
                credential_id=f"{BASE_URL}/credentials/{credential_id}",
                issuer_profile=profile,
                achievement=achievement,
                recipient=recipient,
                valid_from=now,
                valid_until=None,
                awarded=now,
                credential_status={
                    "id": f"{url_}#{i}",
                    "type": "BitstringStatusListEntry",
                    "statusPurpose": "revocation",
                    "statusListIndex": str(i),
                    "statusListCredential": url_,
                },
            )
        )
        prepared.append((credential_id, recipient, claims, i))
    barrier.wait()
    began = time.perf_counter()
    for start in range(0, len(prepared), 1000):
        rows = []
        for credential_id, recipient, claims, i in prepared[start : start + 1000]:
            token = jose.sign(claims, key=private, algorithm=SigningAlgorithm.ES256, kid=kid)
            rows.append(
                {
                    "id": credential_id,
                    "issuer_id": key_row[2],
                    "achievement_id": achievement_id,
                    "signing_key_id": key_row[0],
                    "subject_id": recipient.subject_id,
                    "recipient_hash": recipient.email_hash,
                    "recipient_salt": recipient.salt,
                    "recipient_name": recipient.name,
                    "valid_from": now,
                    "issued_at": now,
                    "jwt": token,
                    "external_id": f"ceiling-{i}",
                    "status": "active",
                    "revocation_index": i,
                    "recipient_name_hidden": False,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
    results.put((began, time.perf_counter()))
    engine.dispose()


def _ceiling_table(engine: Engine) -> Any:
    from sqlalchemy import MetaData, Table

    return Table("bench_ceiling", MetaData(), autoload_with=engine)


def job_run(
    client: TestClient,
    key: str,
    achievement: str,
    size: int,
    tag: str,
) -> tuple[float, float]:
    """Submit `size` rows (10,000 per request) to the running workers: (submit s, total s)."""
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = []
    for start in range(0, size, PER_REQUEST):
        rows = [
            {
                "external_id": f"{tag}-{i}",
                "recipient": {"email": f"learner{i}@example.com", "name": f"Learner {i}"},
            }
            for i in range(start, min(size, start + PER_REQUEST))
        ]
        bodies.append(json.dumps(rows).encode())
    started = time.time()
    job_ids = []
    for body in bodies:
        response = client.post(
            f"/api/v1/credentials/batch?achievement_id={achievement}",
            content=body,
            headers=auth,
        )
        if response.status_code != 202:
            raise SystemExit(f"batch refused: {response.status_code} {response.text[:500]}")
        job_ids.append(response.json()["id"])
    submitted = time.time() - started
    # The end is the last job's `finished_at`, stamped by the worker that completed it (same
    # machine, same clock): the API is asked rarely, so asking takes no CPU from the workers.
    pending = set(job_ids)
    finished: list[float] = []
    while pending:
        time.sleep(0.25)
        for job_id in list(pending):
            job = client.get(f"/api/v1/jobs/{job_id}?rows=none", headers=auth).json()
            if job["state"] == "completed":
                if job["issued"] != min(PER_REQUEST, size):
                    raise SystemExit(f"job not completed as expected: {job}")
                finished.append(datetime.fromisoformat(job["finished_at"]).timestamp())
                pending.discard(job_id)
    total = max(finished) - started
    return submitted, total


def run(sizes: list[int], workers: int, rounds: int = ROUNDS) -> list[Figures]:
    url = database_url()
    upgrade(url)
    workdir = Path(tempfile.mkdtemp(prefix="microcred-bulk-"))
    settings = Settings(
        base_url=BASE_URL,
        database_url=url,
        keys_dir=workdir / "keys",
        admin_token=ADMIN_TOKEN,
        background_workers=False,
        batch_max_rows=PER_REQUEST,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
    env.update(
        MICROCRED_DATABASE_URL=url,
        MICROCRED_KEYS_DIR=str(settings.keys_dir),
        MICROCRED_BASE_URL=BASE_URL,
        MICROCRED_BACKGROUND_WORKERS="false",
        MICROCRED_RATE_LIMITS_ENABLED="false",
    )
    if workers > 1:
        # One job thread per process, as `serve --workers N` runs them (see its comment).
        env["MICROCRED_JOB_THREADS"] = "1"
    client, key, achievement, slug = _setup(settings)
    freeze_heap()  # as `microcred serve` does once its app is built: this process is the API
    microcred = str(Path(sys.executable).parent / "microcred")
    # The workers are running before the cohort arrives, as the job runners of `serve` processes
    # are: their start-up is not part of the job. They wait for work (woken by NOTIFY) while the
    # ceiling runs.
    processes = [
        subprocess.Popen([microcred, "worker"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    out = []
    try:
        time.sleep(STARTUP_S)
        for process in processes:
            if process.poll() is not None:
                raise SystemExit("a worker exited at start-up")
        for size in sizes:
            figures = Figures(size, [])
            for n in range(rounds):
                top = ceiling(url, settings, slug, size, workers)
                submitted, total = job_run(client, key, achievement, size, f"r{size}-{n}")
                figures.rounds.append(Round(top, submitted, total, size))
                print(
                    f"  {size:,} rows, round {n + 1}: ceiling {top:,.0f}/s, "
                    f"job {size / total:,.0f}/s ({size / total / top:.0%})",
                    flush=True,
                )
            out.append(figures)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        client.__exit__(None, None, None)
    return out


def report(figures: list[Figures], workers: int) -> str:
    lines = [
        f"bulk issuance on PostgreSQL: job with {workers} worker process(es) vs sign + Core insert "
        f"in {workers} process(es), median of {len(figures[0].rounds) if figures else 0} rounds; "
        "goal >= 50 %",
        f"{'rows':>8} {'ceiling sign+insert/s':>22} {'job credentials/s':>18} {'submit s':>9} {'total s':>8} {'ratio':>7}",
    ]
    for f in figures:
        lines.append(
            f"{f.size:>8,} {f.ceiling_per_s:>22,.0f} {f.job_per_s:>18,.0f} {f.submit_s:>9.1f} {f.total_s:>8.1f} {f.ratio:>6.0%}"
        )
    return "\n".join(lines)


QUICK_SIZES = [2_000]


def section(options: Any) -> list[Any]:
    """The `bulk` section of `python -m bench.run`: 10,000 and 100,000 rows (2,000 when quick)."""
    from bench.common import Figure

    workers = os.cpu_count() or 1
    figures = run(QUICK_SIZES if options.quick else [10_000, 100_000], workers)
    print(report(figures, workers))
    return [
        Figure(
            name=f"bulk {f.size:,} rows ({workers} workers)",
            measured=f"{f.job_per_s:,.0f}/s",
            ceiling=f"{f.ceiling_per_s:,.0f}/s sign+insert",
            ratio=f"{f.ratio:.0%}",
            goal=">= 50%",
            passed=f.ratio >= 0.5,
            backend="postgresql",
        )
        for f in figures
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes for the job, and processes for the ceiling (default: one per core)",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="ceiling/job pairs per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(report(run(sizes, args.workers, args.rounds), args.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Verify latency with 10 million stored credentials against 10 thousand (PostgreSQL).

One fresh PostgreSQL database and one server (1 uvicorn worker). Real credentials are issued
over HTTP; `bench.seed` adds filler rows of the same issuer until `credentials` holds 10,000
rows; the verify API is measured on the real credentials in turn: sequentially (one request at a
time, p50/p99) and at 8 connections. Then filler up to 10,000,000 rows (VACUUM ANALYZE,
CHECKPOINT: see bench/seed.py), a server
restart (fresh connections and plans), and the same measurements again.

Goal: the sequential p50 at 10M within 20 % of the one at 10k. Both runs are warmed the same
way first (one pass over every credential), so that what differs is the table's size.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench import seed
from bench.common import (
    Figure,
    Options,
    Rate,
    create_fixture,
    fmt_ms,
    fmt_rate,
    fresh_database,
    issue_body,
    load,
    load_client,
    machine_note,
    migrate,
    ok,
    print_rates,
    running_server,
    sequential,
)

GOAL = 1.20
CONCURRENT_CONNECTIONS = 8
MIN_FREE_BYTES = 30 * 1024**3


def _issue(base_url: str, api_key: str, achievement_id: str, n: int) -> list[str]:
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        return [
            ok(
                client.post(
                    "/api/v1/credentials", headers=auth, json=issue_body(achievement_id, 100 + i)
                )
            ).json()["jwt"]
            for i in range(n)
        ]


def _measure(base_url: str, bodies: list[str], rows: int, options: Options) -> list[Rate]:
    label = f"{rows:,} rows"
    warm = sequential(base_url, "warm-up", "/api/v1/verify", bodies, rounds=len(bodies))
    if warm.errors:
        raise SystemExit(f"bench: verify failed while warming up: {warm.first_error}")
    alone = sequential(
        base_url,
        f"verify, sequential, {label}",
        "/api/v1/verify",
        bodies,
        rounds=options.scale_requests,
    )
    together = load(
        base_url,
        f"verify, {CONCURRENT_CONNECTIONS} conns, {label}",
        "/api/v1/verify",
        options,
        method="POST",
        bodies=bodies,
        connections=CONCURRENT_CONNECTIONS,
        seconds=max(3, options.wrk_seconds // 2),
    )
    return [alone, together]


def _table_size(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT pg_size_pretty(pg_total_relation_size('credentials'))")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def section(options: Options) -> list[Figure]:
    free = shutil.disk_usage(tempfile.gettempdir()).free
    print(f"scale — free disk before seeding: {free / 1024**3:.0f} GiB")
    if options.scale_large >= 1_000_000 and free < MIN_FREE_BYTES:
        raise SystemExit("bench: less than 30 GiB free; not seeding millions of rows")
    small, large = options.scale_small, options.scale_large
    with tempfile.TemporaryDirectory(prefix="microcred-bench-scale-") as tmp:
        workdir = Path(tmp)
        with fresh_database(workdir, need_postgres=True) as database:
            migrate(workdir, database.url)
            engine = create_engine(database.url)
            try:
                with running_server(workdir, database.url) as server:
                    port = server.port
                    fixture = create_fixture(server.base_url)
                    more = _issue(server.base_url, fixture.api_key, fixture.achievement_id, 99)
                    tokens = [fixture.jwt, *more]
                    bodies = [json.dumps({"credential": t}) for t in tokens]
                    seeded_small = seed.seed(engine, slug=fixture.slug, total=small)
                    before = _measure(server.base_url, bodies, seeded_small.total, options)
                size_small = _table_size(database.url)
                print(
                    f"seeding up to {large:,} rows (INSERT … SELECT generate_series, "
                    f"{seed.LIST_SIZE:,} rows a statement):"
                )
                seeded = seed.seed(engine, slug=fixture.slug, total=large, progress=print)
                size_large = _table_size(database.url)
                with running_server(workdir, database.url, port=port) as server:
                    after = _measure(server.base_url, bodies, seeded.total, options)
            finally:
                engine.dispose()
    print()
    print(
        f"scale — server: 1 uvicorn worker, PostgreSQL; {len(tokens)} real credentials verified "
        f"in turn; sequential: one keep-alive httpx connection, {options.scale_requests} "
        f"requests; concurrent: {load_client(options, CONCURRENT_CONNECTIONS)}; {machine_note()}"
    )
    print(
        f"seeded {seeded.inserted:,} filler rows in {seeded.seconds:.0f} s "
        f"({seeded.per_second:,.0f} rows/s), then VACUUM ANALYZE + CHECKPOINT in "
        f"{seeded.settle_seconds:.0f} s; credentials table "
        f"{size_small} at {seeded_small.total:,} rows, {size_large} at {seeded.total:,}"
    )
    print()
    print_rates([*before, *after])
    print()
    alone_small, together_small = before
    alone_large, together_large = after
    p50_small, p50_large = alone_small.percentile(50), alone_large.percentile(50)
    p99_small, p99_large = alone_small.percentile(99), alone_large.percentile(99)
    if p50_small is None or p50_large is None or p99_small is None or p99_large is None:
        raise SystemExit("bench: too few sequential requests for percentiles")
    ratio = p50_large / p50_small
    print(
        f"sequential p50 {fmt_ms(p50_small)} ms at {seeded_small.total:,} rows vs "
        f"{fmt_ms(p50_large)} ms at {seeded.total:,} = {ratio:.2f} (goal ≤ {GOAL:.2f}: "
        f"{'met' if ratio <= GOAL else 'MISSED'}); p99 {fmt_ms(p99_small)} vs "
        f"{fmt_ms(p99_large)} ms = {p99_large / p99_small:.2f}; {CONCURRENT_CONNECTIONS} conns "
        f"{fmt_rate(together_small.per_second)} vs {fmt_rate(together_large.per_second)} req/s"
    )
    errors = any(r.errors for r in (*before, *after))
    return [
        Figure(
            name=f"verify p50 at {seeded.total / 1e6:g}M rows vs {seeded_small.total / 1e3:g}k",
            measured=f"{fmt_ms(p50_large)} ms",
            ceiling=f"{fmt_ms(p50_small)} ms at {seeded_small.total / 1e3:g}k",
            ratio=f"{ratio:.2f}",
            goal=f"≤ {GOAL:.2f}",
            passed=ratio <= GOAL and not errors,
            backend="PostgreSQL",
        )
    ]

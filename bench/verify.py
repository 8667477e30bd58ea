"""Verify API throughput against what HTTP and the verification itself cost, in one run.

One server (`microcred serve`, 1 uvicorn worker) on a fresh database; an ES256 issuer, an
achievement and a credential made over HTTP. Measured:

- `GET /health` at 64 connections: the HTTP floor of this server (a request, a database slot, a
  worker thread, a ping);
- `POST /api/v1/verify` of the credential at 64 connections (req/s, p50/p99);
- `POST /api/v1/credentials` the same way (issuing; no goal here, for reference);
- in this process, with the server idle: `jose.verify` alone (the signature), and the full
  service verification as the API runs it (`app.verify.router._verify_in_session`: a session,
  the key and record read, every check, the result model) — the API's work minus HTTP.

The ceiling combines the two costs a request cannot avoid: 1 / (1/health + 1/in-process service
verify). Goal: the API at ≥ 50 % of it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import (
    Figure,
    Options,
    Rate,
    create_fixture,
    fmt_rate,
    fresh_database,
    issue_body,
    load,
    load_client,
    machine_note,
    migrate,
    print_rates,
    running_server,
    timed_loop,
)

GOAL = 0.50


def in_process(
    database_url: str, keys_dir: Path, base_url: str, token: str, seconds: float
) -> tuple[Rate, Rate]:
    """(jose.verify alone, the full service verification) in this process, one thread."""
    from app.core import jose
    from app.core.config import Settings
    from app.core.context import AppContext
    from app.models import load_all_models
    from app.verify.router import _verify_in_session

    load_all_models()
    settings = Settings(
        database_url=database_url,
        keys_dir=keys_dir,
        base_url=base_url,
        background_workers=False,
    )
    ctx = AppContext.build(settings)
    try:
        result = _verify_in_session(ctx, token)
        if not result.verified:
            raise SystemExit(f"bench: in-process verification disagrees with the API: {result}")
        key = next(iter(ctx.public_keys.values()))  # parsed by that verification
        raw = timed_loop("jose.verify ES256 (in-process)", lambda: jose.verify(token, key), seconds)
        service = timed_loop(
            "service verify (in-process, full Verifier)",
            lambda: _verify_in_session(ctx, token),
            seconds,
        )
    finally:
        ctx.close()
    return raw, service


def section(options: Options) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="microcred-bench-verify-") as tmp:
        workdir = Path(tmp)
        with fresh_database(workdir) as database:
            migrate(workdir, database.url)
            with running_server(workdir, database.url) as server:
                fixture = create_fixture(server.base_url)
                verify_body = json.dumps({"credential": fixture.jwt})
                health = load(server.base_url, "GET /health (HTTP floor)", "/health", options)
                verify = load(
                    server.base_url,
                    "POST /api/v1/verify",
                    "/api/v1/verify",
                    options,
                    method="POST",
                    bodies=[verify_body],
                )
                issue = load(
                    server.base_url,
                    "POST /api/v1/credentials (issue, reference)",
                    "/api/v1/credentials",
                    options,
                    method="POST",
                    bodies=[json.dumps(issue_body(fixture.achievement_id, 1))],
                    headers={"Authorization": f"Bearer {fixture.api_key}"},
                    expect=201,
                )
                base_url = server.base_url
            # The server is stopped: the in-process loops have the machine to themselves.
            raw, service = in_process(
                database.url, workdir / "keys", base_url, fixture.jwt, options.in_process_seconds
            )
            backend = database.backend
    ceiling = 1 / (1 / health.per_second + 1 / service.per_second)
    ratio = verify.per_second / ceiling
    print(
        f"verify — server: 1 uvicorn worker, {backend}, ES256 issuer; client: "
        f"{load_client(options)}, on the same machine; JWT {len(fixture.jwt)} bytes; "
        f"{machine_note()}"
    )
    print()
    print_rates([health, verify, issue, raw, service])
    print()
    print(
        f"ceiling = 1 / (1/health {fmt_rate(health.per_second)} + 1/service verify "
        f"{fmt_rate(service.per_second)}) = {fmt_rate(ceiling)} req/s  (the service verify is "
        "the API's work minus HTTP; jose.verify alone is the signature)"
    )
    print(
        f"verify API {fmt_rate(verify.per_second)} req/s = {ratio:.0%} of the ceiling "
        f"(goal ≥ {GOAL:.0%}: {'met' if ratio >= GOAL else 'MISSED'})"
    )
    errors = [r for r in (health, verify, issue) if r.errors]
    return [
        Figure(
            name="verify API req/s (64 conns)",
            measured=f"{fmt_rate(verify.per_second)} req/s",
            ceiling=f"{fmt_rate(ceiling)} req/s",
            ratio=f"{ratio:.0%}",
            goal=f"≥ {GOAL:.0%}",
            passed=ratio >= GOAL and not errors,
            backend=backend,
        )
    ]

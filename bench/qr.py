"""QR images served from the in-memory cache against rendered on every request.

Two servers on one fresh database, one after the other, asked for the same credential's QR code
(PNG, then SVG) at 64 connections:

- **cached**: the default server; after the first request the image is in memory and a request
  is answered on the event loop (no database read, no worker thread);
- **uncached**: the same server with `MICROCRED_QR_CACHE_SIZE=0`: every request reads the
  record (404 for unknown ids) and renders the image in a worker thread.

Uncached is a server without a cache rather than many distinct credentials each asked once: the
same URL, the same record and the same image on both sides, so the only difference measured is
the cache, and no fixture of thousands of credentials (whose issuing would dominate the run) is
needed. `If-None-Match` is checked to answer 304. Goal: cached ≥ 30 x uncached.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from bench.common import (
    Figure,
    Options,
    Rate,
    create_fixture,
    fmt_rate,
    fresh_database,
    load,
    load_client,
    machine_note,
    migrate,
    print_rates,
    running_server,
)

GOAL = 30.0
KINDS = ("png", "svg")


def _check_conditional(base_url: str, path: str) -> str:
    """The cached image's ETag, after checking that If-None-Match answers 304 with the headers."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        first = client.get(path)
        etag = str(first.headers.get("etag", ""))
        again = client.get(path, headers={"If-None-Match": etag})
        unknown = client.get("/credentials/00000000-0000-4000-8000-000000000000/qr.png")
    if first.status_code != 200 or not etag.startswith('"'):
        raise SystemExit(f"bench: {path} answered {first.status_code} with ETag {etag!r}")
    if again.status_code != 304 or again.headers.get("etag") != etag:
        raise SystemExit(f"bench: If-None-Match on {path} answered {again.status_code}, not 304")
    if "immutable" not in again.headers.get("cache-control", ""):
        raise SystemExit(f"bench: {path} lost its Cache-Control on 304")
    if unknown.status_code != 404:
        raise SystemExit(f"bench: an unknown credential's QR code answered {unknown.status_code}")
    return etag


def section(options: Options) -> list[Figure]:
    cached: dict[str, Rate] = {}
    uncached: dict[str, Rate] = {}
    with tempfile.TemporaryDirectory(prefix="microcred-bench-qr-") as tmp:
        workdir = Path(tmp)
        with fresh_database(workdir) as database:
            migrate(workdir, database.url)
            with running_server(workdir, database.url) as server:
                port = server.port
                fixture = create_fixture(server.base_url)
                paths = {k: f"/credentials/{fixture.credential_id}/qr.{k}" for k in KINDS}
                etag = _check_conditional(server.base_url, paths["png"])
                for kind in KINDS:
                    cached[kind] = load(
                        server.base_url, f"GET qr.{kind}, cached", paths[kind], options
                    )
                not_modified = load(
                    server.base_url,
                    "GET qr.png, cached, If-None-Match (304)",
                    paths["png"],
                    options,
                    headers={"If-None-Match": etag},
                )
            # Same port, so that the credential's URL (the QR code's content) is the same.
            with running_server(
                workdir, database.url, port=port, MICROCRED_QR_CACHE_SIZE="0"
            ) as server:
                for kind in KINDS:
                    uncached[kind] = load(
                        server.base_url,
                        f"GET qr.{kind}, uncached (cache size 0)",
                        paths[kind],
                        options,
                    )
            backend = database.backend
    print(
        f"qr — server: 1 uvicorn worker, {backend}; client: {load_client(options)}, on the "
        f"same machine; {machine_note()}"
    )
    print()
    print_rates([cached["png"], not_modified, uncached["png"], cached["svg"], uncached["svg"]])
    print()
    figures = []
    for kind in KINDS:
        ratio = cached[kind].per_second / uncached[kind].per_second
        print(
            f"qr.{kind}: cached {fmt_rate(cached[kind].per_second)} req/s vs uncached "
            f"{fmt_rate(uncached[kind].per_second)} req/s = {ratio:.0f}x "
            f"(goal ≥ {GOAL:.0f}x: {'met' if ratio >= GOAL else 'MISSED'})"
        )
        errors = cached[kind].errors or uncached[kind].errors or not_modified.errors
        figures.append(
            Figure(
                name=f"qr.{kind} cached vs uncached",
                measured=f"{fmt_rate(cached[kind].per_second)} req/s",
                ceiling=f"{fmt_rate(uncached[kind].per_second)} req/s uncached",
                ratio=f"{ratio:.0f}x",
                goal=f"≥ {GOAL:.0f}x",
                passed=ratio >= GOAL and not errors,
                backend=backend,
            )
        )
    return figures

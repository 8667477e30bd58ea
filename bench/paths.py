"""The hot paths side by side with a minimal implementation (bench/reference.py), in one run.

For each backend (SQLite, then PostgreSQL when one is available) two servers run on this
machine, one uvicorn worker each (uvloop, httptools; bench/serve.py): microcred on a fresh,
migrated database, and the reference app on a database of its own on the same engine. An
ES256 issuer, an achievement and a credential are made over microcred's API; the reference
checks that same credential with the issuer's published key. Then, in rounds, each path is
loaded with wrk at 64 connections on one server and right after on the other (the order
alternating between rounds, so drift of this shared machine falls on both alike):

| path | reference | microcred |
|---|---|---|
| `GET /health` | a constant | liveness |
| `POST /api/v1/verify` (our credential) | PyJWT signature check | every check |
| `GET /credentials/{id}` (HTML) | signature check + tiny page | the page, live status |
| `POST /api/v1/credentials` | PyJWT sign + 1 row + commit | issue |

The ratio of a round is microcred's req/s over the reference's; the figure is the median round
(spread: the lowest and highest round). After the rounds, the loop-stall probe of
bench/serve.py runs on both servers while each path is loaded once more: the longest single
event-loop callback (a request's work between two awaits) must stay under 5 ms. Last, microcred's
audit chain is verified (`microcred audit verify`) after all that issuing.

Goals (issue 13), as ratios to the reference: verify ≥ 1.0, page ≥ 0.5, health ≥ 0.8, issuance
≥ 0.5; verify's p99 ≤ 3 times its p50; no loop callback over 5 ms.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ROOT,
    Database,
    Figure,
    Options,
    Rate,
    Server,
    _stop,
    _wait_until_healthy,
    create_fixture,
    fmt_ms,
    fmt_rate,
    fresh_database,
    have_wrk,
    issue_body,
    load,
    load_client,
    machine_note,
    microcred_executable,
    migrate,
    server_env,
)
from bench.common import free_port as _free_port

STALL_MS = 5.0
TAIL = 3.0


@dataclass(frozen=True)
class HotPath:
    key: str
    label: str
    goal: float
    method: str = "GET"
    expect: int = 200


PATHS = (
    HotPath("health", "GET /health", 0.8),
    HotPath("verify", "POST /api/v1/verify", 1.0, "POST"),
    HotPath("page", "GET /credentials/{id} (HTML)", 0.5),
    HotPath("issue", "POST /api/v1/credentials", 0.5, "POST", 201),
)


@dataclass
class Probed:
    """One server of the comparison and, when it is a probe server, the file its probe writes."""

    name: str
    server: Server
    stats: Path | None

    def signal(self, signum: int) -> None:
        self.server.process.send_signal(signum)

    def probe_report(self) -> dict[str, Any]:
        if self.stats is None:
            raise SystemExit(f"bench: {self.name} runs without a probe")
        for _ in range(50):
            if self.stats.exists():
                data: dict[str, Any] = json.loads(self.stats.read_text())
                return data
            time.sleep(0.1)
        raise SystemExit(f"bench: {self.name}'s loop probe wrote no report")


@dataclass
class Comparison:
    """Every round of one path on one backend."""

    path: HotPath
    ours: list[Rate] = field(default_factory=list)
    reference: list[Rate] = field(default_factory=list)
    ours_probe: dict[str, Any] = field(default_factory=dict)
    reference_probe: dict[str, Any] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [
            o.per_second / r.per_second if r.per_second else 0.0
            for o, r in zip(self.ours, self.reference, strict=True)
        ]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def median_rate(self, rates: list[Rate]) -> Rate:
        return sorted(rates, key=lambda r: r.per_second)[len(rates) // 2]

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.ours + self.reference)


@contextmanager
def served(
    name: str, app: str, workdir: Path, env: dict[str, str], port: int, *, probe: bool = False
) -> Iterator[Probed]:
    """`python -m bench.serve APP` on 127.0.0.1:`port` (`probe`: its loop-stall probe), stopped afterwards."""
    stats = workdir / f"{name}-probe.json" if probe else None
    log_path = workdir / f"{name}-{port}.log"
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "bench.serve", app, "--port", str(port)]
    if stats is not None:
        command += ["--probe", str(stats)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log)
        server = Server(f"http://127.0.0.1:{port}", port, process, log_path)
        try:
            _wait_until_healthy(server)
            yield Probed(name, server, stats)
        except BaseException:
            log.flush()
            print(f"bench: {name} log (tail):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
            raise
        finally:
            _stop(process)


def _reference_env(
    workdir: Path, database_url: str, jwk: dict[str, Any], pages: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROCRED_", "BENCH_REF_"))}
    env.update(
        {
            "BENCH_REF_DATABASE_URL": database_url,
            "BENCH_REF_JWK": json.dumps(jwk),
            "BENCH_REF_CREDENTIALS": str(pages),
        }
    )
    return env


def _phase(
    server: Probed, path: HotPath, fixture: Any, options: Options, seconds: float, label: str
) -> Rate:
    page = f"/credentials/{fixture.credential_id}"
    if path.key == "health":
        return load(server.server.base_url, label, "/health", options, seconds=seconds)
    if path.key == "verify":
        body = json.dumps({"credential": fixture.jwt})
        return load(
            server.server.base_url, label, "/api/v1/verify", options,
            method="POST", bodies=[body], seconds=seconds,
        )  # fmt: skip
    if path.key == "page":
        return load(
            server.server.base_url, label, page, options,
            headers={"Accept": "text/html"}, seconds=seconds,
        )  # fmt: skip
    bodies = [json.dumps(issue_body(fixture.achievement_id, i)) for i in range(1, 101)]
    return load(
        server.server.base_url, label, "/api/v1/credentials", options,
        method="POST", bodies=bodies, seconds=seconds, expect=201,
        headers={"Authorization": f"Bearer {fixture.api_key}"},
    )  # fmt: skip


def _check_same_answers(ours: Probed, reference: Probed, fixture: Any) -> None:
    """Both servers answer each path as the comparison assumes (a bench of errors proves nothing)."""
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        for server in (ours, reference):
            base = server.server.base_url
            verdict = http.post(f"{base}/api/v1/verify", json={"credential": fixture.jwt})
            if verdict.status_code != 200 or verdict.json().get("verified") is not True:
                raise SystemExit(
                    f"bench: {server.name} does not verify the credential: {verdict.text}"
                )
            page = http.get(
                f"{base}/credentials/{fixture.credential_id}", headers={"Accept": "text/html"}
            )
            if page.status_code != 200 or "text/html" not in page.headers.get("content-type", ""):
                raise SystemExit(f"bench: {server.name}'s credential page: HTTP {page.status_code}")


def compare(
    database: Database, ref_database: Database, workdir: Path, options: Options, rounds: int
) -> list[Comparison]:
    migrate(workdir, database.url)
    ours_port = _free_port()
    with ExitStack() as stack:
        ours = stack.enter_context(
            served(
                "microcred",
                "app.main:serving_app",
                workdir,
                server_env(workdir, database.url, ours_port),
                ours_port,
            )
        )
        fixture = create_fixture(ours.server.base_url)
        with httpx.Client(base_url=ours.server.base_url, timeout=30.0, trust_env=False) as http:
            jwks = http.get(f"/issuers/{fixture.slug}/jwks.json").json()
        jwk = next(k for k in jwks["keys"] if k.get("kid") == fixture.kid)
        pages = workdir / "reference-pages.json"
        pages.write_text(json.dumps({fixture.credential_id: fixture.jwt}))
        ref_port = _free_port()
        reference = stack.enter_context(
            served(
                "reference",
                "bench.reference:create_app",
                workdir,
                _reference_env(workdir, ref_database.url, jwk, pages),
                ref_port,
            )
        )
        _check_same_answers(ours, reference, fixture)
        comparisons = [Comparison(p) for p in PATHS]
        warm = 1.0
        for c in comparisons:  # warm both (imports, caches, pools), not counted
            for server in (ours, reference):
                _phase(server, c.path, fixture, options, warm, "warm-up")
        for n in range(rounds):
            for c in comparisons:
                order = (ours, reference) if n % 2 == 0 else (reference, ours)
                for server in order:
                    rate = _phase(
                        server, c.path, fixture, options, options.wrk_seconds, c.path.label
                    )
                    (c.ours if server is ours else c.reference).append(rate)
            print(
                f"  {database.backend} round {n + 1}/{rounds}: "
                + ", ".join(f"{c.path.key} {c.ratios[-1]:.2f}×" for c in comparisons),
                flush=True,
            )
        # The loop-stall probe: the same apps on asyncio's loop, each callback timed.
        ours_probe = stack.enter_context(
            served(
                "microcred-probe",
                "app.main:serving_app",
                workdir,
                server_env(workdir, database.url, ours_port),  # the same base URL
                _free_port(),
                probe=True,
            )
        )
        ref_probe = stack.enter_context(
            served(
                "reference-probe",
                "bench.reference:create_app",
                workdir,
                _reference_env(workdir, ref_database.url, jwk, pages),
                _free_port(),
                probe=True,
            )
        )
        probe_seconds = min(3.0, float(options.wrk_seconds))
        for c in comparisons:
            for server in (ours_probe, ref_probe):
                _phase(server, c.path, fixture, options, warm, "warm-up")
                if server.stats is not None:
                    server.stats.unlink(missing_ok=True)
                server.signal(signal.SIGUSR1)
                _phase(server, c.path, fixture, options, probe_seconds, "probe")
                server.signal(signal.SIGUSR2)
                report = server.probe_report()
                if server is ours_probe:
                    c.ours_probe = report
                else:
                    c.reference_probe = report
    audit = subprocess.run(
        [microcred_executable(), "audit", "verify"],
        env=server_env(workdir, database.url, ours_port),
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    print(
        f"  {database.backend} audit chain after the bench: {(audit.stdout + audit.stderr).strip()}"
    )
    if audit.returncode != 0:
        raise SystemExit(
            f"bench: the audit chain does not verify after the bench on {database.backend}"
        )
    return comparisons


def _cell(rate: Rate) -> str:
    return f"{fmt_rate(rate.per_second):>7} {fmt_ms(rate.percentile(50)):>6} {fmt_ms(rate.percentile(99)):>6}"


def report(backend: str, comparisons: list[Comparison]) -> list[Figure]:
    print()
    print(f"{backend}: req/s, p50 ms, p99 ms of the median round; ratio = microcred / reference")
    header = (
        f"{'path':<31} {'reference':^22} {'microcred':^22} {'ratio':>6} {'spread':>11} "
        f"{'goal':>7} {'':4} {'longest cb ref/ours':>19}"
    )
    print(header)
    print(f"{'':<31} {'req/s    p50    p99':^22} {'req/s    p50    p99':^22}")
    print("-" * len(header))
    figures: list[Figure] = []
    for c in comparisons:
        ok = c.ratio >= c.path.goal and not c.errors
        ours, ref = c.median_rate(c.ours), c.median_rate(c.reference)
        spread = f"{min(c.ratios):.2f}–{max(c.ratios):.2f}"
        stalls = (
            f"{c.reference_probe.get('longest_callback_ms', 0):.1f}/"
            f"{c.ours_probe.get('longest_callback_ms', 0):.1f} ms"
        )
        print(
            f"{c.path.label:<31} {_cell(ref)} {_cell(ours)} {c.ratio:>5.2f}× {spread:>11} "
            f"{'≥ ' + format(c.path.goal, '.1f') + '×':>7} {'PASS' if ok else 'FAIL':4} {stalls:>19}"
        )
        figures.append(
            Figure(
                name=f"{c.path.label} vs reference",
                measured=f"{fmt_rate(ours.per_second)} req/s",
                ceiling=f"{fmt_rate(ref.per_second)} req/s reference",
                ratio=f"{c.ratio:.2f}×",
                goal=f"≥ {c.path.goal:.1f}×",
                passed=ok,
                backend=backend,
            )
        )
    for c in comparisons:
        if c.errors:
            first = next(r.first_error for r in c.ours + c.reference if r.errors)
            print(f"! {c.path.label}: {c.errors} unexpected responses; first: {first}")
    verify = next(c for c in comparisons if c.path.key == "verify")
    tails = [r.percentile(99) / p50 for r in verify.ours if (p50 := r.percentile(50))]  # type: ignore[operator]
    tail = statistics.median(tails) if tails else float("inf")
    tail_ok = tail <= TAIL
    median = verify.median_rate(verify.ours)
    print(
        f"verify p99 / p50 (microcred): {fmt_ms(median.percentile(99))} / "
        f"{fmt_ms(median.percentile(50))} ms = {tail:.2f} (median round)   goal ≤ {TAIL:.0f}   "
        f"{'PASS' if tail_ok else 'FAIL'}"
    )
    longest = max(c.ours_probe.get("longest_callback_ms", 0.0) for c in comparisons)
    over = sum(int(c.ours_probe.get("callbacks_over_5ms", 0)) for c in comparisons)
    stall_ok = longest <= STALL_MS
    print(
        f"longest event-loop callback (microcred, CPU time, every path): {longest:.1f} ms, "
        f"{over} over {STALL_MS:.0f} ms   goal ≤ {STALL_MS:.0f} ms   {'PASS' if stall_ok else 'FAIL'}"
    )
    for c in comparisons:
        for name, probe in (("microcred", c.ours_probe), ("reference", c.reference_probe)):
            for ms, what in probe.get("worst", [])[:2]:
                print(f"  ! {name} {c.path.key}: {ms} ms in {what}")
    figures.append(
        Figure(
            name="verify p99 / p50",
            measured=f"{fmt_ms(median.percentile(99))} ms",
            ceiling=f"{fmt_ms(median.percentile(50))} ms p50",
            ratio=f"{tail:.2f}",
            goal=f"≤ {TAIL:.0f}",
            passed=tail_ok,
            backend=backend,
        )
    )
    figures.append(
        Figure(
            name="longest loop callback",
            measured=f"{longest:.1f} ms",
            ceiling="—",
            ratio=f"{over} > 5 ms",
            goal=f"≤ {STALL_MS:.0f} ms",
            passed=stall_ok,
            backend=backend,
        )
    )
    return figures


def _backends(workdir: Path) -> Iterator[tuple[Database, Database]]:
    """(microcred's database, the reference's): SQLite files, then two PostgreSQL databases."""
    yield (
        Database(f"sqlite:///{workdir / 'sqlite' / 'microcred.db'}", "SQLite"),
        Database(f"sqlite:///{workdir / 'sqlite' / 'reference.db'}", "SQLite"),
    )
    with fresh_database(workdir) as ours, fresh_database(workdir) as ref:
        if ours.backend == "PostgreSQL":
            yield ours, ref
        else:
            print("(PostgreSQL: none available here; its round is skipped)")


def section(options: Options) -> list[Figure]:
    rounds = 2 if options.quick else 3
    print(
        f"paths — 1 uvicorn worker each (uvloop, httptools); client: {load_client(options)}; "
        f"{rounds} rounds; {machine_note()}"
    )
    if not have_wrk(options):
        print("(wrk is not installed: `make bench-deps`; httpx drives the load, a slower client)")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="microcred-bench-paths-") as tmp:
        workdir = Path(tmp)
        for ours, ref in _backends(workdir):
            sub = workdir / ours.backend.lower()
            sub.mkdir(exist_ok=True)
            comparisons = compare(ours, ref, sub, options, rounds)
            figures.extend(report(ours.backend, comparisons))
            print()
    return figures

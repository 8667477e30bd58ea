"""What every benchmark section shares: options, databases, a real server, load, figures.

Traffic goes to 127.0.0.1 only; servers are stopped and benchmark databases dropped whatever
happens.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
ADMIN_TOKEN = "bench-admin-token-not-a-secret"
STARTUP_TIMEOUT_S = 30.0
ROOT = Path(__file__).resolve().parent.parent
ENSURE_POSTGRES = ROOT.parent / "shared" / "ci" / "ensure-postgres"


@dataclass
class Options:
    """Knobs shared by the sections (see `python -m bench.run --help`)."""

    quick: bool = False
    connections: int = 64
    wrk_seconds: int = 10
    in_process_seconds: float = 2.0
    use_httpx: bool = False
    scale_small: int = 10_000
    scale_large: int = 10_000_000
    scale_requests: int = 400


@dataclass
class Figure:
    """One goal of the run: a measured figure against a ceiling measured in the same run."""

    name: str
    measured: str
    ceiling: str
    ratio: str  # measured against ceiling, as the goal states it ("62 %", "41x", "1.03")
    goal: str
    passed: bool
    backend: str


@dataclass
class Rate:
    """One measured phase: how many operations in how long, and how they went."""

    label: str
    count: int
    seconds: float
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None
    # Percentiles reported by wrk, when it measured the phase.
    fixed_percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        if q in self.fixed_percentiles:
            return self.fixed_percentiles[q]
        if len(self.latencies_ms) < 2:
            return None
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


# --- formatting --------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}" if value < 10 else f"{value:.1f}"


RATE_HEADER = f"{'what':<44} {'ok':>7} {'errors':>6} {'seconds':>8} {'rate /s':>9} {'p50 ms':>7} {'p99 ms':>7}"


def rate_line(r: Rate) -> str:
    return (
        f"{r.label:<44} {r.count:>7} {r.errors:>6} {r.seconds:>8.2f} {fmt_rate(r.per_second):>9} "
        f"{fmt_ms(r.percentile(50)):>7} {fmt_ms(r.percentile(99)):>7}"
    )


def print_rates(rates: list[Rate]) -> None:
    print(RATE_HEADER)
    print("-" * len(RATE_HEADER))
    for r in rates:
        print(rate_line(r))
    for r in rates:
        if r.errors:
            print(f"! {r.label}: {r.errors} unexpected responses; first: {r.first_error}")


def machine_note() -> str:
    return (
        f"{os.cpu_count()} CPU(s), Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


# --- databases ---------------------------------------------------------------------------------


@dataclass
class Database:
    url: str
    backend: str  # "PostgreSQL" or "SQLite"
    drop: Callable[[], None] = lambda: None


def _pg_create(server_url: str) -> Database:
    """A new `microcred_bench_*` database on the server of `server_url`."""
    base = make_url(server_url)
    name = f"microcred_bench_{int(time.time())}_{os.getpid()}_{time.perf_counter_ns() % 100_000}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    return Database(url, "PostgreSQL", lambda: _pg_drop(base.set(database="postgres"), name))


def _pg_drop(admin_url: Any, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def fresh_database(workdir: Path, *, need_postgres: bool = False) -> Iterator[Database]:
    """A new, empty database for one section, dropped afterwards.

    PostgreSQL, the production database: a `microcred_bench_*` database on the server of
    MICROCRED_BENCH_DATABASE_URL when it is set, else one from ../shared/ci/ensure-postgres.
    SQLite (a file in `workdir`) only when no PostgreSQL server is installed here.
    """
    configured = os.environ.get("MICROCRED_BENCH_DATABASE_URL")
    database: Database | None = None
    if configured:
        database = _pg_create(configured)
    elif ENSURE_POSTGRES.exists():
        done = subprocess.run([str(ENSURE_POSTGRES)], capture_output=True, text=True)
        if done.returncode == 0:
            url = done.stdout.strip().splitlines()[-1]
            name = make_url(url).database or ""
            database = Database(
                url, "PostgreSQL", lambda: _pg_drop(make_url(url).set(database="postgres"), name)
            )
        elif done.returncode != 3:  # 3: no PostgreSQL installed on this machine
            raise SystemExit(f"bench: ensure-postgres failed: {done.stderr.strip()}")
    if database is None:
        if need_postgres:
            raise SystemExit("bench: this section needs PostgreSQL (MICROCRED_BENCH_DATABASE_URL)")
        database = Database(f"sqlite:///{workdir / 'bench.db'}", "SQLite")
    try:
        yield database
    finally:
        database.drop()


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def microcred_executable() -> str:
    beside = Path(sys.executable).with_name("microcred")
    if beside.exists():
        return str(beside)
    found = shutil.which("microcred")
    if found is None:
        raise SystemExit("bench: the `microcred` command is not installed (run `make install`)")
    return found


def server_env(workdir: Path, database_url: str, port: int, **extra: str) -> dict[str, str]:
    # Nothing of the caller's own MICROCRED_* settings leaks into the measured server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
    env.update(
        {
            "MICROCRED_DATABASE_URL": database_url,
            "MICROCRED_KEYS_DIR": str(workdir / "keys"),
            "MICROCRED_ADMIN_TOKEN": ADMIN_TOKEN,
            "MICROCRED_BASE_URL": f"http://{HOST}:{port}",
            "MICROCRED_ENV": "development",
            # The load comes from one address, as no real client's would.
            "MICROCRED_RATE_LIMITS_ENABLED": "false",
            **extra,
        }
    )
    return env


def migrate(workdir: Path, database_url: str) -> None:
    env = server_env(workdir, database_url, 0)
    subprocess.run(
        [microcred_executable(), "db", "upgrade"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
    )


@dataclass
class Server:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def running_server(
    workdir: Path, database_url: str, *, port: int | None = None, **extra_env: str
) -> Iterator[Server]:
    """`microcred serve` with one uvicorn worker on 127.0.0.1 (the database already migrated).

    `port` keeps the base URL (every credential id is built from it) across restarts.
    """
    port = port or free_port()
    env = server_env(workdir, database_url, port, **extra_env)
    log_path = workdir / f"server-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                microcred_executable(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(f"http://{HOST}:{port}", port, process, log_path)
        try:
            _wait_until_healthy(server)
            yield server
        except BaseException:
            log.flush()
            print(f"bench: server log (tail):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
            raise
        finally:
            _stop(process)


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=server.base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise SystemExit(f"bench: the server exited with {server.process.returncode}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"bench: the server did not answer /health within {STARTUP_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- fixtures over HTTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    api_key: str
    kid: str
    slug: str
    achievement_id: str
    credential_id: str
    jwt: str


def ok(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise SystemExit(
            f"bench: {response.request.method} {response.request.url.path} answered "
            f"HTTP {response.status_code}: {response.text[:500]}"
        )
    return response


def issue_body(achievement_id: str, i: int) -> dict[str, Any]:
    return {
        "achievement_id": achievement_id,
        "recipient": {"email": f"learner{i}@example.org", "name": f"Learner {i}"},
    }


def create_fixture(base_url: str, slug: str = "bench-academy") -> Fixture:
    """An ES256 issuer, one achievement and one credential, made the way a client makes them."""
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        created = ok(
            client.post(
                "/api/v1/issuers",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                json={
                    "name": "Bench Academy",
                    "url": "https://bench.example",
                    "slug": slug,
                    "algorithm": "ES256",
                },
            )
        ).json()
        api_key = created["api_key"]["key"]
        auth = {"Authorization": f"Bearer {api_key}"}
        achievement = ok(
            client.post(
                "/api/v1/achievements",
                headers=auth,
                json={
                    "name": "Data Analysis Fundamentals",
                    "description": "Cleans, explores and summarises tabular data.",
                    "criteria": {"narrative": "Passed a proctored practical assessment."},
                    "achievement_type": "MicroCredential",
                    "alignments": [
                        {
                            "target_name": "Data Scientists",
                            "target_url": "https://www.onetonline.org/link/summary/15-2051.00",
                            "target_framework": "O*NET-SOC",
                            "target_code": "15-2051.00",
                        }
                    ],
                    "tags": ["sql", "python", "statistics"],
                },
            )
        ).json()
        issued = ok(
            client.post(
                "/api/v1/credentials", headers=auth, json=issue_body(achievement["uuid"], 0)
            )
        ).json()
        check = ok(client.post("/api/v1/verify", json={"credential": issued["jwt"]})).json()
        if not check["verified"]:
            raise SystemExit(f"bench: a fresh credential does not verify: {check}")
        return Fixture(
            api_key=api_key,
            kid=created["issuer"]["keys"][0]["kid"],
            slug=slug,
            achievement_id=achievement["uuid"],
            credential_id=issued["id"],
            jwt=issued["jwt"],
        )


# --- load --------------------------------------------------------------------------------------


def have_wrk(options: Options) -> bool:
    return not options.use_httpx and shutil.which("wrk") is not None


def load_client(options: Options, connections: int | None = None) -> str:
    conns = connections or options.connections
    if have_wrk(options):
        return f"wrk, 2 threads, {conns} connections, {options.wrk_seconds} s a phase"
    return f"httpx, {conns} in flight, {options.wrk_seconds} s a phase"


_WRK_SCRIPT = """
local bodies = {{ {bodies} }}
local headers = {{ {headers} }}
local n = 0
request = function()
  n = n + 1
  local body = nil
  if #bodies > 0 then body = bodies[(n % #bodies) + 1] end
  return wrk.format({method!r}, nil, headers, body)
end
"""


def _lua_string(text_: str) -> str:
    level = "=" * 3
    while f"]{level}]" in text_:
        level += "="
    return f"[{level}[{text_}]{level}]"


def _wrk_ms(value: str) -> float:
    number = float(value.rstrip("usm"))
    if value.endswith("us"):
        return number / 1000
    if value.endswith("ms"):
        return number
    if value.endswith("m"):
        return number * 60_000
    return number * 1000  # "s"


def load(
    base_url: str,
    label: str,
    path: str,
    options: Options,
    *,
    method: str = "GET",
    bodies: list[str] | None = None,
    headers: dict[str, str] | None = None,
    connections: int | None = None,
    seconds: float | None = None,
    expect: int = 200,
) -> Rate:
    """`connections` clients sending requests for `seconds`, bodies taken in turn (wrk, or httpx)."""
    conns = connections or options.connections
    duration = seconds or options.wrk_seconds
    if have_wrk(options):
        return _wrk(
            base_url, label, path, method, bodies or [], headers or {}, conns, duration, expect
        )
    return asyncio.run(
        _httpx(base_url, label, path, method, bodies or [], headers or {}, conns, duration, expect)
    )


def _wrk(
    base_url: str,
    label: str,
    path: str,
    method: str,
    bodies: list[str],
    headers: dict[str, str],
    connections: int,
    seconds: float,
    expect: int,
) -> Rate:
    """One phase driven by wrk (C, event loop): the client costs little, so the server is measured."""
    all_headers = {"Content-Type": "application/json", **headers} if bodies else dict(headers)
    script = _WRK_SCRIPT.format(
        bodies=", ".join(_lua_string(b) for b in bodies),
        headers=", ".join(
            f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in all_headers.items()
        ),
        method=method,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = handle.name
    try:
        command = [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            script_path,
            base_url + path,
        ]
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=seconds + 60
        ).stdout
    finally:
        os.unlink(script_path)
    totals = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
    if totals is None:
        raise SystemExit(f"bench: could not read wrk's output:\n{out}")
    requests = int(totals.group(1))
    elapsed = float(totals.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[totals.group(3)]
    # wrk counts 2xx and 3xx as success: a 304 phase expects 3xx, the others 2xx.
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(errors_match.group(1)) if errors_match else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    percentiles = {
        float(q): _wrk_ms(v)
        for q, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.MULTILINE)
    }
    rate = Rate(label, requests - errors, elapsed, errors, fixed_percentiles=percentiles)
    if errors or socket_errors:
        rate.first_error = socket_errors.group(0) if socket_errors else f"{errors} non-2xx/3xx"
    return rate


async def _httpx(
    base_url: str,
    label: str,
    path: str,
    method: str,
    bodies: list[str],
    headers: dict[str, str],
    connections: int,
    seconds: float,
    expect: int,
) -> Rate:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    all_headers = {"Content-Type": "application/json", **headers} if bodies else dict(headers)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30.0, trust_env=False
    ) as client:
        rate = Rate(label=label, count=0, seconds=0.0)
        sent = 0
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < stop_at:
                body = bodies[sent % len(bodies)] if bodies else None
                sent += 1
                t0 = time.perf_counter()
                response = await client.request(method, path, content=body, headers=all_headers)
                rate.latencies_ms.append((time.perf_counter() - t0) * 1000)
                if response.status_code == expect:
                    rate.count += 1
                else:
                    rate.errors += 1
                    rate.first_error = rate.first_error or f"HTTP {response.status_code}"

        await asyncio.gather(*(worker() for _ in range(connections)))
        rate.seconds = time.perf_counter() - start
        return rate


def sequential(
    base_url: str, label: str, path: str, bodies: list[str], *, rounds: int, expect: int = 200
) -> Rate:
    """One request at a time on one keep-alive connection: the latency of a request alone."""
    rate = Rate(label=label, count=0, seconds=0.0)
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        start = time.perf_counter()
        for i in range(rounds):
            t0 = time.perf_counter()
            response = client.post(
                path, content=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}
            )
            rate.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if response.status_code == expect:
                rate.count += 1
            else:
                rate.errors += 1
                rate.first_error = rate.first_error or f"HTTP {response.status_code}"
        rate.seconds = time.perf_counter() - start
    return rate


def timed_loop(label: str, operation: Callable[[], object], seconds: float) -> Rate:
    """Run `operation` in batches until `seconds` have passed (after one warm-up call)."""
    operation()
    batch = 20
    count = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            operation()
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return Rate(label=label, count=count, seconds=elapsed)

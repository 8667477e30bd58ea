"""Issue and verify throughput of the real service, set against the cost of the signature itself.

`make bench` (`python -m bench.run`) starts `microcred serve` with one worker on 127.0.0.1, on a
free port, with a temporary SQLite database and keys folder; creates an ES256 issuer and an
achievement over HTTP; and then measures, in this one run:

- `POST /api/v1/credentials` and `POST /api/v1/verify` over HTTP (a fixed number of requests,
  ~16 in flight, each phase bounded in time), and `GET /health` the same way as the HTTP floor;
- `app.core.jose.sign` and `app.core.jose.verify` in this process, with the issuer's own private
  key loaded from the keys folder: what the cryptography alone costs;
- the ratios between the two, which say how much of a request is the signature and how much is
  everything around it (HTTP, JSON, validation, the database).

The client runs on the same machine as the server and shares its cores: the HTTP figures are a
lower bound of what the server does alone. Traffic goes to 127.0.0.1 only, and the server is
stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
ADMIN_TOKEN = "bench-admin-token-not-a-secret"
STARTUP_TIMEOUT_S = 30.0


@dataclass
class Rate:
    """One measured phase: how many operations in how long, and how they went."""

    label: str
    count: int
    seconds: float
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None
    # Percentiles reported by an external load generator (wrk), when it measured the phase.
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


def server_env(workdir: Path, port: int) -> dict[str, str]:
    # Nothing of the caller's own MICROCRED_* settings leaks into the measured server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROCRED_")}
    env.update(
        {
            "MICROCRED_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "MICROCRED_KEYS_DIR": str(workdir / "keys"),
            "MICROCRED_ADMIN_TOKEN": ADMIN_TOKEN,
            "MICROCRED_BASE_URL": f"http://{HOST}:{port}",
            "MICROCRED_ENV": "development",
        }
    )
    return env


def start_server(workdir: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    exe = microcred_executable()
    env = server_env(workdir, port)
    subprocess.run([exe, "db", "upgrade"], env=env, cwd=workdir, check=True, stdout=log, stderr=log)
    return subprocess.Popen(
        [exe, "serve", "--host", HOST, "--port", str(port), "--workers", "1"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_healthy(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(
                    f"bench: the server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"bench: the server did not answer /health within {STARTUP_TIMEOUT_S:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --- fixtures over HTTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    api_key: str
    kid: str
    achievement_id: str
    jwt: str
    payload: dict[str, Any]


def create_fixture(base_url: str) -> Fixture:
    """An ES256 issuer, one achievement and one credential, made the way a client makes them."""
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        r = client.post(
            "/api/v1/issuers",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={
                "name": "Bench Academy",
                "url": "https://bench.example",
                "slug": "bench-academy",
                "algorithm": "ES256",
            },
        )
        _ok(r)
        created = r.json()
        api_key = created["api_key"]["key"]
        kid = created["issuer"]["keys"][0]["kid"]
        auth = {"Authorization": f"Bearer {api_key}"}
        r = client.post(
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
        _ok(r)
        achievement_id = r.json()["uuid"]
        r = client.post("/api/v1/credentials", headers=auth, json=issue_body(achievement_id, 0))
        _ok(r)
        issued = r.json()
        check = client.post("/api/v1/verify", json={"credential": issued["jwt"]})
        _ok(check)
        if not check.json()["verified"]:
            raise SystemExit(f"bench: a fresh credential does not verify: {check.json()}")
        # The JWT payload is the credential plus the registered claims: sign exactly that.
        from app.core.jose import unverified_parts

        _header, payload = unverified_parts(issued["jwt"])
        return Fixture(api_key, kid, achievement_id, issued["jwt"], payload)


def _ok(response: httpx.Response) -> None:
    if response.is_error:
        raise SystemExit(
            f"bench: {response.request.method} {response.request.url.path} answered "
            f"HTTP {response.status_code}: {response.text[:500]}"
        )


def issue_body(achievement_id: str, i: int) -> dict[str, Any]:
    return {
        "achievement_id": achievement_id,
        "recipient": {"email": f"learner{i}@example.org", "name": f"Learner {i}"},
    }


# --- load --------------------------------------------------------------------------------------

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def hammer(
    base_url: str,
    label: str,
    request: Request,
    *,
    total: int,
    concurrency: int,
    time_limit_s: float,
    expect: int,
    first_index: int = 0,
) -> Rate:
    """Send `total` requests with `concurrency` in flight; stop early at the time limit."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30.0, trust_env=False
    ) as client:
        rate = Rate(label=label, count=0, seconds=0.0)
        issued = 0
        start = time.perf_counter()
        stop_at = start + time_limit_s

        async def worker() -> None:
            nonlocal issued
            while issued < total and time.perf_counter() < stop_at:
                index = first_index + issued
                issued += 1
                sent = time.perf_counter()
                response = await request(client, index)
                rate.latencies_ms.append((time.perf_counter() - sent) * 1000)
                if response.status_code == expect:
                    rate.count += 1
                else:
                    rate.errors += 1
                    if rate.first_error is None:
                        rate.first_error = f"HTTP {response.status_code}: {response.text[:300]}"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate.seconds = time.perf_counter() - start
        return rate


WRK_SCRIPT = """
wrk.method = {method!r}
wrk.headers["Content-Type"] = "application/json"
{auth}
wrk.body = [==[{body}]==]
"""


def _wrk_ms(text: str) -> float:
    value = float(text.rstrip("usm"))
    return (
        value / 1000
        if text.endswith("us")
        else value * 1000
        if text.endswith("s") and not text.endswith("ms")
        else value
    )


def wrk_phase(
    base_url: str,
    label: str,
    path: str,
    *,
    workdir: Path,
    args: argparse.Namespace,
    method: str = "GET",
    body: str = "",
    api_key: str | None = None,
) -> Rate:
    """One phase driven by wrk (C, event loop): the client costs little, so the server is what is measured."""
    script = workdir / f"{label.split()[0].lower().strip('/')}-{len(body)}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {api_key}"' if api_key else ""
    script.write_text(
        WRK_SCRIPT.format(method=method, auth=auth, body=body if method != "GET" else "")
    )
    command = [
        "wrk",
        "-t2",
        f"-c{args.connections}",
        f"-d{args.wrk_seconds}s",
        "--latency",
        "-s",
        str(script),
        base_url + path,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=args.wrk_seconds + 30
    ).stdout
    totals = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
    if totals is None:
        raise SystemExit(f"bench: could not read wrk's output:\n{out}")
    requests = int(totals.group(1))
    seconds = float(totals.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[totals.group(3)]
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(errors_match.group(1)) if errors_match else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    percentiles = {
        float(q): _wrk_ms(v)
        for q, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.MULTILINE)
    }
    rate = Rate(
        label=label,
        count=requests - errors,
        seconds=seconds,
        errors=errors,
        fixed_percentiles=percentiles,
    )
    if errors or socket_errors:
        rate.first_error = (
            socket_errors.group(0) if socket_errors else f"{errors} non-2xx responses"
        )
    return rate


def measure_http_wrk(
    base_url: str, fixture: Fixture, args: argparse.Namespace, workdir: Path
) -> list[Rate]:
    issue = json.dumps(issue_body(fixture.achievement_id, 0))
    verify = json.dumps({"credential": fixture.jwt})
    return [
        wrk_phase(base_url, "GET /health (HTTP floor)", "/health", workdir=workdir, args=args),
        wrk_phase(
            base_url,
            "POST /api/v1/credentials (issue)",
            "/api/v1/credentials",
            workdir=workdir,
            args=args,
            method="POST",
            body=issue,
            api_key=fixture.api_key,
        ),
        wrk_phase(
            base_url,
            "POST /api/v1/verify (verify)",
            "/api/v1/verify",
            workdir=workdir,
            args=args,
            method="POST",
            body=verify,
        ),
    ]


def measure_http(base_url: str, fixture: Fixture, args: argparse.Namespace) -> list[Rate]:
    auth = {"Authorization": f"Bearer {fixture.api_key}"}
    verify_body = {"credential": fixture.jwt}

    def health(client: httpx.AsyncClient, _i: int) -> Awaitable[httpx.Response]:
        return client.get("/health")

    def issue(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return client.post(
            "/api/v1/credentials", headers=auth, json=issue_body(fixture.achievement_id, i)
        )

    def verify(client: httpx.AsyncClient, _i: int) -> Awaitable[httpx.Response]:
        return client.post("/api/v1/verify", json=verify_body)

    phases: list[tuple[str, Request, int, int]] = [
        ("GET /health (HTTP floor)", health, args.health, 200),
        ("POST /api/v1/credentials (issue)", issue, args.issue, 201),
        ("POST /api/v1/verify (verify)", verify, args.verify, 200),
    ]
    rates = []
    index = 1  # recipient 0 is the fixture's credential
    for label, request, total, expect in phases:
        warm = min(args.warmup, total)
        asyncio.run(
            hammer(
                base_url,
                label,
                request,
                total=warm,
                concurrency=args.concurrency,
                time_limit_s=args.time_limit,
                expect=expect,
                first_index=index,
            )
        )
        index += warm
        rate = asyncio.run(
            hammer(
                base_url,
                label,
                request,
                total=total,
                concurrency=args.concurrency,
                time_limit_s=args.time_limit,
                expect=expect,
                first_index=index,
            )
        )
        index += total
        rates.append(rate)
    return rates


# --- in-process baseline -----------------------------------------------------------------------


def timed_loop(label: str, operation: Callable[[], object], seconds: float) -> Rate:
    """Run `operation` in batches until `seconds` have passed; the count is a whole batch."""
    batch = 50
    count = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            operation()
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return Rate(label=label, count=count, seconds=elapsed)


def measure_in_process(keys_dir: Path, fixture: Fixture, seconds: float) -> list[Rate]:
    from app.core import jose
    from app.core.keys import KeyStore, SigningAlgorithm

    pems = sorted(keys_dir.glob("*.pem"))
    if len(pems) != 1:
        raise SystemExit(f"bench: expected the one issuer key in {keys_dir}, found {len(pems)}")
    # The key reference is the signing key's uuid, which is the PEM's file name.
    private = KeyStore(keys_dir, None).load(pems[0].stem)
    public = private.public_key()
    token = jose.sign(
        fixture.payload, key=private, algorithm=SigningAlgorithm.ES256, kid=fixture.kid
    )
    if jose.verify(fixture.jwt, public) != fixture.payload:
        raise SystemExit("bench: the issuer's key on disk does not verify its own credential")
    jose.verify(token, public)
    sign_rate = timed_loop(
        "jose.sign ES256 (in-process)",
        lambda: jose.sign(
            fixture.payload, key=private, algorithm=SigningAlgorithm.ES256, kid=fixture.kid
        ),
        seconds,
    )
    verify_rate = timed_loop(
        "jose.verify ES256 (in-process)", lambda: jose.verify(token, public), seconds
    )
    return [sign_rate, verify_rate]


# --- report ------------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def print_report(
    http: list[Rate],
    local: list[Rate],
    args: argparse.Namespace,
    token_bytes: int,
    load: float,
    client: str,
) -> None:
    health, issue, verify = http
    sign, jose_verify = local
    print()
    print(
        f"microcred bench — {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"{platform.machine()}; server: 1 uvicorn worker, SQLite, ES256 issuer; "
        f"client: {client}, on the same machine; JWT {token_bytes} bytes; "
        f"load average before the run {load:.2f}"
    )
    print()
    header = f"{'what':<36} {'ok':>7} {'errors':>6} {'seconds':>8} {'rate /s':>10} {'p50 ms':>7} {'p99 ms':>7}"
    print(header)
    print("-" * len(header))
    for r in (*http, *local):
        print(
            f"{r.label:<36} {r.count:>7} {r.errors:>6} {r.seconds:>8.2f} {fmt_rate(r.per_second):>10} "
            f"{fmt_ms(r.percentile(50)):>7} {fmt_ms(r.percentile(99)):>7}"
        )
    print()
    issue_ratio = 100 * issue.per_second / sign.per_second
    verify_ratio = 100 * verify.per_second / jose_verify.per_second
    print(
        f"issue over HTTP:  {fmt_rate(issue.per_second):>6} req/s | in-process sign:   "
        f"{fmt_rate(sign.per_second):>7}/s | ratio {issue_ratio:.1f} %"
    )
    print(
        f"verify over HTTP: {fmt_rate(verify.per_second):>6} req/s | in-process verify: "
        f"{fmt_rate(jose_verify.per_second):>7}/s | ratio {verify_ratio:.1f} %"
    )
    print(
        f"HTTP floor (GET /health): {fmt_rate(health.per_second)} req/s — issue runs at "
        f"{100 * issue.per_second / health.per_second:.0f} % of it, verify at "
        f"{100 * verify.per_second / health.per_second:.0f} %"
    )
    for r in http:
        if r.errors:
            print(f"! {r.label}: {r.errors} unexpected responses; first: {r.first_error}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--issue", type=int, default=1500, help="issue requests (default 1500)")
    p.add_argument("--verify", type=int, default=2000, help="verify requests (default 2000)")
    p.add_argument("--health", type=int, default=3000, help="health requests (default 3000)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--wrk-seconds", type=int, default=10, help="seconds per wrk phase (default 10)")
    p.add_argument(
        "--httpx", action="store_true", help="drive the load with httpx even if wrk is installed"
    )
    p.add_argument("--warmup", type=int, default=100, help="unmeasured requests before each phase")
    p.add_argument(
        "--time-limit", type=float, default=20.0, help="seconds at most per HTTP phase (default 20)"
    )
    p.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per in-process loop (default 2)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()[0]  # other work on the machine skews every figure below
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="microcred-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            proc: subprocess.Popen[bytes] | None = None
            try:
                proc = start_server(workdir, port, log)
                wait_until_healthy(base_url, proc, log_path)
                fixture = create_fixture(base_url)
                if shutil.which("wrk") and not args.httpx:
                    http = measure_http_wrk(base_url, fixture, args, workdir)
                    client = f"wrk, 2 threads, {args.connections} connections, {args.wrk_seconds} s a phase"
                else:
                    http = measure_http(base_url, fixture, args)
                    client = f"httpx, {args.concurrency} in flight"
            except BaseException:
                log.flush()
                print(f"bench: server log (tail):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
                raise
            finally:
                if proc is not None:
                    stop_server(proc)
        local = measure_in_process(workdir / "keys", fixture, args.seconds)
        print_report(http, local, args, len(fixture.jwt), load, client)
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")
    failed = any(r.errors for r in http)
    wanted = (args.health, args.issue, args.verify)
    short = (
        [r.label for r, n in zip(http, wanted, strict=True) if r.count + r.errors < n]
        if args.httpx or not shutil.which("wrk")
        else []
    )
    if short:
        print(f"note: the time limit cut these phases short: {', '.join(short)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

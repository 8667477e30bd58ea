"""A slow foreign host cannot freeze verification: one deadline per fetch, fetches outside the
database slot and off the request threadpool, a cap on fetches at once, failures remembered.

The slow hosts are real TLS servers on 127.0.0.1 (certificates from the session's trustme CA)
that are slow in one phase each: they accept and never answer the TLS handshake, drip response
headers or the body one piece at a time, or answer each hop of a redirect chain late. The
service is a real uvicorn server on 127.0.0.1, spoken to over HTTP; nothing leaves loopback.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trustme
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from test_verify_interop import did_jwk

from app.core.fetch import Fetcher, RemoteFetchError
from app.core.keys import public_jwk
from app.main import create_app
from conftest import check, make_settings, ob_credential

TIMEOUT = 1.0  # MICROCRED_FETCH_TIMEOUT of the servers under test
# The crowd tests' timeout: twenty or sixty requests at once share two cores with the test's
# own client threads (and, in CI, another test process), so the fixed CPU cost of each request
# is a smaller part of a 2 s deadline than of a 1 s one. The bound stays 2x the timeout.
CROWD_TIMEOUT = 2.0
DRIP = 0.25  # seconds between two pieces a dripping host sends (4 a second: it never stops)
MODES = ["tls", "headers", "body", "redirects"]
HANG_UP_LAG = 0.15  # see SlowHost.most_at_once


# --- a host that is slow in one phase -------------------------------------------------------------


class SlowHost:
    """An HTTPS host on 127.0.0.1: paths in `fast` are served at once, any other path is slow
    as `mode` says. Counts connections, and the most requests it was answering at once."""

    def __init__(self, cert: trustme.LeafCert, mode: str) -> None:
        self.mode = mode
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.tls)
        self.fast: dict[str, bytes] = {}
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = 0
        self.spans: list[tuple[float, float]] = []  # (request seen, hang-up seen)
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)  # to see `stopping` (closing does not wake accept)
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        counted = 0.0
        try:
            if self.mode == "tls":
                counted = self._count()
                self._until_hung_up(raw)  # accepted, and the handshake never answered
                return
            raw.settimeout(5)
            with self.tls.wrap_socket(raw, server_side=True) as conn:
                path = self._request_path(conn)
                # Counted from the request on (a closed connection is seen a moment late: counted
                # from the accept, a new one could overlap the one it replaced).
                counted = self._count()
                if path in self.fast:
                    body = self.fast[path]
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
                elif self.mode == "headers":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    self._drip(conn, lambda n: f"X-Drip-{n}: {n}\r\n".encode())
                elif self.mode == "body":
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100000\r\n\r\n{"
                    )
                    self._drip(conn, lambda n: b" ")
                elif self.mode == "redirects":
                    # Each hop is answered in 0.4 of the timeout: the chain takes 1.6 of it.
                    if self.stopping.wait(0.4 * TIMEOUT):
                        return
                    hop = int(path.rsplit("-", 1)[-1]) if path.startswith("/hop-") else 0
                    conn.sendall(
                        b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n"
                        + f"Location: /hop-{hop + 1}\r\nConnection: close\r\n\r\n".encode()
                    )
        except (OSError, ValueError):
            pass  # the client hung up: what the tests make it do
        finally:
            if counted:
                with self.lock:
                    self.open -= 1
                    self.spans.append((counted, time.monotonic()))
            raw.close()

    def _count(self) -> float:
        with self.lock:
            self.open += 1
        return time.monotonic()

    def most_at_once(self) -> int:
        """The most requests this host answered at once, by the spans it saw. This side sees a
        hang-up a moment late (its thread must wake), while the client may already be on its
        next connection: the last `HANG_UP_LAG` of each span is not counted."""
        until = time.monotonic() + 5
        while self.open and time.monotonic() < until:  # hang-ups still to be seen
            time.sleep(0.02)
        with self.lock:
            spans = list(self.spans)
        events = sorted(
            [(start, 1) for start, end in spans if end - HANG_UP_LAG > start]
            + [(end - HANG_UP_LAG, -1) for start, end in spans if end - HANG_UP_LAG > start]
        )
        most = current = 0
        for _, step in events:  # at equal times an end (-1) sorts before a start
            current += step
            most = max(most, current)
        return most

    def _request_path(self, conn: ssl.SSLSocket) -> str:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                raise ValueError("no request")
            head += chunk
        return head.split(b" ", 2)[1].decode()

    def _drip(self, conn: ssl.SSLSocket, piece: Callable[[int], bytes]) -> None:
        n = 0
        while not self._hung_up(conn, DRIP):
            conn.sendall(piece(n))
            n += 1

    def _hung_up(self, conn: socket.socket, wait: float) -> bool:
        """Wait up to `wait` s; True once the client closed (it sends nothing after its request)."""
        if self.stopping.is_set():
            return True
        readable, _, _ = select.select([conn], [], [], wait)
        if not readable:
            return self.stopping.is_set()
        try:
            return not conn.recv(1)
        except (ssl.SSLError, OSError):
            return True

    def _until_hung_up(self, raw: socket.socket) -> None:
        while not self._hung_up(raw, DRIP):
            pass


@pytest.fixture(params=MODES)
def slow(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[SlowHost]:
    with SlowHost(ca.issue_cert("127.0.0.1"), request.param) as host:
        yield host


@pytest.fixture
def dripping(ca: trustme.CA) -> Iterator[SlowHost]:
    with SlowHost(ca.issue_cert("127.0.0.1"), "headers") as host:
        yield host


# --- the fetcher alone --------------------------------------------------------------------------


def _fetcher(ca_file: Path, **kwargs: Any) -> Fetcher:
    """The fetcher as the app builds it (its own sockets), with loopback allowed."""
    values: dict[str, Any] = {"timeout": TIMEOUT, "max_bytes": 512 * 1024, "cache_ttl": 0.0}
    values.update(kwargs)
    return Fetcher(
        allow_loopback=True,
        verify=ssl.create_default_context(cafile=str(ca_file)),
        **values,
    )


def test_every_slow_phase_ends_by_the_deadline(slow: SlowHost, ca_file: Path) -> None:
    fetcher = _fetcher(ca_file)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteFetchError):
            fetcher.get_json(f"{slow.origin}/key.json")
        elapsed = time.monotonic() - started
    finally:
        fetcher.close()
    assert slow.connections >= 1  # it was slow, not refused
    assert elapsed < TIMEOUT + 0.5, f"{slow.mode}: {elapsed:.2f} s"


def test_a_webhook_receiver_dripping_its_answer_is_cut_off(
    dripping: SlowHost, ca_file: Path
) -> None:
    fetcher = _fetcher(ca_file)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteFetchError, match="timed out"):
            fetcher.post(f"{dripping.origin}/hook", content=b"{}", headers={}, timeout=0.4)
        elapsed = time.monotonic() - started
    finally:
        fetcher.close()
    assert dripping.connections == 1
    assert elapsed < 2 * 0.4 + 0.5, f"{elapsed:.2f} s"


def test_a_fast_answer_still_comes_through(dripping: SlowHost, ca_file: Path) -> None:
    dripping.fast["/ok.json"] = b'{"ok": true}'
    fetcher = _fetcher(ca_file)
    try:
        assert fetcher.get_json(f"{dripping.origin}/ok.json") == {"ok": True}
    finally:
        fetcher.close()


def test_a_dns_lookup_that_never_answers_ends_by_the_deadline(ca_file: Path) -> None:
    released = threading.Event()

    def never_answers(*args: Any, **kwargs: Any) -> Any:
        released.wait(10)
        raise OSError("no answer")

    fetcher = _fetcher(ca_file, timeout=0.5, resolve=never_answers)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteFetchError, match="cannot resolve"):
            fetcher.get_json("https://slow-dns.example.org/key.json")
        assert time.monotonic() - started < 1.0
    finally:
        released.set()
        fetcher.close()


def test_fetches_beyond_the_cap_wait_for_a_slot_and_fail_by_their_deadline(
    dripping: SlowHost, ca_file: Path
) -> None:
    fetcher = _fetcher(ca_file, concurrency=2)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(
                pool.map(
                    lambda n: _failure(fetcher, f"{dripping.origin}/k{n}.json"),
                    range(6),
                )
            )
        elapsed = time.monotonic() - started
    finally:
        fetcher.close()
    assert 1 <= dripping.most_at_once() <= 2
    assert "fetched" not in outcomes
    assert any("fetch slots stayed busy" in o for o in outcomes), outcomes
    assert elapsed < TIMEOUT + 0.5


def _failure(fetcher: Fetcher, url: str) -> str:
    try:
        fetcher.get_json(url)
    except RemoteFetchError as exc:
        return str(exc)
    return "fetched"


# --- the service, under uvicorn -----------------------------------------------------------------


class Service:
    """The app under a real uvicorn server on 127.0.0.1, in a thread of this process."""

    def __init__(self, database_url: str, keys: Path, ca_file: Path, **overrides: Any) -> None:
        settings = make_settings(
            database_url,
            keys,
            **{
                "fetch_allow_loopback": True,
                "fetch_ca_bundle": ca_file,
                "fetch_timeout": TIMEOUT,
                **overrides,
            },
        )
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"
        # One client for all calls (thread-safe): building one per call costs a TLS context each.
        self.http = httpx.Client(
            base_url=self.url, timeout=30, limits=httpx.Limits(max_connections=200)
        )

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn stopped"
            time.sleep(0.05)
        self.warm_up()
        return self

    def warm_up(self) -> None:
        """One verification that fetches nothing (a did:jwk issuer) and passes its signature and
        issuer binding, by the API and the page: the process's first pays for imports, for
        processing the shipped JSON-LD contexts and compiling templates, CPU that is not what
        these tests time."""
        issuer = did_jwk(WARM_KEY.public_key())
        claims = ob_credential(issuer)
        token = jwt.encode(claims, WARM_KEY, algorithm="ES256", headers={"kid": issuer + "#0"})
        result, _ = self.verify(token)
        assert check(result, "issuer")["result"] == "pass", result
        assert self.http.post("/verify", data={"credential": token}).status_code == 200

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(15)

    def verify(self, token: str) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        response = self.http.post("/api/v1/verify", json={"credential": token})
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result, elapsed

    def health(self) -> float:
        started = time.monotonic()
        response = self.http.get("/health")
        assert response.status_code == 200, response.text
        return time.monotonic() - started


@pytest.fixture
def service(database_url: str, tmp_path: Path, ca_file: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(**overrides: Any) -> Service:
        svc = Service(database_url, tmp_path / f"keys{len(started)}", ca_file, **overrides)
        svc.__enter__()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.__exit__(None, None, None)


KEY = ec.generate_private_key(ec.SECP256R1())
WARM_KEY = ec.generate_private_key(ec.SECP256R1())


def token_for(host: SlowHost, kid_path: str = "/key.json", **extra: Any) -> str:
    """A credential of the https issuer at `host`, signed with the key it serves at `kid_path`
    (same origin: the key would be bound to the issuer, so it is fetched)."""
    claims = ob_credential(host.origin, **extra)
    return jwt.encode(claims, KEY, algorithm="ES256", headers={"kid": host.origin + kid_path})


def assert_unknown_by(
    result: dict[str, Any], elapsed: float, failing: str, *, within: float = 2 * TIMEOUT
) -> None:
    assert elapsed < within, f"{elapsed:.2f} s"
    assert result["status"] == "unknown", result
    assert result["verified"] is False
    assert check(result, failing)["result"] == "error", result


def test_a_slow_key_host_ends_the_verification_by_the_deadline(
    service: Callable[..., Service], slow: SlowHost
) -> None:
    svc = service(fetch_failure_ttl=0)
    result, elapsed = svc.verify(token_for(slow))
    assert_unknown_by(result, elapsed, "signature")
    assert slow.connections >= 1


def test_a_slow_status_list_ends_the_verification_by_the_deadline(
    service: Callable[..., Service], dripping: SlowHost
) -> None:
    dripping.fast["/key.json"] = json.dumps(public_jwk(KEY.public_key())).encode()
    url = f"{dripping.origin}/status/1"
    entry = {
        "id": f"{url}#7",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "7",
        "statusListCredential": url,
    }
    svc = service(fetch_failure_ttl=0)
    result, elapsed = svc.verify(token_for(dripping, credentialStatus=entry))
    assert check(result, "signature")["result"] == "pass", result
    assert check(result, "issuer")["result"] == "pass", result
    assert_unknown_by(result, elapsed, "status")
    assert "could not be read" in check(result, "status")["detail"]


def test_the_verify_page_ends_by_the_deadline(
    service: Callable[..., Service], dripping: SlowHost
) -> None:
    svc = service(fetch_failure_ttl=0)
    started = time.monotonic()
    response = svc.http.post("/verify", data={"credential": token_for(dripping)})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2 * TIMEOUT, f"{elapsed:.2f} s"
    assert dripping.connections == 1


@pytest.mark.parametrize(
    ("waiting", "within"),
    [
        (20, 2 * CROWD_TIMEOUT),
        # More than AnyIO's 40 worker threads: this many requests' own CPU work (two rounds
        # each, on a machine whose two cores the test's clients share) gets a margin.
        (60, 3 * CROWD_TIMEOUT),
    ],
)
def test_health_answers_while_many_verifications_wait_on_a_slow_host(
    service: Callable[..., Service], dripping: SlowHost, waiting: int, within: float
) -> None:
    """Verifications waiting on a slow host hold neither a database slot (15 of them) nor a
    worker thread (40), so /health (which needs both) stays quick. Each names a key of its
    own, so none is answered by another's failure."""
    svc = service(fetch_failure_ttl=0, fetch_concurrency=4, fetch_timeout=CROWD_TIMEOUT)
    with ThreadPoolExecutor(waiting) as pool:
        futures = [
            pool.submit(svc.verify, token_for(dripping, f"/keys/{n}.json")) for n in range(waiting)
        ]
        until = time.monotonic() + 10
        while dripping.open < 4:  # the fetches are under way
            assert time.monotonic() < until, "the verifications never reached the host"
            time.sleep(0.02)
        pauses, held = [], []
        for _ in range(5):
            held.append(svc.app.state.ctx.engine.pool.checkedout())
            pauses.append(svc.health())
        answered = [f.result() for f in futures]
    assert max(pauses) < 1.0, pauses
    # Database connections in use while they wait: a verification mid-round at most, not one
    # per waiting verification (there are 15 slots).
    assert max(held) <= 3, held
    for result, elapsed in answered:
        assert_unknown_by(result, elapsed, "signature", within=within)
    assert 1 <= dripping.most_at_once() <= 4  # the cap held
    assert dripping.connections <= waiting
    no_slot = [
        r for r, _ in answered if "fetch slots stayed busy" in check(r, "signature")["detail"]
    ]
    assert no_slot, "some verifications should have found every fetch slot busy"


def test_a_failure_is_remembered_and_answered_at_once(
    service: Callable[..., Service], dripping: SlowHost
) -> None:
    svc = service(fetch_failure_ttl=30)
    first, first_took = svc.verify(token_for(dripping))
    assert_unknown_by(first, first_took, "signature")
    assert first_took >= TIMEOUT * 0.9  # it did wait for the host
    connections = dripping.connections
    again, took = svc.verify(token_for(dripping))
    assert took < TIMEOUT / 2, f"{took:.2f} s"
    assert_unknown_by(again, took, "signature")
    assert "not retried yet" in check(again, "signature")["detail"]
    assert dripping.connections == connections  # nothing was asked of the host again

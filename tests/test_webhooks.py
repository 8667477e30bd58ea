"""Signed webhooks (Standard Webhooks): endpoints, the outbox, the dispatcher, end to end.

Deliveries go to a real HTTPS receiver on 127.0.0.1 (a trustme certificate) that checks every
request with the `standardwebhooks` package, an independent implementation of the signature.
Traffic goes to loopback only: the dispatchers of these tests send through a transport that fails
the test for any other address, and the refusal tests through one that fails if it is called at
all. The last test runs `microcred serve` with its dispatcher thread against a receiver that is
down for 30 seconds.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from alembic.command import downgrade
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, event, func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from test_interop_server import ADMIN as SERVER_ADMIN
from test_interop_server import Server

from app.core.context import AppContext
from app.core.fetch import Fetcher
from app.core.keys import SEALED_PREFIX, KeyStore, UnusableKey, unseal_secret
from app.core.migrate import alembic_config, upgrade
from app.main import create_app
from app.webhooks import service as webhooks
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from conftest import BASE_URL, World, bearer, make_settings

LOOPBACK = {"127.0.0.1", "::1"}
SECRET = re.compile(r"^whsec_([A-Za-z0-9+/]+={0,2})$")
CREDENTIAL_EVENTS = [
    "credential.issued",
    "credential.revoked",
    "credential.suspended",
    "credential.unsuspended",
]

# --- a real HTTPS receiver on loopback ------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class _Server(ThreadingHTTPServer):
    # Handler threads are joined when the server closes: no connection outlives the receiver.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    receiver: Receiver

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(5)  # a client that stalls cannot hold a handler thread (and stop()) long
        wrapped = self.receiver.tls.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up hangs up; nothing to report."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = dict(self.headers.items())
        try:
            Webhook(receiver.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        with receiver.lock:
            status = receiver.script.pop(0) if receiver.script else 200
            if not verified:
                status = 400
            receiver.requests.append(
                Received(headers.get("webhook-id", ""), headers, body, verified, status)
            )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """Answers webhook POSTs (scripted statuses, then 200), verifying each with standardwebhooks."""

    def __init__(self, cert: trustme.LeafCert, *, secret: str = "", port: int = 0) -> None:
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.tls)
        self.secret = secret or webhooks.new_secret()
        self.script: list[int] = []
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.verified and 200 <= r.status < 300]


class LoopbackOnly(httpx.BaseTransport):
    """A real transport that fails the test if a request is ever addressed beyond loopback."""

    def __init__(self, ca_file: Path) -> None:
        self.inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(ca_file)))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            pytest.fail(f"a request left loopback: {request.url}")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class MustNotConnect(httpx.BaseTransport):
    """The guard's proof: any request that gets this far fails the test."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pytest.fail(f"a connection was attempted to {request.url}")


@pytest.fixture
def receiver(ca: trustme.CA) -> Iterator[Receiver]:
    r = Receiver(ca.issue_cert("127.0.0.1")).start()
    yield r
    r.stop()


# --- the app, its dispatcher driven by hand -------------------------------------------------------


@dataclass
class Harness:
    client: TestClient
    ctx: AppContext
    dispatcher: Dispatcher
    world: World

    def run(self) -> int:
        return self.dispatcher.run_once()

    def issuer(self, **body: Any) -> tuple[str, dict[str, str], str]:
        """A fresh issuer: (slug, its bearer header, an achievement id)."""
        created = self.world.issuer(**body)
        key = created["api_key"]["key"]
        return created["issuer"]["slug"], bearer(key), self.world.achievement(key)["uuid"]

    def endpoint(
        self, auth: dict[str, str], url: str, events: list[str] | None = None
    ) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/webhooks",
            json={"url": url, "events": events or CREDENTIAL_EVENTS},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def issue(self, auth: dict[str, str], achievement_id: str, **body: Any) -> dict[str, Any]:
        body = {
            "achievement_id": achievement_id,
            "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
            **body,
        }
        response = self.client.post("/api/v1/credentials", json=body, headers=auth)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def change(self, auth: dict[str, str], credential_id: str, action: str) -> None:
        response = self.client.post(
            f"/api/v1/credentials/{credential_id}/{action}",
            json={"reason": f"{action} for the test"},
            headers=auth,
        )
        assert response.status_code == 200, response.text

    def deliveries(self, auth: dict[str, str], endpoint_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/api/v1/webhooks/{endpoint_id}/deliveries", params={"limit": 200}, headers=auth
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness(
    database_url: str, tmp_path: Path, ca_file: Path, receiver: Receiver
) -> Iterator[Callable[..., Harness]]:
    """An app (its own dispatcher thread off) and a dispatcher whose sends stay on loopback.

    It depends on `receiver` so that its dispatchers stop before the receiver does.
    """
    opened: list[tuple[TestClient, Dispatcher, Fetcher]] = []

    def make(**overrides: Any) -> Harness:
        values: dict[str, Any] = {
            "fetch_allow_loopback": True,
            "fetch_ca_bundle": ca_file,
            "background_workers": False,
            "webhook_timeout": 2.0,
            "webhook_retry_base": 0.2,
            "webhook_retry_max_interval": 10.0,
            # As in production: endpoint secrets are stored sealed, and every delivery opens one.
            "keys_passphrase": SecretStr("webhook tests passphrase"),
        }
        values.update(overrides)
        settings = make_settings(database_url, tmp_path / f"keys{len(opened)}", **values)
        client = TestClient(create_app(settings), base_url=BASE_URL)
        client.__enter__()
        ctx: AppContext = client.app.state.ctx  # type: ignore[attr-defined]
        fetcher = Fetcher(
            allow_loopback=settings.fetch_allow_loopback,
            timeout=2.0,
            max_bytes=64 * 1024,
            cache_ttl=0,
            transport=LoopbackOnly(ca_file),
        )
        dispatcher = Dispatcher(
            sessions=ctx.sessions,
            read_sessions=ctx.read_sessions,
            fetcher=fetcher,
            settings=settings,
            keystore=ctx.keystore,
        )
        opened.append((client, dispatcher, fetcher))
        return Harness(client=client, ctx=ctx, dispatcher=dispatcher, world=World(client))

    yield make
    for client, dispatcher, fetcher in opened:
        dispatcher.stop()
        fetcher.close()
        client.__exit__(None, None, None)


@pytest.fixture
def harness(make_harness: MakeHarness) -> Harness:
    return make_harness()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- endpoints: CRUD and validation ---------------------------------------------------------------


def test_endpoint_lifecycle_and_secret(harness: Harness, receiver: Receiver) -> None:
    client = harness.client
    _, auth, _ = harness.issuer()
    created = harness.endpoint(auth, receiver.url, ["credential.issued", "credential.issued"])
    assert created["events"] == ["credential.issued"]  # duplicates folded
    assert created["enabled"] is True
    match = SECRET.match(created["secret"])
    assert match, created["secret"]
    assert 24 <= len(base64.b64decode(match.group(1))) <= 32

    listed = client.get("/api/v1/webhooks", headers=auth).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    read = client.get(f"/api/v1/webhooks/{created['id']}", headers=auth).json()
    assert "secret" not in read
    assert read["url"] == receiver.url

    patched = client.patch(
        f"/api/v1/webhooks/{created['id']}",
        json={"events": ["credential.revoked", "job.completed"], "description": "ops"},
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["credential.revoked", "job.completed"]
    assert patched.json()["description"] == "ops"

    rotated = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=auth)
    assert rotated.status_code == 200, rotated.text
    assert SECRET.match(rotated.json()["secret"])
    assert rotated.json()["secret"] != created["secret"]

    assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=auth).status_code == 204
    _problem(client.get(f"/api/v1/webhooks/{created['id']}", headers=auth), 404)
    assert client.get("/api/v1/webhooks", headers=auth).json() == []
    _problem(client.get("/api/v1/webhooks"), 401)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.northwind.org/microcred", "https"),
        ("https://10.0.0.7/hooks", "private"),
        ("https://192.168.1.20:8443/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::ffff:10.0.0.1]/hooks", "private"),
        ("https://localhost/hooks", "loopback"),
        ("https://127.0.0.1:8443/hooks", "loopback"),
        ("https://hooks.internal/x", "special-use"),
        ("https://user:pw@hooks.northwind.org/", "credentials"),
        ("not a url at all", "https"),
        ("https://", "URL"),
    ],
)
def test_hostile_urls_are_refused_without_a_connection(
    make_harness: MakeHarness, url: str, why: str
) -> None:
    harness = make_harness(fetch_allow_loopback=False)
    harness.ctx.fetcher = Fetcher(
        allow_loopback=False, timeout=1.0, max_bytes=1024, cache_ttl=0, transport=MustNotConnect()
    )
    _, auth, _ = harness.issuer()
    refused = harness.client.post(
        "/api/v1/webhooks", json={"url": url, "events": ["credential.issued"]}, headers=auth
    )
    problem = _problem(refused, 422)
    assert why in problem["detail"], problem
    assert problem["errors"][0]["loc"] == ["body", "url"]
    assert harness.client.get("/api/v1/webhooks", headers=auth).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://127.0.0.1/x", "events": ["credential.exploded"]},
        {"url": "https://127.0.0.1/x", "events": []},
        {"url": "https://127.0.0.1/x"},
        {"events": ["credential.issued"]},
        {"url": "https://127.0.0.1/x", "events": ["credential.issued"], "extra": 1},
    ],
)
def test_invalid_registrations_are_422(harness: Harness, body: dict[str, Any]) -> None:
    _, auth, _ = harness.issuer()
    _problem(harness.client.post("/api/v1/webhooks", json=body, headers=auth), 422)


def test_patch_revalidates_the_url(make_harness: MakeHarness, receiver: Receiver) -> None:
    harness = make_harness()
    _, auth, _ = harness.issuer()
    created = harness.endpoint(auth, receiver.url)
    refused = harness.client.patch(
        f"/api/v1/webhooks/{created['id']}",
        json={"url": "https://169.254.169.254/latest"},
        headers=auth,
    )
    assert "link-local" in _problem(refused, 422)["detail"]
    assert harness.client.get(f"/api/v1/webhooks/{created['id']}", headers=auth).json()["url"] == (
        receiver.url
    )


def test_another_issuers_endpoint_is_404(harness: Harness, receiver: Receiver) -> None:
    client = harness.client
    _, owner, achievement = harness.issuer()
    _, intruder, _ = harness.issuer()
    endpoint = harness.endpoint(owner, receiver.url)
    harness.issue(owner, achievement)
    harness.run()
    delivery = harness.deliveries(owner, endpoint["id"])[0]
    base = f"/api/v1/webhooks/{endpoint['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery['id']}/replay", None),
    ]:
        response = client.request(method, path, json=body, headers=intruder)
        _problem(response, 404)
    assert client.get("/api/v1/webhooks", headers=intruder).json() == []
    # the owner's endpoint is untouched
    assert client.get(base, headers=owner).json()["enabled"] is True
    assert len(receiver.requests) == 1


# --- signatures -----------------------------------------------------------------------------------


def test_delivery_is_signed_the_standard_webhooks_way(harness: Harness, receiver: Receiver) -> None:
    slug, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    credential = harness.issue(auth, achievement)
    assert receiver.requests == []  # nothing is sent inside the request
    assert harness.run() == 1

    [got] = receiver.requests
    assert got.verified
    assert got.status == 200
    headers = got.headers
    assert re.fullmatch(r"msg_[0-9a-f]{32}", headers["webhook-id"])
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    # the independent verifier, and our own arithmetic spelled out once
    assert Webhook(endpoint["secret"]).verify(got.body, headers) == got.payload
    payload = got.payload
    assert payload["type"] == "credential.issued"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["data"] == {
        "id": credential["id"],
        "url": credential["url"],
        "issuer": slug,
        "achievement_id": achievement,
        "status": "active",
    }

    tampered = got.body.replace(b"credential.issued", b"credential.revoked")
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(got.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body, {**headers, "webhook-id": "msg_other"})

    [delivery] = harness.deliveries(auth, endpoint["id"])
    assert delivery["webhook_id"] == headers["webhook-id"]
    assert delivery["state"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is not None


def test_rotated_secret_signs_from_then_on(harness: Harness, receiver: Receiver) -> None:
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    harness.issue(auth, achievement)
    rotated = harness.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth
    ).json()
    receiver.secret = rotated["secret"]
    harness.run()
    [got] = receiver.requests
    assert got.verified  # queued before the rotation, signed with the new secret when sent
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body, got.headers)


# --- the outbox -----------------------------------------------------------------------------------


def test_every_event_reaches_subscribers_only(
    harness: Harness, ca: trustme.CA, receiver: Receiver
) -> None:
    slug, auth, achievement = harness.issuer(suspension=True)
    everything = harness.endpoint(auth, receiver.url)
    other = Receiver(ca.issue_cert("127.0.0.1")).start()
    try:
        revocations = harness.endpoint(auth, other.url, ["credential.revoked"])
        off = harness.endpoint(auth, other.url)
        disabled = harness.client.patch(
            f"/api/v1/webhooks/{off['id']}", json={"enabled": False}, headers=auth
        )
        assert disabled.json()["enabled"] is False
        receiver.secret = everything["secret"]
        other.secret = revocations["secret"]

        first = harness.issue(auth, achievement)
        second = harness.issue(auth, achievement)
        harness.change(auth, first["id"], "suspend")
        harness.change(auth, first["id"], "unsuspend")
        harness.change(auth, second["id"], "revoke")
        assert harness.run() == 6
    finally:
        other.stop()

    seen = [(r.payload["type"], r.payload["data"]["id"]) for r in receiver.requests]
    assert sorted(seen) == sorted(
        [
            ("credential.issued", first["id"]),
            ("credential.issued", second["id"]),
            ("credential.suspended", first["id"]),
            ("credential.unsuspended", first["id"]),
            ("credential.revoked", second["id"]),
        ]
    )
    assert all(r.verified for r in receiver.requests)
    by_type = {r.payload["type"]: r.payload["data"] for r in receiver.requests}
    assert by_type["credential.suspended"]["status"] == "suspended"
    assert by_type["credential.suspended"]["reason"] == "suspend for the test"
    assert by_type["credential.unsuspended"]["status"] == "active"
    assert by_type["credential.revoked"] == {
        "id": second["id"],
        "url": second["url"],
        "issuer": slug,
        "achievement_id": achievement,
        "status": "revoked",
        "reason": "revoke for the test",
    }
    [revoked] = other.requests
    assert revoked.verified
    assert revoked.payload["type"] == "credential.revoked"
    assert harness.deliveries(auth, off["id"]) == []
    assert {d["event_type"] for d in harness.deliveries(auth, everything["id"])} == set(
        CREDENTIAL_EVENTS
    )


def test_no_endpoint_no_outbox_rows(harness: Harness, receiver: Receiver) -> None:
    _, auth, achievement = harness.issuer()
    _, other_auth, _ = harness.issuer()
    harness.endpoint(other_auth, receiver.url)  # another issuer's endpoint sees nothing
    credential = harness.issue(auth, achievement)
    harness.change(auth, credential["id"], "revoke")
    with harness.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookMessage)) == 0
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert harness.run() == 0
    assert receiver.requests == []


def test_enqueue_many_is_one_query_and_bulk_inserts(harness: Harness, receiver: Receiver) -> None:
    _, auth, _ = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    harness.endpoint(auth, receiver.url, ["job.completed"])
    engine = harness.ctx.engine
    with harness.ctx.sessions() as session:
        owner = session.scalars(
            select(WebhookEndpoint.issuer_id).where(WebhookEndpoint.id == uuid.UUID(endpoint["id"]))
        ).one()
    statements: list[tuple[str, bool]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool
    ) -> None:
        statements.append((statement.strip().split()[0].upper(), many))

    events = [("credential.issued", {"id": str(n)}) for n in range(2000)]
    events.append(("credential.revoked", {"id": "nobody-wants-this"}))
    event.listen(engine, "before_cursor_execute", record)
    try:
        with harness.ctx.sessions() as session, session.begin():
            webhooks.enqueue_many(session, issuer_id=owner, events=events)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    selects = [s for s in statements if s[0] == "SELECT"]
    assert len(selects) == 1, statements  # one endpoint query per call
    # the inserts go out in batches (executemany / insertmanyvalues), never a row at a time
    assert 2 <= len([s for s in statements if s[0] == "INSERT"]) <= 20, statements
    with harness.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookMessage)) == 2000
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2000

    with harness.ctx.sessions() as session, pytest.raises(ValueError, match="unknown webhook"):
        webhooks.enqueue_many(session, issuer_id=owner, events=[("credential.exploded", {})])


# --- retries, failure, replay ---------------------------------------------------------------------


def _due_in(delivery: dict[str, Any]) -> float:
    last = datetime.fromisoformat(delivery["last_attempt_at"])
    return (datetime.fromisoformat(delivery["next_attempt_at"]) - last).total_seconds()


def _wait_until_due(delivery: dict[str, Any]) -> None:
    due = datetime.fromisoformat(delivery["next_attempt_at"]).timestamp()
    time.sleep(max(0.0, due - time.time()) + 0.05)


def test_retries_back_off_then_succeed(make_harness: MakeHarness, receiver: Receiver) -> None:
    # A base long enough that "not due yet" holds on a loaded machine (0.2 s did not, once).
    base = 1.0
    harness = make_harness(webhook_retry_base=base)
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    receiver.script = [500, 503]
    harness.issue(auth, achievement)

    assert harness.run() == 1
    [first] = harness.deliveries(auth, endpoint["id"])
    assert first["state"] == "pending"
    assert first["attempts"] == 1
    assert first["last_status_code"] == 500
    assert first["last_error"] == "HTTP 500"
    assert base * 0.8 - 0.01 <= _due_in(first) <= base + 0.01  # base, less jitter
    assert harness.run() == 0  # not due yet

    _wait_until_due(first)
    assert harness.run() == 1
    [second] = harness.deliveries(auth, endpoint["id"])
    assert second["attempts"] == 2
    assert second["last_status_code"] == 503
    assert 2 * base * 0.8 - 0.01 <= _due_in(second) <= 2 * base + 0.01
    assert _due_in(second) > _due_in(first)

    _wait_until_due(second)
    assert harness.run() == 1
    [done] = harness.deliveries(auth, endpoint["id"])
    assert done["state"] == "succeeded"
    assert done["attempts"] == 3
    assert done["last_status_code"] == 200
    assert done["last_error"] is None
    assert done["next_attempt_at"] is None
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    # every attempt carries the same webhook-id, and a fresh timestamp and signature
    assert {r.webhook_id for r in receiver.requests} == {done["webhook_id"]}
    assert all(r.verified for r in receiver.requests)
    _wait_until_due({"next_attempt_at": datetime.now().astimezone().isoformat()})
    assert harness.run() == 0
    assert len(receiver.requests) == 3  # nothing more once it succeeded


def test_retry_schedule_doubles_up_to_the_cap() -> None:
    delays = [webhooks.retry_delay(n, base=5, cap=3600) for n in range(1, 13)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(3600, 5 * 2 ** (n - 1))
        assert 0.8 * nominal <= delay <= nominal
    assert all(b > a for a, b in itertools.pairwise(delays[:10]))
    assert webhooks.retry_delay(500, base=5, cap=3600) <= 3600


def test_max_attempts_fail_then_replay_delivers_with_the_same_id(
    make_harness: MakeHarness, receiver: Receiver
) -> None:
    harness = make_harness(webhook_max_attempts=3, webhook_retry_base=0.05)
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    receiver.script = [500, 500, 500]
    harness.issue(auth, achievement)
    for _ in range(3):
        harness.run()
        [delivery] = harness.deliveries(auth, endpoint["id"])
        if delivery["state"] == "pending":
            _wait_until_due(delivery)
    [failed] = harness.deliveries(auth, endpoint["id"])
    assert failed["state"] == "failed"
    assert failed["attempts"] == 3
    assert failed["next_attempt_at"] is None
    assert failed["last_error"] == "HTTP 500"
    assert harness.run() == 0
    assert [r.status for r in receiver.requests] == [500, 500, 500]

    url = f"/api/v1/webhooks/{endpoint['id']}/deliveries/{failed['id']}/replay"
    replayed = harness.client.post(url, headers=auth)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["state"] == "pending"
    assert replayed.json()["webhook_id"] == failed["webhook_id"]
    assert harness.run() == 1
    [done] = harness.deliveries(auth, endpoint["id"])
    assert done["state"] == "succeeded"
    assert receiver.requests[-1].status == 200
    assert {r.webhook_id for r in receiver.requests} == {failed["webhook_id"]}

    # a delivered message can be replayed too: the same id again (receivers deduplicate on it)
    assert harness.client.post(url, headers=auth).status_code == 202
    assert harness.run() == 1
    assert [r.webhook_id for r in receiver.accepted()] == [failed["webhook_id"]] * 2
    _problem(
        harness.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries/{endpoint['id']}/replay", headers=auth
        ),
        404,
    )


def test_unreachable_receiver_records_the_transport_error(harness: Harness, ca: trustme.CA) -> None:
    down = Receiver(ca.issue_cert("127.0.0.1")).start()
    url = down.url
    down.stop()  # nothing listens there any more
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, url, ["credential.issued"])
    harness.issue(auth, achievement)
    assert harness.run() == 1
    [delivery] = harness.deliveries(auth, endpoint["id"])
    assert delivery["state"] == "pending"
    assert delivery["last_status_code"] is None
    assert "cannot connect" in delivery["last_error"]


def test_send_time_guard_refuses_without_connecting(harness: Harness, receiver: Receiver) -> None:
    """Registered while loopback was allowed; refused at send time by a guard that forbids it."""
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    harness.issue(auth, achievement)
    strict = Fetcher(
        allow_loopback=False, timeout=1.0, max_bytes=1024, cache_ttl=0, transport=MustNotConnect()
    )
    dispatcher = Dispatcher(
        sessions=harness.ctx.sessions,
        fetcher=strict,
        settings=harness.ctx.settings,
        keystore=harness.ctx.keystore,
    )
    try:
        assert dispatcher.run_once() == 1
    finally:
        dispatcher.stop()
        strict.close()
    [delivery] = harness.deliveries(auth, endpoint["id"])
    assert delivery["state"] == "pending"
    assert "loopback" in delivery["last_error"]
    assert receiver.requests == []


def test_disabling_cancels_and_deleting_drops_pending(harness: Harness, receiver: Receiver) -> None:
    _, auth, achievement = harness.issuer()
    kept = harness.endpoint(auth, receiver.url, ["credential.issued"])
    gone = harness.endpoint(auth, receiver.url, ["credential.issued"])
    harness.issue(auth, achievement)
    off = harness.client.patch(
        f"/api/v1/webhooks/{kept['id']}", json={"enabled": False}, headers=auth
    )
    assert off.status_code == 200
    assert harness.client.delete(f"/api/v1/webhooks/{gone['id']}", headers=auth).status_code == 204
    assert harness.run() == 0
    assert receiver.requests == []
    [cancelled] = harness.deliveries(auth, kept["id"])
    assert cancelled["state"] == "cancelled"
    assert cancelled["attempts"] == 0
    replay = f"/api/v1/webhooks/{kept['id']}/deliveries/{cancelled['id']}/replay"
    assert "disabled" in _problem(harness.client.post(replay, headers=auth), 409)["detail"]
    with harness.ctx.sessions() as session:
        # the deleted endpoint's deliveries are gone; the message stays for the other endpoint
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
        assert session.scalar(select(func.count()).select_from(WebhookMessage)) == 1
    on = harness.client.patch(
        f"/api/v1/webhooks/{kept['id']}", json={"enabled": True}, headers=auth
    )
    assert on.status_code == 200
    assert harness.client.post(replay, headers=auth).status_code == 202
    assert harness.run() == 1
    assert len(receiver.requests) == 1
    assert harness.client.delete(f"/api/v1/webhooks/{kept['id']}", headers=auth).status_code == 204
    with harness.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookMessage)) == 0


def test_deliveries_are_paginated_newest_first(harness: Harness, receiver: Receiver) -> None:
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    issued = [harness.issue(auth, achievement)["id"] for _ in range(5)]
    harness.run()
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = harness.client.get(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries", params=params, headers=auth
        ).json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(set(seen)) == 5
    created = [d["created_at"] for d in harness.deliveries(auth, endpoint["id"])]
    assert created == sorted(created, reverse=True)
    ids = {json.loads(r.body)["data"]["id"] for r in receiver.requests}
    assert ids == set(issued)
    succeeded = harness.client.get(
        f"/api/v1/webhooks/{endpoint['id']}/deliveries",
        params={"state": "succeeded"},
        headers=auth,
    ).json()
    assert len(succeeded["items"]) == 5
    bad = harness.client.get(
        f"/api/v1/webhooks/{endpoint['id']}/deliveries", params={"cursor": "zzz"}, headers=auth
    )
    _problem(bad, 400)


def test_concurrent_dispatchers_send_each_message_once(
    harness: Harness, receiver: Receiver
) -> None:
    """Several dispatchers (as in several processes) claim disjoint batches: SKIP LOCKED on
    PostgreSQL, the write lock on SQLite."""
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    for _ in range(30):
        harness.issue(auth, achievement)
    dispatchers = [
        Dispatcher(
            sessions=harness.ctx.sessions,
            fetcher=harness.dispatcher._fetcher,  # the loopback-only transport
            settings=harness.ctx.settings,
            keystore=harness.ctx.keystore,
        )
        for _ in range(4)
    ]
    counts: list[int] = []
    barrier = threading.Barrier(len(dispatchers))

    def run(d: Dispatcher) -> None:
        barrier.wait()
        counts.append(d.run_once())

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for d in dispatchers:
        d.stop()
    assert sum(counts) == 30
    ids = Counter(r.webhook_id for r in receiver.requests)
    assert len(ids) == 30
    assert set(ids.values()) == {1}
    assert all(d["state"] == "succeeded" for d in harness.deliveries(auth, endpoint["id"]))


def test_the_app_runs_its_dispatcher_only_when_told(
    make_harness: MakeHarness, receiver: Receiver
) -> None:
    quiet = make_harness()  # background_workers=False
    _, auth, achievement = quiet.issuer()
    quiet.endpoint(auth, receiver.url, ["credential.issued"])
    quiet.issue(auth, achievement)
    time.sleep(0.5)
    assert receiver.requests == []

    busy = make_harness(background_workers=True, webhook_poll_interval=0.1)
    _, auth, achievement = busy.issuer()
    endpoint = busy.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = endpoint["secret"]
    busy.issue(auth, achievement)
    deadline = time.monotonic() + 10
    while not receiver.accepted() and time.monotonic() < deadline:
        time.sleep(0.05)
    [got] = receiver.accepted()
    assert got.payload["type"] == "credential.issued"


# --- acceptance: a real server, its dispatcher thread, a receiver down for 30 s ------------------


@pytest.mark.slow
def test_acceptance_receiver_down_for_30_seconds(
    database_url: str, tmp_path: Path, ca: trustme.CA, ca_file: Path
) -> None:
    server = Server(tmp_path)
    server.env.update(
        {
            "MICROCRED_DATABASE_URL": database_url,
            "MICROCRED_FETCH_ALLOW_LOOPBACK": "true",
            "MICROCRED_FETCH_CA_BUNDLE": str(ca_file),
            "MICROCRED_BACKGROUND_WORKERS": "true",
            "MICROCRED_WEBHOOK_POLL_INTERVAL": "0.5",
            "MICROCRED_WEBHOOK_TIMEOUT": "3",
            "MICROCRED_WEBHOOK_RETRY_BASE": "1",
            "MICROCRED_WEBHOOK_RETRY_MAX_INTERVAL": "4",
            "MICROCRED_WEBHOOK_MAX_ATTEMPTS": "50",
        }
    )
    # A port to come back on: free now, and nothing listens on it for the next 30 s.
    probe = Receiver(ca.issue_cert("127.0.0.1")).start()
    port = probe.port
    probe.stop()
    receiver = Receiver(ca.issue_cert("127.0.0.1"), port=port)

    migrated = server.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        server.start()
        with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
            created = http.post(
                "/api/v1/issuers",
                json={"name": "Harbour College", "url": "https://harbour.org", "suspension": True},
                headers=SERVER_ADMIN,
            )
            assert created.status_code == 201, created.text
            auth = bearer(created.json()["api_key"]["key"])
            achievement = http.post(
                "/api/v1/achievements",
                json={
                    "name": "Welding Safety",
                    "description": "Works safely with arc welding equipment.",
                    "criteria": {"narrative": "Passed the practical."},
                },
                headers=auth,
            )
            assert achievement.status_code == 201, achievement.text
            endpoint = http.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": CREDENTIAL_EVENTS},
                headers=auth,
            )
            assert endpoint.status_code == 201, endpoint.text
            endpoint_id = endpoint.json()["id"]
            receiver.secret = endpoint.json()["secret"]

            down_since = time.monotonic()
            ids = []
            for n in range(5):
                issued = http.post(
                    "/api/v1/credentials",
                    json={
                        "achievement_id": achievement.json()["uuid"],
                        "recipient": {"email": f"learner{n}@example.org"},
                    },
                    headers=auth,
                )
                assert issued.status_code == 201, issued.text
                ids.append(issued.json()["id"])
            for credential_id, action in [
                (ids[0], "revoke"),
                (ids[1], "suspend"),
                (ids[1], "unsuspend"),
            ]:
                changed = http.post(
                    f"/api/v1/credentials/{credential_id}/{action}",
                    json={"reason": "acceptance"},
                    headers=auth,
                )
                assert changed.status_code == 200, changed.text
            expected = Counter(
                {
                    "credential.issued": 5,
                    "credential.revoked": 1,
                    "credential.suspended": 1,
                    "credential.unsuspended": 1,
                }
            )

            def deliveries() -> list[dict[str, Any]]:
                page = http.get(
                    f"/api/v1/webhooks/{endpoint_id}/deliveries",
                    params={"limit": 200},
                    headers=auth,
                )
                assert page.status_code == 200, page.text
                items: list[dict[str, Any]] = page.json()["items"]
                return items

            # Down: the dispatcher keeps trying and records why it fails.
            time.sleep(max(0.0, 30 - (time.monotonic() - down_since)))
            during = deliveries()
            assert len(during) == 8
            assert all(d["state"] == "pending" for d in during), during
            assert all(d["attempts"] >= 3 for d in during), during
            assert all("cannot connect" in (d["last_error"] or "") for d in during), during

            receiver.start()
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if len(receiver.accepted()) >= 8 and all(
                        d["state"] == "succeeded" for d in deliveries()
                    ):
                        break
                    time.sleep(0.25)
                time.sleep(3)  # anything sent twice (a retry after a success) would arrive now
            finally:
                receiver.stop()
            final = deliveries()
    finally:
        server.stop()
        server.kill_group()

    assert all(r.verified for r in receiver.requests), [r.headers for r in receiver.requests]
    accepted = receiver.accepted()
    by_id = Counter(r.webhook_id for r in accepted)
    assert len(by_id) == 8, by_id
    assert set(by_id.values()) == {1}, by_id
    assert Counter(r.payload["type"] for r in accepted) == expected
    assert len(receiver.requests) == 8  # and nothing was sent again after its success
    assert {d["webhook_id"] for d in final} == set(by_id)
    assert all(d["state"] == "succeeded" for d in final), final
    assert all(d["attempts"] > 1 for d in final), final
    assert all(d["last_status_code"] == 200 for d in final), final


# --- secrets at rest ------------------------------------------------------------------------------


def _stored_secret(harness: Harness, endpoint_id: str) -> str:
    with harness.ctx.sessions() as session:
        stored = session.scalar(
            select(WebhookEndpoint.secret).where(WebhookEndpoint.id == uuid.UUID(endpoint_id))
        )
    assert stored is not None
    return stored


def test_secrets_are_stored_sealed_and_deliveries_still_verify(
    harness: Harness, receiver: Receiver
) -> None:
    _, auth, achievement = harness.issuer()
    endpoint = harness.endpoint(auth, receiver.url, ["credential.issued"])
    stored = _stored_secret(harness, endpoint["id"])
    secret = endpoint["secret"]
    key_part = secret.removeprefix("whsec_")
    assert stored.startswith(SEALED_PREFIX)
    assert secret not in stored
    assert key_part not in stored
    assert base64.b64decode(key_part) not in base64.urlsafe_b64decode(stored.split("$")[-1] + "==")
    # Bound to its row: the same value under another endpoint's id does not open.
    other = str(uuid.uuid4())
    with pytest.raises(UnusableKey):
        harness.ctx.keystore.unseal(stored, context=webhooks.secret_context(uuid.UUID(other)))
    # Under another passphrase it does not open either.
    with pytest.raises(UnusableKey):
        KeyStore(harness.ctx.settings.keys_dir, "another passphrase").unseal(
            stored, context=webhooks.secret_context(uuid.UUID(endpoint["id"]))
        )
    receiver.secret = secret
    harness.issue(auth, achievement)
    assert harness.run() == 1
    [got] = receiver.requests
    assert got.verified
    rotated = harness.client.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth)
    assert rotated.status_code == 200
    again = _stored_secret(harness, endpoint["id"])
    assert again.startswith(SEALED_PREFIX)
    assert again != stored
    assert rotated.json()["secret"] not in again


def test_a_secret_that_does_not_open_fails_the_attempt_not_the_dispatcher(
    harness: Harness, receiver: Receiver
) -> None:
    _, auth, achievement = harness.issuer()
    first = harness.endpoint(auth, receiver.url, ["credential.issued"])
    second = harness.endpoint(auth, receiver.url, ["credential.issued"])
    receiver.secret = first["secret"]
    moved = _stored_secret(harness, first["id"])
    with harness.ctx.sessions() as session, session.begin():
        row = session.get(WebhookEndpoint, uuid.UUID(second["id"]))
        assert row is not None
        row.secret = moved  # a sealed value moved to another row
    harness.issue(auth, achievement)
    harness.run()
    [delivered] = receiver.requests  # the first endpoint's delivery still went out, signed
    assert delivered.verified
    [refused] = harness.deliveries(auth, second["id"])
    assert refused["state"] == "pending"
    assert refused["last_error"].startswith("secret:")


def test_the_migration_seals_clear_secrets_and_downgrade_opens_them(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.delenv("MICROCRED_KEYS_PASSPHRASE", raising=False)
    settings = make_settings(
        database_url, tmp_path / "keys", fetch_allow_loopback=True, background_workers=False
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        world = World(client)
        key = world.issuer()["api_key"]["key"]
        created = [
            client.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": ["credential.issued"]},
                headers=bearer(key),
            ).json()
            for _ in range(3)
        ]
    engine = create_engine(database_url)

    def stored() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(select(WebhookEndpoint.id, WebhookEndpoint.secret)).all()
        return {str(i): s for i, s in rows}

    try:
        clear = {e["id"]: e["secret"] for e in created}
        assert stored() == clear  # no passphrase: stored in clear, as keys are
        downgrade(alembic_config(database_url), "5a8c3e1f7b24")
        monkeypatch.setenv("MICROCRED_KEYS_PASSPHRASE", "migration passphrase")
        upgrade(database_url)
        sealed = stored()
        for endpoint_id, secret in clear.items():
            assert sealed[endpoint_id].startswith(SEALED_PREFIX)
            assert (
                unseal_secret(
                    b"migration passphrase",
                    sealed[endpoint_id],
                    context=webhooks.secret_context(uuid.UUID(endpoint_id)),
                )
                == secret
            )
        upgrade(database_url)  # at head already: nothing sealed twice
        assert stored() == sealed
        monkeypatch.delenv("MICROCRED_KEYS_PASSPHRASE")
        with pytest.raises(RuntimeError, match="MICROCRED_KEYS_PASSPHRASE"):
            downgrade(alembic_config(database_url), "5a8c3e1f7b24")
        monkeypatch.setenv("MICROCRED_KEYS_PASSPHRASE", "migration passphrase")
        downgrade(alembic_config(database_url), "5a8c3e1f7b24")
        assert stored() == clear
        upgrade(database_url)
    finally:
        engine.dispose()

"""Rate limits: bursts of wrong credentials and of verifications end in 429 problems with
Retry-After; correct callers elsewhere are unaffected; the budget comes back with its window.

Each client of the app is a TestClient with its own ASGI client address (what uvicorn sets from
the peer, or from X-Forwarded-For of a trusted proxy).
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_interop_server import ADMIN as ADMIN_SERVER
from test_interop_server import Server

from app.core.config import Settings
from app.main import create_app
from conftest import ADMIN, BASE_URL, World, bearer, make_settings

PROBLEM = "application/problem+json"
WRONG_MANAGE = "mcm_" + "A" * 43


def _app(database_url: str, tmp_path: Path, **limits: Any) -> FastAPI:
    return create_app(
        make_settings(database_url, tmp_path / "keys", rate_limits_enabled=True, **limits)
    )


@pytest.fixture
def clients() -> Iterator[Callable[[FastAPI, str], TestClient]]:
    opened: list[TestClient] = []

    def open_client(app: FastAPI, address: str) -> TestClient:
        client = TestClient(app, base_url=BASE_URL, client=(address, 40000))
        client.__enter__()
        opened.append(client)
        return client

    yield open_client
    for client in reversed(opened):
        client.__exit__(None, None, None)


def _is_429(response: httpx.Response) -> int:
    """The Retry-After of a 429 problem (checked whole)."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    return retry_after


def _until_allowed(send: Callable[[], httpx.Response], deadline: float = 15.0) -> httpx.Response:
    """Send until the answer is no longer 429 (the window has moved on); fail after `deadline`."""
    end = time.monotonic() + deadline
    while True:
        response = send()
        if response.status_code != 429:
            return response
        assert time.monotonic() < end, "the limit never reset"
        time.sleep(min(0.5, float(response.headers["retry-after"])))


def test_wrong_admin_tokens_get_429_after_the_limit_and_the_limit_resets(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(database_url, tmp_path, rate_limit_auth="5/2 seconds")
    attacker, operator = clients(app, "203.0.113.7"), clients(app, "198.51.100.2")
    for i in range(5):
        response = attacker.get("/api/v1/issuers", headers=bearer(f"guess-{i}-{'x' * 24}"))
        assert response.status_code == 401, response.text
    _is_429(attacker.get("/api/v1/issuers", headers=bearer("guess-6")))
    # The address is refused even with the right token: it spent its budget.
    _is_429(attacker.get("/api/v1/issuers", headers=ADMIN))
    # The operator, elsewhere, is not affected.
    for _ in range(3):
        assert operator.get("/api/v1/issuers", headers=ADMIN).status_code == 200
    # No token at all is not a guess; it is told so, and counts nothing.
    assert operator.get("/api/v1/issuers").status_code == 401
    # The window moves on: the attacker's address may try again.
    again = _until_allowed(lambda: attacker.get("/api/v1/issuers", headers=ADMIN))
    assert again.status_code == 200


def test_guesses_at_the_operator_token_from_many_addresses_are_refused(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(
        database_url,
        tmp_path,
        rate_limit_auth="3/minute",
        rate_limit_auth_per_credential="7/minute",
    )
    answers = []
    for n in range(4):
        client = clients(app, f"192.0.2.{n + 10}")
        answers += [client.get("/api/v1/issuers", headers=bearer(f"g{n}{i}")) for i in range(3)]
    # 3 per address stay under the address budget; the 8th guess overall spends the token's.
    assert [r.status_code for r in answers[:7]] == [401] * 7
    for response in answers[7:]:
        _is_429(response)
    _is_429(clients(app, "192.0.2.99").get("/api/v1/issuers", headers=bearer("another")))


def test_wrong_api_keys_get_429_and_a_real_key_elsewhere_is_served(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(database_url, tmp_path, rate_limit_auth="4/minute")
    issuer_side = clients(app, "198.51.100.20")
    key = World(issuer_side).issuer()["api_key"]["key"]
    attacker = clients(app, "203.0.113.8")
    statuses = [
        attacker.get("/api/v1/achievements", headers=bearer(f"mck_guess{i:04d}{'y' * 30}"))
        for i in range(6)
    ]
    assert [r.status_code for r in statuses[:4]] == [401] * 4
    for response in statuses[4:]:
        _is_429(response)
    # Correct keys are not failures, however many: the issuer is served throughout.
    for _ in range(8):
        assert issuer_side.get("/api/v1/achievements", headers=bearer(key)).status_code == 200


def test_one_api_key_prefix_guessed_from_many_addresses_is_refused(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(
        database_url,
        tmp_path,
        rate_limit_auth="100/minute",
        rate_limit_auth_per_credential="5/minute",
    )
    owner = clients(app, "198.51.100.21")
    key = World(owner).issuer()["api_key"]["key"]
    # Someone who saw the key's listed prefix guesses the rest, from a new address each time.
    answers = [
        clients(app, f"192.0.2.{n + 30}").get(
            "/api/v1/achievements", headers=bearer(key[:12] + f"{n:02d}" + "z" * 30)
        )
        for n in range(7)
    ]
    assert [r.status_code for r in answers[:5]] == [401] * 5
    _is_429(answers[5])
    # A key with another prefix is not that credential.
    assert (
        owner.get("/api/v1/achievements", headers=bearer("mck_other" + "q" * 30)).status_code == 401
    )


def test_wrong_manage_tokens_get_429_on_the_api_and_the_page(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(database_url, tmp_path, rate_limit_auth="5/2 seconds")
    learner = clients(app, "198.51.100.30")
    _, credential = World(learner).issued()
    token = credential["manage_url"].rsplit("/", 1)[1]
    attacker = clients(app, "203.0.113.9")
    guesses = [
        "mcm_" + "B" * 43,  # well-formed
        "not-a-token",  # malformed: 404 without a lookup, still a failed attempt
        f"mcm_{'C' * 43}",
    ]
    answers = [attacker.get(f"/api/v1/manage/{guesses[i % 3]}") for i in range(5)]
    assert [r.status_code for r in answers] == [404] * 5
    _is_429(attacker.get(f"/api/v1/manage/{WRONG_MANAGE}"))
    _is_429(attacker.delete(f"/api/v1/manage/{WRONG_MANAGE}/portfolio"))
    page = attacker.get(f"/manage/{WRONG_MANAGE}", headers={"Accept": "text/html"})
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) >= 1
    assert "Too many attempts" in page.text
    assert page.headers["cache-control"] == "no-store"
    form = attacker.post(f"/manage/{WRONG_MANAGE}/name-visibility", data={"hidden": "true"})
    assert form.status_code == 429
    assert "set-cookie" not in form.headers
    # The learner's own link works throughout.
    assert learner.get(f"/api/v1/manage/{token}").status_code == 200
    assert learner.get(f"/manage/{token}").status_code == 200
    again = _until_allowed(lambda: attacker.get(f"/api/v1/manage/{token}"))
    assert again.status_code == 200


def test_wrong_portfolio_keys_for_one_handle_are_refused(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(
        database_url,
        tmp_path,
        rate_limit_auth="100/minute",
        rate_limit_auth_per_credential="3/minute",
    )
    owner = clients(app, "198.51.100.40")
    world = World(owner)
    issuer = world.issuer()
    api_key = issuer["api_key"]["key"]
    achievement = world.achievement(api_key)
    first = world.credential(api_key, achievement["uuid"])["manage_url"].rsplit("/", 1)[1]
    created = owner.post(f"/api/v1/manage/{first}/portfolio", json={"handle": "amara-okafor"})
    assert created.status_code == 201, created.text
    portfolio_key = created.json()["portfolio_key"]
    # Someone with a management link of their own guesses the owner key of that handle.
    answers = []
    for n in range(5):
        guesser = clients(app, f"192.0.2.{n + 50}")
        own = world.credential(api_key, achievement["uuid"])["manage_url"].rsplit("/", 1)[1]
        answers.append(
            guesser.post(
                f"/api/v1/manage/{own}/portfolio",
                json={"handle": "amara-okafor", "portfolio_key": f"mcp_wrong{n}"},
            )
        )
    assert [r.status_code for r in answers[:3]] == [403] * 3
    for response in answers[3:]:
        _is_429(response)
    # The owner's right key is refused too while the handle's budget is spent (a lockout the
    # window ends), but the owner's other handles and management links are not affected.
    second = world.credential(api_key, achievement["uuid"])["manage_url"].rsplit("/", 1)[1]
    assert owner.get(f"/api/v1/manage/{second}").status_code == 200
    _is_429(
        owner.post(
            f"/api/v1/manage/{second}/portfolio",
            json={"handle": "amara-okafor", "portfolio_key": portfolio_key},
        )
    )


def test_verify_api_and_form_are_limited_per_address(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = _app(
        database_url, tmp_path, rate_limit_verify="4/minute", rate_limit_verify_form="2/minute"
    )
    busy, other = clients(app, "203.0.113.10"), clients(app, "198.51.100.50")
    for _ in range(4):
        assert busy.post("/api/v1/verify", json={"credential": "x.y.z"}).status_code == 200
    _is_429(busy.post("/api/v1/verify", json={"credential": "x.y.z"}))
    # Refused before the body is read: even a body that would be a 400 is a 429 now.
    _is_429(busy.post("/api/v1/verify", content=b"{", headers={"content-type": "application/json"}))
    assert other.post("/api/v1/verify", json={"credential": "x.y.z"}).status_code == 200
    for _ in range(2):  # garbage: the form again with its error (400), until the limit
        assert busy.post("/verify", data={"credential": "x.y.z"}).status_code == 400
    page = busy.post("/verify", data={"credential": "x.y.z"})
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) >= 1
    assert other.post("/verify", data={"credential": "x.y.z"}).status_code == 400


def test_limits_off_means_no_429(
    database_url: str, tmp_path: Path, clients: Callable[[FastAPI, str], TestClient]
) -> None:
    app = create_app(make_settings(database_url, tmp_path / "keys", rate_limit_auth="1/hour"))
    client = clients(app, "203.0.113.11")
    assert {client.get("/api/v1/issuers", headers=bearer("no")).status_code for _ in range(5)} == {
        401
    }


@pytest.mark.parametrize("value", ["", "ten per minute", "10/fortnight", "5/2 seconds;x"])
def test_a_limit_that_does_not_parse_is_refused_at_start(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        Settings(database_url=f"sqlite:///{tmp_path}/x.db", rate_limit_auth=value)


# --- one shared store, two processes ------------------------------------------------------------

REDIS = ("127.0.0.1", 6379)


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.skipif(
    importlib.util.find_spec("redis") is None or not _redis_up(),
    reason="needs redis-py (the redis extra) and a redis server on 127.0.0.1:6379",
)
def test_two_replicas_sharing_redis_count_one_budget(tmp_path: Path) -> None:
    """Two `microcred serve` processes on one database and one redis store: guesses alternate
    between them, and the budget is spent once, not once per process. The client address comes
    from X-Forwarded-For, believed from the loopback proxy (uvicorn's --forwarded-allow-ips)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = Server(tmp_path / "a")
    second = Server(tmp_path / "b")
    shared = {
        "MICROCRED_DATABASE_URL": first.env["MICROCRED_DATABASE_URL"],
        "MICROCRED_KEYS_DIR": first.env["MICROCRED_KEYS_DIR"],
        "MICROCRED_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379",
        "MICROCRED_RATE_LIMIT_AUTH": "6/minute",
        "MICROCRED_BACKGROUND_WORKERS": "false",
    }
    for server in (first, second):
        server.env.update(shared)
    # Each run its own client address (and base URL: the operator-token budget is per deployment),
    # so that runs sharing the redis server count apart.
    client_ip = f"198.51.100.{secrets.randbelow(250) + 1}"
    run = secrets.token_hex(4)
    for server in (first, second):
        server.env["MICROCRED_BASE_URL"] = f"http://run-{run}.example"
    migrated = first.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        first.launch()
        second.launch()
        first.wait_ready()
        second.wait_ready()
        answers = []
        for i in range(8):
            server = (first, second)[i % 2]
            answers.append(
                httpx.get(
                    f"{server.base_url}/api/v1/issuers",
                    headers={"Authorization": f"Bearer wrong-{i}", "X-Forwarded-For": client_ip},
                    timeout=30,
                )
            )
        assert [r.status_code for r in answers[:6]] == [401] * 6
        for response in answers[6:]:
            _is_429(response)
        # Another client address, through the same proxy, is not affected.
        other = httpx.get(
            f"{second.base_url}/api/v1/issuers",
            headers={**ADMIN_SERVER, "X-Forwarded-For": "192.0.2.200"},
            timeout=30,
        )
        assert other.status_code == 200, other.text
    finally:
        for server in (first, second):
            try:
                server.stop()
            finally:
                server.kill_group()


@pytest.mark.skipif(importlib.util.find_spec("redis") is None, reason="needs redis-py")
def test_a_store_that_fails_lets_requests_through(
    database_url: str,
    tmp_path: Path,
    clients: Callable[[FastAPI, str], TestClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = _app(
        database_url,
        tmp_path,
        rate_limit_auth="1/minute",
        rate_limit_storage=f"redis://127.0.0.1:{port}",
    )
    client = clients(app, "203.0.113.12")
    statuses = [
        client.get("/api/v1/issuers", headers=bearer(f"no-{i}")).status_code for i in range(3)
    ]
    assert statuses == [401, 401, 401]
    assert client.get("/api/v1/issuers", headers=ADMIN).status_code == 200
    assert "rate limit store unavailable" in caplog.text

"""What an operator runs the service with: metrics at /metrics, structured logs, request ids.

The in-process tests check the rules (who may scrape, which request ids are kept, what a log line
may never contain); the server tests run `microcred serve` (one process, and `--workers 2`) and
read its metrics and its log the way an operator's tooling would.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from test_interop_server import ADMIN as SERVER_ADMIN
from test_interop_server import Server

from app.core.logs import REDACTED, logging_config, redact_path
from app.issuers.models import Issuer
from app.main import create_app
from app.webhooks.models import WebhookEndpoint
from app.webhooks.service import new_secret
from conftest import ADMIN, BASE_URL, World, bearer, make_settings, ob_credential

METRICS_TOKEN = "metrics-token-for-tests-0123"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) → value (parsed by prometheus-client)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def total(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and want <= ls)


# --- in process ----------------------------------------------------------------------------------


@pytest.fixture
def observed(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        database_url, tmp_path / "keys", access_log=True, metrics_token=METRICS_TOKEN
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        yield client


@pytest.mark.parametrize(
    "incoming",
    ["abc-123", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "Root:1.5759e988", "x" * 128],
)
def test_a_well_formed_request_id_is_kept(observed: TestClient, incoming: str) -> None:
    response = observed.get("/issuers/nobody", headers={"X-Request-ID": incoming})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == incoming
    assert response.json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "",
        "x" * 129,
        "has space",
        '"quoted"',
        "<script>alert(1)</script>",
        "a\tb",
        '{"event":"forged"}',
        "ünïcode",
        "a/b",
    ],
)
def test_a_malformed_request_id_is_replaced(observed: TestClient, incoming: str) -> None:
    response = observed.get(
        "/issuers/nobody",
        headers=[("X-Request-ID", incoming.encode("utf-8"))],  # type: ignore[list-item]
    )
    rid = response.headers["x-request-id"]
    assert rid != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert response.json()["request_id"] == rid


def test_every_response_has_a_request_id_and_ids_differ(observed: TestClient) -> None:
    ids = set()
    for path in ["/health", "/", "/static/style.css", "/no/such/page", "/api/v1/issuers"]:
        response = observed.get(path)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), path
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 5
    # a validation error (422) and a too-large body (413, refused before routing) carry it too
    refused = observed.post(
        "/api/v1/verify", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "text/plain"}
    )
    assert refused.status_code == 413
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    invalid = observed.post("/api/v1/issuers", json={"name": ""}, headers=ADMIN)
    assert invalid.status_code == 422
    assert invalid.json()["request_id"] == invalid.headers["x-request-id"]


def test_metrics_need_the_token(observed: TestClient) -> None:
    assert observed.get("/metrics").status_code == 401
    wrong = observed.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert observed.get("/metrics", headers={"Authorization": METRICS_TOKEN}).status_code == 401
    ok = observed.get("/metrics", headers=SCRAPE)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")
    assert "microcred_http_requests_total" in ok.text
    assert value(samples(ok.text), "microcred_metrics_database_up") == 1.0


def test_metrics_without_a_token(database_url: str, tmp_path: Path) -> None:
    """Development: loopback clients only (TestClient's client is not loopback); production:
    nobody, not even loopback, as if there were no endpoint (a proxy may make every client loopback)."""
    dev = create_app(make_settings(database_url, tmp_path / "keys"))
    with TestClient(dev, base_url=BASE_URL) as client:
        assert client.get("/metrics").status_code == 403
    with TestClient(dev, base_url=BASE_URL, client=("127.0.0.1", 5000)) as client:
        assert client.get("/metrics").status_code == 200
    with TestClient(dev, base_url=BASE_URL, client=("::1", 5000)) as client:
        assert client.get("/metrics").status_code == 200
    off = create_app(make_settings(database_url, tmp_path / "keys", metrics_enabled=False))
    with TestClient(off, base_url=BASE_URL, client=("127.0.0.1", 5000)) as client:
        assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("token", ["", "   ", "short", " " * 30 + "x"])
def test_a_weak_metrics_token_is_refused(token: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MICROCRED_METRICS_TOKEN"):
        make_settings("sqlite://", tmp_path, metrics_token=token)


def test_counters_move(observed: TestClient) -> None:
    world = World(observed)
    before = samples(observed.get("/metrics", headers=SCRAPE).text)
    _issuer, credential = world.issued()
    world.verify(credential["jwt"])
    world.verify("not-a-jwt")
    assert observed.get("/credentials/not-a-uuid").status_code == 404
    after = samples(observed.get("/metrics", headers=SCRAPE).text)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("microcred_credentials_issued_total", algorithm="ES256", via="api") == 1
    assert (
        moved("microcred_verifications_total", status="issuer_unconfirmed")
        + moved("microcred_verifications_total", status="valid")
        == 1
    )
    assert moved("microcred_verifications_total", status="invalid") == 1
    assert moved("microcred_http_requests_total", route="/api/v1/verify", status="200") == 2
    assert (
        moved("microcred_http_requests_total", route="/credentials/{credential_id}", status="404")
        == 1
    )
    assert moved("microcred_http_request_duration_seconds_count", route="/api/v1/credentials") == 1
    # labels are templates, never paths
    assert not [k for k in after if "not-a-uuid" in str(k)]


def test_remote_fetches_are_counted_by_outcome(database_url: str, tmp_path: Path) -> None:
    """A did:web key on loopback: refused by the guard (the default), and, with loopback allowed,
    a connection nobody accepts (port 9): an error. Cache hits are not fetches."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = "did:web:127.0.0.1%3A9:issuers:nobody"
    token = jwt.encode(
        ob_credential(issuer), key, algorithm="ES256", headers={"typ": "JWT", "kid": f"{issuer}#k1"}
    )
    for allow_loopback, outcome in ((False, "refused"), (True, "error")):
        settings = make_settings(
            database_url,
            tmp_path / "keys",
            metrics_token=METRICS_TOKEN,
            fetch_allow_loopback=allow_loopback,
            fetch_timeout=2,
        )
        with TestClient(create_app(settings), base_url=BASE_URL) as client:
            before = samples(client.get("/metrics", headers=SCRAPE).text)
            result = World(client).verify(token)
            assert result["verified"] is False
            after = samples(client.get("/metrics", headers=SCRAPE).text)
        fetched = {
            o: total(after, "microcred_remote_fetches_total", outcome=o)
            - total(before, "microcred_remote_fetches_total", outcome=o)
            for o in ("ok", "refused", "timeout", "error")
        }
        assert fetched[outcome] >= 1, fetched
        assert sum(fetched.values()) == fetched[outcome], fetched


def test_job_rows_and_webhook_deliveries_are_counted(observed: TestClient) -> None:
    app = observed.app
    world = World(observed)
    issuer, credential = world.issued()
    key = issuer["api_key"]["key"]
    ctx = app.state.ctx  # type: ignore[attr-defined]
    with ctx.sessions() as session, session.begin():
        found = session.scalars(select(Issuer).where(Issuer.slug == issuer["issuer"]["slug"])).one()
        # written directly: the API refuses this loopback URL, and so does the dispatcher
        session.add(
            WebhookEndpoint(
                issuer_id=found.id,
                url="https://127.0.0.1:9/hooks",
                events=["credential.issued"],
                secret=new_secret(),
            )
        )
    before = samples(observed.get("/metrics", headers=SCRAPE).text)
    job = observed.post(
        "/api/v1/credentials/batch",
        json=[
            {
                "achievement_id": credential["achievement_id"],
                "recipient": {"did": f"did:example:{n}"},
            }
            for n in range(3)
        ],
        headers=bearer(key),
    )
    assert job.status_code == 202, job.text
    queued = samples(observed.get("/metrics", headers=SCRAPE).text)
    assert value(queued, "microcred_jobs", state="queued") == 1
    assert value(queued, "microcred_job_rows_pending") == 3
    app.state.job_runner.run_until_idle()  # type: ignore[attr-defined]
    worked = samples(observed.get("/metrics", headers=SCRAPE).text)
    assert value(worked, "microcred_jobs", state="queued") == 0
    assert value(worked, "microcred_job_rows_pending") == 0
    assert (
        total(worked, "microcred_job_rows_settled_total")
        - total(before, "microcred_job_rows_settled_total")
        == 3
    )
    assert (
        total(worked, "microcred_credentials_issued_total", via="batch")
        - total(before, "microcred_credentials_issued_total", via="batch")
        == 3
    )
    assert value(worked, "microcred_webhook_deliveries", state="pending") == 3
    app.state.webhook_dispatcher.run_once()  # type: ignore[attr-defined]
    sent = samples(observed.get("/metrics", headers=SCRAPE).text)
    assert (
        total(sent, "microcred_webhook_delivery_attempts_total", outcome="retry")
        - total(worked, "microcred_webhook_delivery_attempts_total", outcome="retry")
        == 3
    )
    assert value(sent, "microcred_webhook_deliveries", state="pending") == 3  # to be retried


def test_the_access_line_redacts_capability_urls(
    observed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _issuer, credential = World(observed).issued()
    token = credential["manage_url"].rsplit("/", 1)[1]
    assert token.startswith("mcm_")
    api_key = _issuer["api_key"]["key"]
    with caplog.at_level(logging.INFO, logger="microcred.access"):
        for path in [
            f"/manage/{token}",
            f"/api/v1/manage/{token}",
            f"/api/v1/manage/{token}/portfolio",
            f"/manage/{token}/nothing/here",
            f"/manage/{token[4:]}",  # without its prefix: still the segment after /manage/
            f"/no/such/{token}",
            f"/issuers/nobody?token={token}&key={api_key}",
        ]:
            observed.get(path, headers={**bearer(api_key), "Cookie": f"t={token}"})
    lines = [r for r in caplog.records if r.name == "microcred.access"]
    assert len(lines) == 7
    text = caplog.text + "".join(str(r.__dict__) for r in lines)
    assert token not in text
    assert token[4:] not in text
    assert api_key not in text
    assert "Bearer" not in text
    by_path = [(r.__dict__["route"], r.__dict__["path"]) for r in lines]
    assert by_path[0] == ("/manage/{token}", f"/manage/{REDACTED}")
    assert by_path[1] == ("/api/v1/manage/{token}", f"/api/v1/manage/{REDACTED}")
    assert by_path[3][1] == f"/manage/{REDACTED}/nothing/here"
    assert by_path[5] == ("unmatched", f"/no/such/{REDACTED}")
    assert by_path[6][1] == "/issuers/nobody"  # the query string is never logged
    for record in lines:
        assert isinstance(record.__dict__["duration_ms"], float)
        assert isinstance(record.__dict__["status"], int)


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/manage/abc", f"/manage/{REDACTED}"),
        ("/a/mcp_xyz/b", f"/a/{REDACTED}/b"),
        ("/whsec_AAAA", f"/{REDACTED}"),
        ("/api/v1/manage/mck_x/portfolio", f"/api/v1/manage/{REDACTED}/portfolio"),
        ("/issuers/data_academy", "/issuers/data_academy"),
        ("/manage/", f"/manage/{REDACTED}"),
        ("/", "/"),
    ],
)
def test_redact_path(path: str, logged: str) -> None:
    assert redact_path(path) == logged


# --- a real server -------------------------------------------------------------------------------


class Observed(Server):
    """`microcred serve` with JSON logs, the access line and a metrics token."""

    def __init__(self, workdir: Path, *, workers: int = 1) -> None:
        super().__init__(workdir)
        self.workers = workers
        self.env.update(
            {
                "MICROCRED_LOG_FORMAT": "json",
                "MICROCRED_ACCESS_LOG": "true",
                "MICROCRED_METRICS_TOKEN": METRICS_TOKEN,
                "MICROCRED_WORKERS": str(workers),
            }
        )

    def started(self) -> bool:
        return self.log().count("Application startup complete") >= self.workers

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text("utf-8")
        parsed = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"a log line that is not JSON: {line!r}")
        return parsed

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = httpx.get(f"{self.base_url}/metrics", headers=SCRAPE, timeout=10)
        assert response.status_code == 200, response.text
        return samples(response.text)


def _started(workdir: Path, workers: int, **env: str) -> Iterator[Observed]:
    workdir.mkdir(parents=True, exist_ok=True)
    srv = Observed(workdir, workers=workers)
    srv.env.update(env)
    migrated = srv.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        srv.start()
        yield srv
    finally:
        try:
            srv.stop()
        finally:
            srv.kill_group()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    yield from _started(tmp_path_factory.mktemp("observed"), 1)


def _issue(http: httpx.Client) -> dict[str, Any]:
    issuer = http.post(
        "/api/v1/issuers",
        json={"name": "Ops Academy", "url": "https://ops.example"},
        headers=SERVER_ADMIN,
    )
    assert issuer.status_code == 201, issuer.text
    key = issuer.json()["api_key"]["key"]
    achievement = http.post(
        "/api/v1/achievements",
        json={
            "name": "Runbooks",
            "description": "Runs the service.",
            "criteria": {"narrative": "Did."},
        },
        headers=bearer(key),
    )
    assert achievement.status_code == 201, achievement.text
    credential = http.post(
        "/api/v1/credentials",
        json={
            "achievement_id": achievement.json()["uuid"],
            "recipient": {"email": "o@example.com"},
        },
        headers=bearer(key),
    )
    assert credential.status_code == 201, credential.text
    data: dict[str, Any] = credential.json()
    return data


@pytest.mark.slow
def test_a_real_server_counts_and_logs(server: Observed) -> None:
    before = server.scrape()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        credential = _issue(http)
        verified = http.post("/api/v1/verify", json={"credential": credential["jwt"]})
        assert verified.status_code == 200
        missing = http.get(
            "/issuers/nobody", headers={"Authorization": "Bearer secret-never-logged"}
        )
        assert missing.status_code == 404
        token = credential["manage_url"].rsplit("/", 1)[1]
        assert http.get(f"/manage/{token}").status_code == 200
    after = server.scrape()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("microcred_credentials_issued_total", via="api") == 1
    assert moved("microcred_verifications_total") == 1
    assert moved("microcred_http_requests_total", route="/issuers/{slug}", status="404") == 1
    assert moved("microcred_http_requests_total", route="/api/v1/credentials", status="201") == 1
    assert value(after, "microcred_metrics_database_up") == 1.0
    # the process metrics of the default registry are there in a single process
    assert total(after, "process_cpu_seconds_total") > 0

    rid = missing.json()["request_id"]
    assert missing.headers["x-request-id"] == rid
    lines = server.log_lines()
    failed = [line for line in lines if line.get("request_id") == rid]
    assert len(failed) == 1, failed
    assert failed[0]["event"] == "request"
    assert failed[0]["status"] == 404
    assert failed[0]["route"] == "/issuers/{slug}"
    assert failed[0]["method"] == "GET"
    assert failed[0]["duration_ms"] >= 0
    assert failed[0]["level"] == "info"
    assert failed[0]["logger"] == "microcred.access"
    log = server.log_path.read_text("utf-8")
    assert token not in log
    assert "secret-never-logged" not in log
    # uvicorn's own access lines are gone (they name the client as "host:port - \"GET …\"")
    assert not [line for line in lines if line.get("logger") == "uvicorn.access"]
    assert not re.search(r'"GET /\S* HTTP/1\.1" \d{3}', log)
    # uvicorn's start-up lines are structured too, without their terminal-coloured copy
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    assert "\x1b" not in log
    assert not [line for line in lines if "color_message" in line]


@pytest.mark.slow
def test_two_workers_add_up_their_metrics(tmp_path: Path) -> None:
    """`--workers 2`: each worker counts in its own process, in files of a directory `serve` made
    for the run; every scrape, whichever worker answers it, shows the sum; the directory goes
    when the server stops."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    started = _started(tmp_path / "srv", 2, TMPDIR=str(temp))
    srv = next(started)
    try:
        [metrics_dir] = temp.glob("microcred-metrics-*")
        pids = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, pids
        sent = 12
        for _ in range(sent):
            # a fresh connection each time, so that both workers get some
            assert httpx.get(f"{srv.base_url}/issuers/nobody", timeout=30).status_code == 404
        seen = {
            value(
                srv.scrape(),
                "microcred_http_requests_total",
                method="GET",
                route="/issuers/{slug}",
                status="404",
            )
            for _ in range(6)
        }
        assert seen == {sent}
    finally:
        next(started, None)
    assert not metrics_dir.exists()


# --- the OpenAPI document ------------------------------------------------------------------------


def test_the_openapi_document_describes_every_error(observed: TestClient) -> None:
    spec = observed.get("/openapi.json").json()
    problem_schema = spec["components"]["schemas"]["ProblemDetails"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    ]
    assert len(operations) >= 50
    for path, method, op in operations:
        responses = op["responses"]
        where = f"{method.upper()} {path}"
        assert "503" in responses, where
        assert "Retry-After" in responses["503"]["headers"], where
        if "{" in path:
            assert "404" in responses, where
        if op.get("security"):
            assert {"401", "429"} <= set(responses), where
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(responses), where
        for status, response in responses.items():
            assert response["headers"]["X-Request-ID"]["required"] is True, (where, status)
            if int(status) >= 400:
                content = response["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/ProblemDetails"
                }, (where, status)
                assert "application/json" not in content, (where, status)

    # what the API really sends fits the schema it documents
    validator = jsonschema.Draft202012Validator(problem_schema)
    assert observed.get("/credentials/not-a-uuid").status_code == 404
    for response in [
        observed.get("/issuers/nobody"),
        observed.get("/credentials/not-a-uuid"),
        observed.get("/api/v1/issuers"),
        observed.post("/api/v1/issuers", json={"name": ""}, headers=ADMIN),
        observed.post(
            "/api/v1/issuers", content=b"{", headers={**ADMIN, "Content-Type": "application/json"}
        ),
        observed.post("/api/v1/verify", content=b"x", headers={"Content-Type": "image/gif"}),
    ]:
        assert response.status_code >= 400
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        validator.validate(body)
        assert body["request_id"] == response.headers["x-request-id"]
        assert body["status"] == response.status_code


def test_negotiated_media_types_are_documented(observed: TestClient) -> None:
    paths = observed.get("/openapi.json").json()["paths"]

    def media(path: str) -> set[str]:
        return set(paths[path]["get"]["responses"]["200"]["content"])

    assert media("/issuers/{slug}") == {"application/ld+json", "text/html"}
    assert media("/achievements/{achievement_id}") == {"application/ld+json", "text/html"}
    assert media("/issuers/{slug}/did.json") == {"application/did+json"}
    assert media("/issuers/{slug}/jwks.json") == {"application/jwk-set+json"}
    assert "application/vc+jwt" in media("/credentials/{credential_id}")


def test_a_500_carries_its_request_id_in_body_header_and_log(
    database_url: str, tmp_path: Path
) -> None:
    """A fault no handler maps (a route that raises, added for the test): the 500 problem, its
    X-Request-ID, the traceback's log line (through the production JSON formatter) and the
    metrics all name the same request."""
    settings = make_settings(
        database_url, tmp_path / "keys", metrics_token=METRICS_TOKEN, log_format="json"
    )
    app = create_app(settings)

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a fault for the test")

    spec = logging_config(settings)["formatters"]["structured"]
    formatter = spec["()"](
        foreign_pre_chain=spec["foreign_pre_chain"], processors=spec["processors"]
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("microcred")
    logger.addHandler(handler)
    try:
        with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
            before = samples(client.get("/metrics", headers=SCRAPE).text)
            response = client.get("/boom", headers={"X-Request-ID": "trace-500"})
            after = samples(client.get("/metrics", headers=SCRAPE).text)
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    assert response.json()["request_id"] == "trace-500"
    assert "a fault for the test" not in response.text
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [logged] = [line for line in lines if line.get("event") == "unhandled error"]
    assert logged["request_id"] == "trace-500"
    assert logged["level"] == "error"
    assert "a fault for the test" in json.dumps(logged["exception"])
    assert (
        total(after, "microcred_http_requests_total", route="/boom", status="500")
        - total(before, "microcred_http_requests_total", route="/boom", status="500")
        == 1
    )

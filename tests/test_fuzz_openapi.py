"""Fuzzing: every operation of the OpenAPI document, and the verify endpoint with arbitrary bodies.

No input a client can send may produce a 5xx, nor a response the OpenAPI document does not
describe (status, content type, body schema, headers). Schemathesis derives requests from the
app's own OpenAPI document (with the operator token or an issuer API key, by the operation's tag),
on SQLite and on PostgreSQL (some bad input only fails on one database: NUL characters are text
to SQLite and an error to PostgreSQL). A hand-written Hypothesis test throws text, bytes, JSON
and mangled JWTs at `POST /api/v1/verify` (SQLite: that part is about request handling).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from app.core.context import AppContext
from app.issuers.models import Issuer
from app.main import create_app
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.service import new_secret
from conftest import ADMIN, BASE_URL, World, _empty_database, bearer, make_settings

EXAMPLES = 30
# The sweep over every operation runs on both databases: fewer cases each keep CI's budget.
OPERATION_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the first request of an operation pays for imports and key generation
    suppress_health_check=list(HealthCheck),  # slow/large generated data is what we want here
    derandomize=True,  # the same inputs on every run: CI failures reproduce locally
    database=None,
)


@dataclass
class Fuzzed:
    app: FastAPI
    client: TestClient
    issuer_key: str
    jwt: str
    credential: dict[str, Any]
    known: dict[str, str]  # path parameter → an existing resource's id
    database: str = "sqlite"


def _webhook_endpoint(app: FastAPI, slug: str) -> uuid.UUID:
    ctx: AppContext = app.state.ctx
    with ctx.sessions() as session, session.begin():
        issuer = session.scalars(select(Issuer).where(Issuer.slug == slug)).one()
        endpoint = WebhookEndpoint(
            issuer_id=issuer.id,
            url="https://127.0.0.1:9/hooks",
            events=["credential.issued", "credential.revoked"],
            secret=new_secret(),
        )
        session.add(endpoint)
        session.flush()
        return endpoint.id


def _a_delivery(app: FastAPI, endpoint_id: uuid.UUID) -> uuid.UUID:
    ctx: AppContext = app.state.ctx
    with ctx.sessions() as session:
        return session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
        ).first() or pytest.fail("no webhook delivery was queued")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Fuzzed]:
    """One app on a SQLite copy of the migrated template, with an issuer and a credential in it."""
    workdir = tmp_path_factory.mktemp("fuzz")
    database = workdir / "microcred.db"
    shutil.copy(sqlite_template, database)
    yield from _populated(f"sqlite:///{database}", workdir)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed_db(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_schema_url: str | None,
) -> Iterator[Fuzzed]:
    """The same on each database (PostgreSQL: this test process's schema, emptied first)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        database = workdir / "microcred.db"
        shutil.copy(sqlite_template, database)
        yield from _populated(f"sqlite:///{database}", workdir)
        return
    if pg_schema_url is None:
        pytest.skip("PostgreSQL tests need MICROCRED_TEST_DATABASE_URL (set by .ci/run)")
    _empty_database(pg_schema_url)
    for fuzzed in _populated(pg_schema_url, workdir):
        fuzzed.database = "postgresql"
        yield fuzzed


def _populated(database_url: str, workdir: Path) -> Iterator[Fuzzed]:
    app = create_app(make_settings(database_url, workdir / "keys"))
    with TestClient(app, base_url=BASE_URL) as client:
        issuer, credential = World(client).issued()
        slug = issuer["issuer"]["slug"]
        # a spare API key for DELETE …/api-keys/{key_id} to revoke, not the one the fuzz uses
        spare = client.post(f"/api/v1/issuers/{slug}/api-keys", json={}, headers=ADMIN)
        assert spare.status_code == 201, spare.text
        # a webhook endpoint (written directly: its loopback URL is one the API refuses, and the
        # dispatcher refuses to send to) and, by the issuance below, one delivery to it
        endpoint_id = _webhook_endpoint(app, slug)
        # a spare credential for the fuzzer to revoke or suspend; `credential` must stay valid
        expendable = World(client).credential(
            issuer["api_key"]["key"], credential["achievement_id"]
        )
        # the recipient's management token and a portfolio, for /api/v1/manage/{token} and /p/{handle}
        token = credential["manage_url"].rsplit("/", 1)[1]
        joined = client.post(
            f"/api/v1/manage/{token}/portfolio", json={"handle": "fuzz", "display_name": "Fuzz"}
        )
        assert joined.status_code == 201, joined.text
        # a bulk job, for GET /api/v1/jobs/{job_id}
        job = client.post(
            "/api/v1/credentials/batch",
            json=[
                {
                    "achievement_id": credential["achievement_id"],
                    "recipient": {"did": "did:example:fuzz"},
                }
            ],
            headers=bearer(issuer["api_key"]["key"]),
        )
        assert job.status_code == 202, job.text
        # a trust list entry, for /api/v1/trust/issuers/{entry_id}
        listed = client.post(
            "/api/v1/trust/issuers",
            json={"identifier": "did:web:listed.example", "name": "Listed"},
            headers=ADMIN,
        )
        assert listed.status_code == 201, listed.text
        yield Fuzzed(
            app=app,
            client=client,
            issuer_key=issuer["api_key"]["key"],
            jwt=credential["jwt"],
            credential=credential["credential"],
            known={
                "slug": slug,
                "key_id": spare.json()["id"],
                "achievement_id": credential["achievement_id"],
                "credential_id": expendable["id"],
                "purpose": "revocation",
                "seq": "1",
                "token": token,
                "handle": "fuzz",
                "endpoint_id": str(endpoint_id),
                "delivery_id": str(_a_delivery(app, endpoint_id)),
                "job_id": job.json()["id"],
                "entry_id": listed.json()["id"],
                "held_id": "00000000-0000-4000-8000-000000000000",
            },
        )


@pytest.fixture(scope="module")
def api_schema(fuzzed_db: Fuzzed) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_db.app)


def _oembed_format_refusal(case: schemathesis.Case, response: Any) -> bool:
    """The one 5xx the contract mandates: oEmbed (§2.3) answers 501 for a format it does not
    offer (only json is)."""
    return (
        case.operation.label == "GET /oembed"
        and response.status_code == 501
        and (case.query or {}).get("format") not in (None, "json")
    )


def _fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    auth: dict[str, str],
    path_parameters: dict[str, str] | None,
) -> Any:
    @settings(FUZZ, max_examples=OPERATION_EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=auth)
        if _oembed_format_refusal(case, response):
            case.validate_response(response, checks=CHECKS[1:])  # a 5xx, documented
            return
        case.validate_response(response, checks=CHECKS)

    return run


# Schemathesis's own pytest integration (`schema.parametrize()` on a lazily loaded schema) breaks on
# pytest 9 (`request.node._nodeid` is gone), and an eagerly loaded schema would need the app at
# import time; so the operations are driven by hand, one subtest each, with Hypothesis.
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_every_operation_answers_as_documented(
    api_schema: Any, fuzzed_db: Fuzzed, mode: GenerationMode, subtests: pytest.Subtests
) -> None:
    fuzzed = fuzzed_db
    if mode is GenerationMode.NEGATIVE and fuzzed.database == "postgresql":
        # Input that breaks the schema is refused before any query runs: one database shows it.
        # What only PostgreSQL refuses (NUL) is valid to the schema: the positive mode and
        # test_hostile_text_in_every_parameter send it there.
        pytest.skip("schema-invalid input is refused before the database; run on SQLite")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        tags = operation.tags or []
        if "operator" in tags:
            auth = ADMIN
        elif "issuer" in tags:
            auth = bearer(fuzzed.issuer_key)
        else:
            auth = {}
        names = re.findall(r"{(\w+)}", operation.path)
        # random ids mostly reach the 404 branch; a second round fixes them to existing resources
        variants = [("", None)]
        if names:
            variants.append((" (existing ids)", {n: fuzzed.known[n] for n in names}))
        for suffix, path_parameters in variants:
            run = _fuzz_operation(operation, mode, auth, path_parameters)
            with subtests.test(msg=operation.label + suffix):
                try:
                    run()
                except Unsatisfiable:
                    # an operation without constrained inputs (no parameters, free-form
                    # strings) has no invalid request to generate
                    assert mode is GenerationMode.NEGATIVE
                    pytest.skip("no invalid input exists for this operation")


# Text that some layer may not take: NUL (an error to PostgreSQL, text to SQLite), a string far
# longer than any column, a lone percent sign, bidi and astral characters.
HOSTILE_TEXT = [
    "\x00",
    "nul\x00inside",
    "x" * 5000,
    "%",
    "\u202egnp.exe",
    "\U0001f600",
    " ",
]


def _auth_for(operation: schemathesis.APIOperation, fuzzed: Fuzzed) -> dict[str, str]:
    tags = operation.tags or []
    if "operator" in tags:
        return ADMIN
    if "issuer" in tags:
        return bearer(fuzzed.issuer_key)
    return {}


def test_hostile_text_in_every_parameter(
    api_schema: Any, fuzzed_db: Fuzzed, subtests: pytest.Subtests
) -> None:
    """Every path and query parameter of every operation, one at a time, set to each of
    HOSTILE_TEXT (the others: existing ids, no query): answered as documented, never a 5xx.
    Random generation seldom draws these; they are the inputs that broke a database before."""
    fuzzed = fuzzed_db
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        names = re.findall(r"{(\w+)}", operation.path)
        known = {n: fuzzed.known[n] for n in names}
        query_names = [p.name for p in operation.query]
        auth = _auth_for(operation, fuzzed)
        with subtests.test(msg=operation.label):
            for where, name in [("path", n) for n in names] + [("query", n) for n in query_names]:
                for text in HOSTILE_TEXT:
                    path_parameters = {**known, name: text} if where == "path" else known
                    query = {name: text} if where == "query" else None
                    case = operation.Case(path_parameters=path_parameters, query=query)
                    response = case.call(headers=auth)
                    if _oembed_format_refusal(case, response):
                        continue
                    case.validate_response(response, checks=CHECKS)


# --- POST /api/v1/verify with arbitrary bodies ---------------------------------------------------

CHECK_NAMES = {
    "format",
    "signature",
    "issuer",
    "trust",
    "validity_period",
    "schema",
    "data_model",
    "status",
    "record",
}
CHECK_RESULTS = {"pass", "fail", "error", "skipped"}
STATUSES = {
    "valid",
    "invalid",
    "expired",
    "not_yet_valid",
    "revoked",
    "suspended",
    "unknown",
    "issuer_unconfirmed",
}
CONTENT_TYPES = [
    "application/json",
    "application/ld+json",
    "application/vc+jwt",
    "application/jwt",
    "text/plain",
    "text/plain; charset=utf-8",
    "application/octet-stream",
    "multipart/form-data",
    "",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# keys that point anywhere resolvable point at loopback only (port 9: nothing listens)
kids = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.just("did:web:127.0.0.1%3A9:issuers:nobody#k1"),
    st.just("did:web:testserver:issuers:data-academy#nope"),
    st.just("https://127.0.0.1:9/keys/1"),
    st.just("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
    st.builds(lambda s: "did:jwk:" + _b64url(s.encode()), st.text(max_size=30)),
)
headers_json = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES256", "ES384", "EdDSA", "RS256", "HS256", "none", "XYZ"])},
    optional={
        "kid": kids,
        "typ": st.sampled_from(["JWT", "vc+jwt", "jwt", "x"]),
        "jwk": json_values,
    },
)
payload_json = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "iss": st.text(max_size=30),
            "nbf": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
            "exp": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
            "jti": st.sampled_from(
                [
                    "http://testserver/credentials/00000000-0000-4000-8000-000000000000",
                    "http://testserver/credentials/not-a-uuid",
                    "urn:uuid:1",
                ]
            ),
            "vc": json_values,
            "type": json_values,
            "issuer": json_values,
            "credentialSubject": json_values,
            "validFrom": st.text(max_size=30),
            "credentialStatus": json_values,
        },
    ),
)
forged_jwts = st.builds(
    lambda h, p, sig: ".".join(
        [_b64url(json.dumps(h).encode()), _b64url(json.dumps(p).encode()), _b64url(sig)]
    ),
    headers_json,
    payload_json,
    st.binary(max_size=300),
)
jwt_shaped = st.lists(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/"),
    min_size=1,
    max_size=5,
).map(".".join)


@st.composite
def mangled_jwts(draw: st.DrawFn, token: str) -> str:
    """The real credential's JWT with a few characters replaced, removed or inserted."""
    chars = list(token)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(chars) - 1))
        op = draw(st.sampled_from(["replace", "delete", "insert"]))
        ch = draw(st.characters(codec="ascii"))
        if op == "replace":
            chars[at] = ch
        elif op == "delete":
            del chars[at]
        else:
            chars.insert(at, ch)
    return "".join(chars)


def _assert_contract_shape(result: Any) -> None:
    assert isinstance(result, dict), result
    assert set(result) == {"verified", "status", "checks", "credential"}, result
    assert isinstance(result["verified"], bool)
    assert result["status"] in STATUSES
    assert (result["status"] == "valid") == result["verified"], result
    assert isinstance(result["checks"], list)
    assert result["checks"], "a verdict names at least the check that decided it"
    for check in result["checks"]:
        assert check["check"] in CHECK_NAMES, check
        assert check["result"] in CHECK_RESULTS, check
        assert isinstance(check["detail"], str)
    if result["verified"]:
        assert all(c["result"] in {"pass", "skipped"} for c in result["checks"]), result
    else:
        assert any(c["result"] in {"fail", "error"} for c in result["checks"]), result
    credential = result["credential"]
    if credential is not None:
        assert set(credential) >= {"id", "issuer", "achievement", "valid_from", "valid_until"}
        assert set(credential["issuer"]) >= {"id", "name"}
        assert "name" in credential["achievement"]


def _post(client: TestClient, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/verify", content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, body[:200], response.text)
    if response.status_code == 200:
        _assert_contract_shape(response.json())
    else:
        assert response.headers["content-type"].startswith("application/problem+json")


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode)),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_verify_survives_arbitrary_bytes(fuzzed: Fuzzed, body: bytes, content_type: str) -> None:
    _post(fuzzed.client, body, content_type)


@FUZZ
@given(data=st.data())
def test_verify_survives_arbitrary_json(fuzzed: Fuzzed, data: st.DataObject) -> None:
    credential = data.draw(
        st.one_of(
            json_values,
            forged_jwts,
            jwt_shaped,
            mangled_jwts(fuzzed.jwt),
            # the real credential JSON with one member replaced by junk
            st.builds(
                lambda key, value: {**fuzzed.credential, key: value},
                st.sampled_from(sorted(fuzzed.credential)),
                json_values,
            ),
        )
    )
    wrapped = data.draw(st.booleans())
    body = {"credential": credential} if wrapped else credential
    content_type = data.draw(st.sampled_from(["application/json", "application/ld+json"]))
    _post(fuzzed.client, json.dumps(body).encode(), content_type)


@FUZZ
@given(data=st.data())
def test_verify_survives_raw_jwts(fuzzed: Fuzzed, data: st.DataObject) -> None:
    token = data.draw(st.one_of(forged_jwts, jwt_shaped, mangled_jwts(fuzzed.jwt)))
    content_type = data.draw(
        st.sampled_from(["application/vc+jwt", "application/jwt", "text/plain"])
    )
    _post(fuzzed.client, token.encode(), content_type)


def test_the_real_credential_still_verifies(fuzzed: Fuzzed) -> None:
    """The baseline the mangling starts from is a valid credential (else the fuzz proves little)."""
    response = fuzzed.client.post("/api/v1/verify", json={"credential": fuzzed.jwt})
    assert response.status_code == 200
    result = response.json()
    _assert_contract_shape(result)
    assert result["verified"] is True, result

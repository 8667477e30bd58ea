"""Text no feature can store or show (NUL, lone surrogates) and JSON nested too deeply: refused
at the edge with a 4xx problem on every route, path and query parameter and body field, on
SQLite and PostgreSQL (psycopg refuses NUL, which made these 500s there only); never a 500 and
never a half-written record. Credentials being verified get a verdict, not an error.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.core import text
from app.core.keys import public_jwk
from conftest import ADMIN, World, bearer, check

NUL = "\x00"
SURROGATE = "\ud800"
# Raw bytes: a UTF-8-encoded surrogate (json.loads decodes bytes with "surrogatepass").
RAW_SURROGATE = b"\xed\xa0\x80"
DEEP = 5000


def _json(body: Any) -> bytes:
    """JSON as a client library writes it: non-ASCII (and lone surrogates) as \\u escapes."""
    return json.dumps(body).encode()


def _post_json(client: TestClient, path: str, body: Any, **kw: Any) -> Any:
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return client.post(path, content=_json(body), headers=headers, **kw)


def _assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- the core helpers ---------------------------------------------------------------------------


def test_text_fault_names_nul_and_lone_surrogates_but_accepts_pairs_and_controls() -> None:
    assert text.text_fault("plain") is None
    assert text.text_fault("emoji \U0001f600 and é") is None
    assert text.text_fault("tab\tnew\nline") is None
    assert "NUL" in (text.text_fault(f"a{NUL}b") or "")
    for lone in ("\ud800", "\udfff", "x\udc00y", "\ud83d"):  # high, low, trailing half alone
        assert "surrogate" in (text.text_fault(lone) or "")
    # A pair escaped in JSON decodes to one code point: fine.
    assert text.loads(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\u0000"}',
        b'{"a": ["ok", {"b": "\\ud800"}]}',
        b'{"\\udfff": 1}',
        b'{"a": "' + RAW_SURROGATE + b'"}',
        '{"a": "x"}'.encode("utf-16"),  # fine as such, but it must be read, not waved through
    ],
)
def test_loads_refuses_bad_text_anywhere(body: bytes) -> None:
    if body.startswith(b"\xff\xfe"):
        assert text.loads(body) == {"a": "x"}
        return
    with pytest.raises(text.UnacceptableJSON):
        text.loads(body)


def test_depth_limit_is_exact_and_ignores_brackets_inside_strings() -> None:
    limit = text.MAX_JSON_DEPTH
    assert text.loads(_deep(limit)) is not None
    for too_deep in (limit + 1, DEEP, 100_000):
        with pytest.raises(text.UnacceptableJSON, match="deeper"):
            text.loads(_deep(too_deep))
    mixed = '{"a": ' * (limit - 1) + "[1]" + "}" * (limit - 1)
    assert text.loads(mixed) is not None
    with pytest.raises(text.UnacceptableJSON):
        text.loads('{"a": ' * limit + "[1]" + "}" * limit)
    brackets_in_strings = json.dumps({"s": "[" * 10_000, "t": '\\"{{{{' * 1000})
    assert text.loads(brackets_in_strings)["s"] == "[" * 10_000
    # A large body (a batch) takes the quick count first, the exact one when that says deep.
    padding = json.dumps(["x" * 100] * 3000)
    big_deep = '{"p": ' + padding + ', "d": ' + _deep(limit) + "}"
    assert len(big_deep) > text.EXACT_UP_TO
    with pytest.raises(text.UnacceptableJSON):
        text.loads(big_deep)
    big_brackets_in_strings = json.dumps({"p": ["[" * 100] * 3000, "d": [[1]]})
    assert len(big_brackets_in_strings) > text.EXACT_UP_TO
    assert text.loads(big_brackets_in_strings)["d"] == [[1]]
    assert text.find_fault({"a": [[[[]]]]}, max_depth=4) is not None
    assert text.find_fault({"a": [[[]]]}, max_depth=4) is None


# --- every path parameter of every route --------------------------------------------------------


# Page routes with path parameters, which the OpenAPI document leaves out.
PAGE_ROUTES = [
    ("GET", "/manage/{token}"),
    ("POST", "/manage/{token}/portfolio"),
    ("POST", "/manage/{token}/portfolio/remove"),
    ("POST", "/manage/{token}/name-visibility"),
]


def _routes_with_path_params(app: FastAPI) -> list[tuple[str, str]]:
    found = list(PAGE_ROUTES)
    for path, operations in app.openapi()["paths"].items():
        if "{" in path:
            found.extend((method.upper(), path) for method in operations)
    return found


def test_nul_in_any_path_parameter_is_a_400_problem(client: TestClient, world: World) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    routes = _routes_with_path_params(client.app)  # type: ignore[arg-type]
    assert len(routes) > 20  # the enumeration found the app's routes
    headers = {**ADMIN}
    for method, path in routes:
        for variant in ("%00", "x%00y", "%00.json"):
            url = re.sub(r"\{[^}]+\}", variant, path)
            auth = bearer(key) if "/issuers" not in path else headers
            response = client.request(method, url, headers=auth)
            body = _assert_problem(response, 400)
            assert "NUL" in body["detail"], (method, url, body)
    # The examples of the audit, exactly.
    _assert_problem(client.get("/issuers/%00"), 400)
    page = client.get("/issuers/%00", headers={"Accept": "text/html"})  # a person: the page
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "NUL" in page.text


def test_undecodable_path_bytes_are_never_a_500(client: TestClient, world: World) -> None:
    issuer = world.issuer()
    for url in (
        "/issuers/%ED%A0%80",  # a UTF-8-encoded surrogate: decoded as U+FFFD by the server
        "/issuers/%FF%FE",
        "/achievements/%ED%A0%80",
        f"/issuers/{issuer['issuer']['slug']}/did.json%ED%A0%80",
        "/credentials/%C0%80",  # overlong NUL
    ):
        response = client.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)


# --- every query parameter ----------------------------------------------------------------------


def _query_params(app: FastAPI) -> list[tuple[str, str, str]]:
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["in"] == "query":
                    found.append((method.upper(), path, param["name"]))
    return found


def test_nul_in_any_query_parameter_is_a_422_problem(client: TestClient, world: World) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    slug = issuer["issuer"]["slug"]
    params = _query_params(client.app)  # type: ignore[arg-type]
    names = {name for _m, _p, name in params}
    assert {"subject_id", "cursor"} <= names, names
    for method, path, name in params:
        url = path.replace("{slug}", slug)
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), url)
        headers = ADMIN if "issuers" in path or "audit" in path or "trust" in path else bearer(key)
        response = client.request(method, url, params={name: f"a{NUL}b"}, headers=headers)
        body = _assert_problem(response, 422)
        assert body["errors"][0]["loc"] == ["query", name], body
    # Unknown parameters and names are read too (a route may read request.query_params).
    _assert_problem(client.get(f"/issuers/{slug}", params={f"x{NUL}": "1"}), 422)
    # The audit's example, exactly.
    response = client.get("/api/v1/credentials?subject_id=%00", headers=bearer(key))
    _assert_problem(response, 422)
    ok = client.get("/api/v1/credentials", params={"subject_id": "did:ex:é😀"}, headers=bearer(key))
    assert ok.status_code == 200, ok.text


def test_nul_in_a_cookie_is_refused(client: TestClient) -> None:
    response = client.get("/verify", headers={"Cookie": 'flash="a\\000b"'})
    _assert_problem(response, 422)


# --- every string field of the JSON bodies ------------------------------------------------------


def _leaves(body: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(body, dict):
        return [leaf for k, v in body.items() for leaf in _leaves(v, (*loc, k))]
    if isinstance(body, list):
        return [leaf for n, v in enumerate(body) for leaf in _leaves(v, (*loc, n))]
    return [loc] if isinstance(body, str) else []


def _with(body: Any, loc: tuple[Any, ...], value: str) -> Any:
    copy = json.loads(json.dumps(body))
    node = copy
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = node[loc[-1]][:3] + value + node[loc[-1]][3:]
    return copy


def _counts(client: TestClient, key: str) -> tuple[int, int, int]:
    issuers = client.get("/api/v1/issuers", headers=ADMIN).json()
    achievements = client.get("/api/v1/achievements", headers=bearer(key)).json()["items"]
    credentials = client.get("/api/v1/credentials", headers=bearer(key)).json()["items"]
    return len(issuers), len(achievements), len(credentials)


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_bad_text_in_any_json_field_is_a_422_and_writes_nothing(
    client: TestClient, world: World, bad: str
) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    slug = issuer["issuer"]["slug"]
    achievement = world.achievement(key)
    credential = world.credential(key, achievement["uuid"])
    bodies: list[tuple[str, str, dict[str, str], Any]] = [
        (
            "POST",
            "/api/v1/issuers",
            ADMIN,
            {
                "name": "Nul Academy",
                "url": "https://nul.example",
                "slug": "nul-academy",
                "email": "office@nul.example",
                "description": "Teaches things.",
            },
        ),
        ("PATCH", f"/api/v1/issuers/{slug}", ADMIN, {"name": "Renamed Academy"}),
        ("POST", f"/api/v1/issuers/{slug}/api-keys", ADMIN, {"name": "second key"}),
        (
            "POST",
            "/api/v1/achievements",
            bearer(key),
            {
                "name": "Surrogate Studies",
                "description": "About text.",
                "criteria": {"narrative": "Wrote it."},
                "tags": ["text", "unicode"],
                "alignments": [{"target_name": "Writers", "target_url": "https://x.example/w"}],
            },
        ),
        (
            "POST",
            "/api/v1/credentials",
            bearer(key),
            {
                "achievement_id": achievement["uuid"],
                "recipient": {"email": "nul@example.com", "name": "Nul Person"},
                "evidence": [{"id": "https://evidence.example/1", "name": "Project"}],
            },
        ),
        (
            "POST",
            "/api/v1/credentials/batch",
            bearer(key),
            [{"achievement_id": achievement["uuid"], "email": "b@example.com", "name": "Bee"}],
        ),
        (
            "POST",
            f"/api/v1/credentials/{credential['id']}/revoke",
            bearer(key),
            {"reason": "Issued in error."},
        ),
        (
            "POST",
            "/api/v1/trust/issuers",
            ADMIN,
            {"identifier": "did:web:listed.example", "name": "Listed", "note": "ok"},
        ),
        (
            "POST",
            "/api/v1/webhooks",
            bearer(key),
            {
                "url": "https://hooks.example/in",
                "events": ["credential.issued"],
                "description": "d",
            },
        ),
    ]
    before = _counts(client, key)
    tried = 0
    for method, path, headers, body in bodies:
        for loc in _leaves(body):
            bad_body = _with(body, loc, bad)
            response = client.request(
                method,
                path,
                content=_json(bad_body),
                headers={**headers, "Content-Type": "application/json"},
            )
            problem = _assert_problem(response, 422)
            assert problem["errors"][0]["loc"][: 1 + len(loc)] == ["body", *map(str, loc)], problem
            tried += 1
    assert tried >= 20
    assert _counts(client, key) == before
    assert (
        client.get(f"/api/v1/credentials/{credential['id']}", headers=bearer(key)).json()["status"]
        == "active"
    )


def test_raw_surrogate_bytes_and_utf16_bodies_are_refused_too(
    client: TestClient, world: World
) -> None:
    body = b'{"name": "A' + RAW_SURROGATE + b'", "url": "https://a.example"}'
    response = client.post(
        "/api/v1/issuers", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code in {400, 422}, response.text
    utf16 = json.dumps({"name": "A\u0000", "url": "https://a.example"}).encode("utf-16")
    response = client.post(
        "/api/v1/issuers", content=utf16, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code in {400, 422}, response.text
    assert client.get("/api/v1/issuers", headers=ADMIN).json() == []


def test_a_json_body_without_content_type_is_checked(client: TestClient) -> None:
    body = _json({"name": f"A{NUL}", "url": "https://a.example"})
    response = client.post("/api/v1/issuers", content=body, headers=ADMIN)  # no Content-Type
    assert response.status_code in {400, 415, 422}, response.text
    assert client.get("/api/v1/issuers", headers=ADMIN).json() == []


def test_legitimate_unicode_round_trips(client: TestClient, world: World) -> None:
    name = "Académie \U0001f600 Ωmega 漢字"
    response = _post_json(
        client, "/api/v1/issuers", {"name": name, "url": "https://u.example"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    assert response.json()["issuer"]["name"] == name


# --- forms and the portfolio --------------------------------------------------------------------


def test_nul_in_form_fields_is_refused(client: TestClient, world: World) -> None:
    _issuer, credential = world.issued()
    token = credential["manage_url"].rsplit("/", 1)[1]
    for data in (
        {"handle": f"amara{NUL}", "display_name": "Amara"},
        {"handle": "amara", "display_name": f"Amara{NUL}"},
        {"handle": "amara", "display_name": "Amara", "portfolio_key": f"mcp_{NUL}"},
    ):
        _assert_problem(client.post(f"/manage/{token}/portfolio", data=data), 422)
    for body in ({"handle": f"amara{NUL}"}, {"handle": "amara", "display_name": SURROGATE}):
        _assert_problem(_post_json(client, f"/api/v1/manage/{token}/portfolio", body), 422)
    assert client.get(f"/api/v1/manage/{token}").json()["portfolio"] is None
    _assert_problem(client.post("/verify", data={"credential": f"eyJ{NUL}"}), 422)


def test_nul_in_a_multipart_text_field_is_never_a_500(client: TestClient, world: World) -> None:
    """Multipart bodies stream past the edge guard (they carry uploads): the storage backstop
    answers 422 where a NUL would reach the database."""
    _issuer, credential = world.issued()
    token = credential["manage_url"].rsplit("/", 1)[1]
    response = client.post(
        f"/manage/{token}/portfolio",
        files={"handle": (None, f"amara{NUL}x"), "display_name": (None, "Amara")},
    )
    assert response.status_code < 500, response.text
    assert client.get(f"/api/v1/manage/{token}").json()["portfolio"] in (None, {})


def test_nul_in_a_csv_batch_is_a_422(client: TestClient, world: World) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    csv = f"achievement_id,email,name\n{achievement['uuid']},a@example.com,A{NUL}B\n"
    response = client.post(
        "/api/v1/credentials/batch",
        content=csv.encode(),
        headers={**bearer(key), "Content-Type": "text/csv"},
    )
    _assert_problem(response, 400, 422)
    assert client.get("/api/v1/jobs", headers=bearer(key)).json()["items"] == []


# --- deep nesting: API, page, batch, CLI --------------------------------------------------------


@pytest.mark.parametrize("depth", [text.MAX_JSON_DEPTH + 1, 900, DEEP, 50_000])
def test_deep_nesting_is_a_400_everywhere(client: TestClient, world: World, depth: int) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    deep = _deep(depth)
    api = client.post(
        "/api/v1/verify",
        content=f'{{"credential": {deep}}}',
        headers={"Content-Type": "application/json"},
    )
    assert "nested" in _assert_problem(api, 400)["detail"]
    deep_object = '{"credential": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    _assert_problem(
        client.post(
            "/api/v1/verify", content=deep_object, headers={"Content-Type": "application/json"}
        ),
        400,
    )
    batch = client.post(
        "/api/v1/credentials/batch",
        content=f'[{{"email": "a@example.com", "evidence": {deep}}}]',
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    _assert_problem(batch, 400)
    created = _post_json(
        client, "/api/v1/issuers", {"name": "x", "url": "https://x.example"}, headers=ADMIN
    )
    assert created.status_code == 201  # the guard keeps no state between requests
    # The page: pasted JSON, as a url-encoded form and as multipart (where the edge does not
    # parse, the page's own parse does).
    pasted = '{"credential": ' + deep + "}"
    page = client.post("/verify", data={"credential": "{" + '"a": ' + deep + "}"})
    assert page.status_code == 400, page.text[:300]
    assert "nested" in page.text
    multipart = client.post("/verify", files={"credential": (None, pasted)})
    assert multipart.status_code == 400, multipart.text[:300]
    assert "nested" in multipart.text


def test_nesting_within_the_limit_still_verifies(client: TestClient, world: World) -> None:
    _issuer, credential = world.issued()
    payload = dict(credential["credential"])
    payload["nested"] = json.loads(_deep(text.MAX_JSON_DEPTH - 2))
    result = world.verify(payload)
    assert result["verified"] is False  # the JSON differs from the record, but it was read
    assert check(result, "record")["result"] == "fail"


def test_cli_verify_deep_or_bad_json_is_one_line_exit_2(tmp_path: Any, settings: Any) -> None:
    runner = CliRunner()
    env = {
        "MICROCRED_DATABASE_URL": settings.database_url,
        "MICROCRED_KEYS_DIR": str(settings.keys_dir),
        "MICROCRED_BASE_URL": settings.base_url,
    }
    for content in (
        '{"credential": ' + _deep(DEEP) + "}",
        '{"a": "x\\u0000y", "type": ["VerifiableCredential"]}',
        '{"a": "\\ud800"}',
    ):
        path = tmp_path / "cred.json"
        path.write_text(content)
        result = runner.invoke(cli, ["verify", str(path)], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code in {1, 2}, result.output
        assert "Traceback" not in result.output


# --- credentials being verified: a verdict, never a 500 -----------------------------------------


def _self_signed(payload: dict[str, Any]) -> str:
    """A VC-JWT signed by a did:jwk key (the credential's own), over the payload as given."""
    key = ec.generate_private_key(ec.SECP256R1())
    did = (
        "did:jwk:"
        + base64.urlsafe_b64encode(json.dumps(public_jwk(key.public_key())).encode())
        .rstrip(b"=")
        .decode()
    )
    payload = {**payload, "iss": did}
    payload["issuer"] = {**payload.get("issuer", {}), "id": did}
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": f"{did}#0", "typ": "JWT"})


def _payload(**credential: Any) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "issuer": {"type": ["Profile"], "name": "Acme"},
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSubject": {"type": ["AchievementSubject"], "achievement": {"name": "A"}},
        **credential,
    }


def _unsigned(header: dict[str, Any], payload_json: bytes) -> str:
    def seg(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{seg(json.dumps(header).encode())}.{seg(payload_json)}.{seg(b'sig')}"


@pytest.mark.parametrize(
    "variant",
    [
        "issuer_name_surrogate",
        "issuer_name_nul",
        "nul_kid",
        "surrogate_kid",
        "deep",
        "nul_issuer_id",
    ],
)
def test_jwt_with_bad_text_gets_a_verdict_on_every_entry_point(
    client: TestClient, world: World, variant: str
) -> None:
    our_did = world.issuer()["issuer"]["id"]
    if variant == "issuer_name_surrogate":
        token = _self_signed(_payload(issuer={"type": ["Profile"], "name": f"Acme{SURROGATE}"}))
    elif variant == "issuer_name_nul":
        token = _self_signed(_payload(issuer={"type": ["Profile"], "name": f"Acme{NUL}"}))
    elif variant in {"nul_kid", "surrogate_kid"}:
        bad = NUL if variant == "nul_kid" else SURROGATE
        token = _unsigned(
            {"alg": "ES256", "kid": f"{our_did}{bad}#key{bad}"},
            _json(_payload(issuer={"id": our_did + bad})),
        )
    elif variant == "deep":
        token = _unsigned({"alg": "ES256"}, b'{"vc": ' + _deep(DEEP).encode() + b"}")
    else:
        token = _unsigned(
            {"alg": "ES256", "kid": f"{our_did}#x"}, _json(_payload(issuer={"id": our_did + NUL}))
        )
    result = world.verify(token)
    assert result["verified"] is False
    assert check(result, "format")["result"] == "fail"
    raw = client.post(
        "/api/v1/verify", content=token, headers={"Content-Type": "application/vc+jwt"}
    )
    assert raw.status_code == 200
    assert raw.json()["verified"] is False
    page = client.post("/verify", data={"credential": token})
    # The page answers a result page, or the form again saying the token is not readable
    # (issue 14: no "Unnamed credential" page for what is no credential); never an error.
    assert page.status_code in {200, 400}, page.text[:300]
    assert page.headers["content-type"].startswith("text/html")
    if page.status_code == 400:
        assert "not a readable credential" in page.text
    assert "\ud800" not in page.text


def test_pasted_json_with_escaped_bad_text_is_refused_on_the_page(client: TestClient) -> None:
    for escaped in ("\\u0000", "\\ud800"):
        pasted = '{"type": ["VerifiableCredential"], "name": "A' + escaped + '"}'
        page = client.post("/verify", data={"credential": pasted})
        assert page.status_code == 400, page.text[:300]
        api = _post_json(client, "/api/v1/verify", {"credential": json.loads(pasted)})
        _assert_problem(api, 422)


def test_a_bad_member_name_is_named_in_the_problem_escaped(client: TestClient) -> None:
    body = b'{"name": "A", "url": "https://a.example", "x\\ud800y": 1, "\\u0000": 2}'
    response = client.post(
        "/api/v1/issuers", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    problem = _assert_problem(response, 422)
    assert problem["errors"][0]["loc"][1] in {"x\\ud800y", "\\u0000"}, problem
    assert client.get("/api/v1/issuers", headers=ADMIN).json() == []

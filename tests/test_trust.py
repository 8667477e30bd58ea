"""The operator's trust list: the API over HTTP, `lookup()`, DCC registry imports and the
`microcred trust` commands, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.core.context import AppContext
from app.trust import service
from app.trust.models import IDENTIFIER_MAX, NAME_MAX, NOTE_MAX, URL_MAX
from conftest import ADMIN, bearer

PROBLEM = "application/problem+json"
API = "/api/v1/trust/issuers"
REGISTRY_FILE = Path(__file__).parent / "data" / "dcc-registry.json"
KESTREL = "did:web:badges.kestrel.example%3A8443:issuers:data"  # canonical form of the file's


def registry_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    return document


def add(client: TestClient, **body: Any) -> Any:
    return client.post(API, json={"name": "Northwind", **body}, headers=ADMIN)


def added(client: TestClient, identifier: str, **body: Any) -> dict[str, Any]:
    response = add(client, identifier=identifier, **body)
    assert response.status_code == 201, response.text
    entry: dict[str, Any] = response.json()
    return entry


def entries(client: TestClient) -> list[dict[str, Any]]:
    response = client.get(API, headers=ADMIN)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def post_json(client: TestClient, path: str, body: Any, **params: Any) -> Any:
    """JSON as `json.dumps` writes it: ASCII, lone surrogates as \\u escapes (which httpx's
    encoder refuses, and a client may well send)."""
    headers = {**ADMIN, "Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body), params=params, headers=headers)


def import_registry(client: TestClient, document: Any, **params: Any) -> Any:
    return post_json(client, f"{API}/import", document, **params)


def assert_problem(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    detail: str = response.json()["detail"]
    return detail


def lookup(app: FastAPI, *candidates: str) -> str | None:
    """The identifier of the entry lookup() finds, through a read-only session as the verifier's."""
    ctx: AppContext = app.state.ctx
    with ctx.read_sessions() as session:
        entry = service.lookup(session, candidates)
        return entry.identifier if entry else None


# --- the operator API ------------------------------------------------------------------------


def test_every_route_needs_the_operator_token(client: TestClient) -> None:
    entry_id = added(client, "did:web:northwind.example")["id"]
    routes = [
        ("POST", API, {"identifier": "did:web:kestrel.example", "name": "Kestrel"}),
        ("GET", API, None),
        ("GET", f"{API}/{entry_id}", None),
        ("DELETE", f"{API}/{entry_id}", None),
        ("POST", f"{API}/import", registry_document()),
    ]
    for method, path, body in routes:
        for headers in ({}, bearer("not-the-token"), bearer("mck_an-issuer-key")):
            response = client.request(method, path, json=body, headers=headers)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
    assert [e["identifier"] for e in entries(client)] == ["did:web:northwind.example"]


def test_add_read_list_and_remove(client: TestClient) -> None:
    entry = added(
        client,
        "did:web:credentials.northwind.example",
        name="  Northwind University ",
        url="https://northwind.example/about",
        note="Checked by phone with the registrar, 2026-11-30.\nRenew yearly.",
    )
    assert entry["identifier"] == "did:web:credentials.northwind.example"
    assert entry["name"] == "Northwind University"
    assert entry["url"] == "https://northwind.example/about"
    assert entry["note"].endswith("Renew yearly.")
    assert entry["source"] == "manual"
    assert entry["domain"] == "credentials.northwind.example"
    assert entry["created_at"].endswith(("Z", "+00:00"))
    key = added(client, "did:key:z6MkvT4rbVmrXfq3BCXzH1UDdGFE3yGmPHWc5Dw1s1NYoGxq", name="A key")
    assert (key["domain"], key["url"], key["note"]) == (None, None, None)

    read = client.get(f"{API}/{entry['id']}", headers=ADMIN)
    assert read.status_code == 200
    assert read.json() == entry
    assert [e["name"] for e in entries(client)] == ["A key", "Northwind University"]

    assert client.delete(f"{API}/{entry['id']}", headers=ADMIN).status_code == 204
    assert_problem(client.get(f"{API}/{entry['id']}", headers=ADMIN), 404)
    assert_problem(client.delete(f"{API}/{entry['id']}", headers=ADMIN), 404)
    assert_problem(client.get(f"{API}/{uuid.uuid4()}", headers=ADMIN), 404)
    assert_problem(client.get(f"{API}/not-a-uuid", headers=ADMIN), 404)
    assert [e["id"] for e in entries(client)] == [key["id"]]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("did:web:Example.COM%3a8443:issuers:x", "did:web:example.com%3A8443:issuers:x"),
        ("DID:WEB:example.com", "did:web:example.com"),
        ("did:web:example.com:users:%7ealice", "did:web:example.com:users:~alice"),
        ("https://Badges.Example.org:443/keys/1?x#y", "https://badges.example.org"),
        ("https://badges.example.org:8443/", "https://badges.example.org:8443"),
        ("  did:jwk:eyJrdHkiOiJPS1AifQ  ", "did:jwk:eyJrdHkiOiJPS1AifQ"),
    ],
)
def test_identifiers_are_stored_in_canonical_form(
    client: TestClient, given: str, stored: str
) -> None:
    assert added(client, given)["identifier"] == stored


def test_a_listed_identifier_in_another_spelling_is_a_duplicate(client: TestClient) -> None:
    first = added(client, "did:web:example.com%3A8443:x")
    added(client, "https://badges.example.org")
    for spelling in (
        "did:web:Example.com%3a8443:x",
        "did:web:EXAMPLE.COM%3A8443:x",
        "https://BADGES.example.org:443/keys/7",
        "https://badges.example.org/",
    ):
        detail = assert_problem(add(client, identifier=spelling), 409)
        assert "already" in detail
    response = add(client, identifier="did:web:example.com%3a8443:x")
    assert response.json()["entry_id"] == first["id"]
    # a path segment is case-sensitive, another port is another origin: no duplicates
    added(client, "did:web:example.com%3A8443:X")
    added(client, "https://badges.example.org:8443")
    assert len(entries(client)) == 4


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": "http://northwind.example"},
        {"identifier": "urn:uuid:5d4c3b2a-1111-4222-8333-444455556666"},
        {"identifier": "northwind.example"},
        {"identifier": ""},
        {"identifier": "   "},
        {"identifier": "did:web:"},
        {"identifier": "did:web:northwind.example#key-1"},
        {"identifier": "did:web:north wind.example"},
        {"identifier": "did:web:northwind.example%3Anope"},
        {"identifier": "https://user:secret@northwind.example"},
        {"identifier": "https://bücher.example"},
        {"identifier": "did:web:northwind.example\x00"},
        {"identifier": "https://northwind.example/\x00"},
        {"identifier": "did:key:z" + "6" * IDENTIFIER_MAX},
        {"identifier": "did:web:ok.example", "name": ""},
        {"identifier": "did:web:ok.example", "name": " \t "},
        {"identifier": "did:web:ok.example", "name": "North\x00wind"},
        {"identifier": "did:web:ok.example", "name": "North\nwind"},
        {"identifier": "did:web:ok.example", "name": "N" * (NAME_MAX + 1)},
        {"identifier": "did:web:ok.example", "url": "http://ok.example"},
        {"identifier": "did:web:ok.example", "url": "ftp://ok.example"},
        {"identifier": "did:web:ok.example", "url": "https://ok.example/\x00"},
        {"identifier": "did:web:ok.example", "url": "https://ok.example/" + "a" * URL_MAX},
        {"identifier": "did:web:ok.example", "note": "a\x00b"},
        {"identifier": "did:web:\ud800.example"},
        {"identifier": "did:web:ok.example", "name": "\udfff"},
        {"identifier": "did:web:ok.example", "note": "n" * (NOTE_MAX + 1)},
        {"identifier": "did:web:ok.example", "source": "dcc-registry:forged"},
        {"name": "No identifier"},
    ],
)
def test_refused_entries_are_422_and_store_nothing(
    client: TestClient, body: dict[str, Any]
) -> None:
    assert_problem(post_json(client, API, {"name": "Northwind", **body}), 422)
    assert entries(client) == []


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(
        API, content=b"{identifier:", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)


def test_values_at_the_limits_are_stored(client: TestClient) -> None:
    identifier = "did:key:z" + "6" * (IDENTIFIER_MAX - len("did:key:z"))
    entry = added(
        client,
        identifier,
        name="N" * NAME_MAX,
        url="https://ok.example/" + "a" * (URL_MAX - len("https://ok.example/")),
        note="n" * NOTE_MAX,
    )
    assert entry["identifier"] == identifier
    assert (len(entry["name"]), len(entry["note"])) == (NAME_MAX, NOTE_MAX)
    assert entries(client) == [entry]


# --- lookup(), as the verifier calls it -------------------------------------------------------


def test_lookup_finds_every_spelling_and_nothing_else(app: FastAPI, client: TestClient) -> None:
    added(client, "did:web:example.com%3A8443:issuers:x", name="Example")
    added(client, "https://keys.kestrel.example", name="Kestrel")
    added(client, "did:key:z6MkvT4rbVmrXfq3BCXzH1UDdGFE3yGmPHWc5Dw1s1NYoGxq", name="Harbour")

    listed = "did:web:example.com%3A8443:issuers:x"
    for spelling in (
        listed,
        "did:web:Example.com%3a8443:issuers:x",
        "DID:Web:EXAMPLE.com%3a8443:issuers:x",
        "did:web:example.com%3A8443:issuers:x#key-1",  # the key's DID URL
        "  did:web:example.com%3A8443:issuers:x  ",
    ):
        assert lookup(app, spelling) == listed, spelling
    assert lookup(app, "https://KEYS.kestrel.example:443/jwks/1.json") == (
        "https://keys.kestrel.example"
    )
    assert lookup(app, "did:key:z6MkvT4rbVmrXfq3BCXzH1UDdGFE3yGmPHWc5Dw1s1NYoGxq#z6Mkv") == (
        "did:key:z6MkvT4rbVmrXfq3BCXzH1UDdGFE3yGmPHWc5Dw1s1NYoGxq"
    )
    # did:key is case-sensitive, paths are case-sensitive, another port is another origin
    for unlisted in (
        "did:key:Z6MKVT4RBVMRXFQ3BCXZH1UDDGFE3YGMPHWC5DW1S1NYOGXQ",
        "did:web:example.com%3A8443:issuers:X",
        "did:web:example.com:issuers:x",
        "https://keys.kestrel.example:8443/jwks/1.json",
        "http://keys.kestrel.example",
        "did:web:kestrel.example",
    ):
        assert lookup(app, unlisted) is None, unlisted


def test_lookup_prefers_the_first_listed_candidate(app: FastAPI, client: TestClient) -> None:
    added(client, "did:web:kestrel.example:issuers:data", name="Kestrel Data School")
    added(client, "https://kestrel.example", name="Kestrel")
    issuer, origin = "did:web:kestrel.example:issuers:data", "https://kestrel.example/keys/1"
    assert lookup(app, issuer, origin) == "did:web:kestrel.example:issuers:data"
    assert lookup(app, origin, issuer) == "https://kestrel.example"
    assert lookup(app, "did:key:z6Mkunlisted", origin) == "https://kestrel.example"
    assert lookup(app) is None


def test_lookup_ignores_what_no_entry_can_be(app: FastAPI, client: TestClient) -> None:
    """Attacker-chosen issuer ids reach lookup(): none may make the query fail (PostgreSQL
    refuses NUL) or match."""
    added(client, "did:web:northwind.example", name="Northwind")
    junk = (
        "",
        "   ",
        "did:web:northwind.example\x00",
        "\x00",
        "did:web:nörthwind.example",
        "did:web:northwind.example\ud800",
        "did:key:z" + "6" * (4 * IDENTIFIER_MAX),
        "https://[::1",
        "https://northwind.example:99999/",
    )
    assert lookup(app, *junk) is None
    assert lookup(app, *junk, "did:web:northwind.example") == "did:web:northwind.example"


# --- DCC issuer registry import --------------------------------------------------------------


def test_importing_a_dcc_registry_lists_its_issuers(app: FastAPI, client: TestClient) -> None:
    document = registry_document()
    response = import_registry(client, document)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "source": "dcc-registry:dcc",
        "added": 6,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "skipped": 0,
    }
    listed = {e["identifier"]: e for e in entries(client)}
    assert len(listed) == 6
    kestrel = listed[KESTREL]
    assert kestrel["name"] == "Kestrel Data School"
    assert kestrel["note"] == "Hamilton, ON, Canada"  # the entry's location
    assert kestrel["url"] == "https://kestrel.example"
    assert kestrel["source"] == "dcc-registry:dcc"
    name_only = next(e for e in listed.values() if e["name"] == "Badge Platform Test OBv3 Issuer")
    assert (name_only["url"], name_only["note"]) == (None, None)
    assert listed["did:key:z6MkpQ7Xa5tWn3rTKX5pTk2kbW3ZqsbLkK8mFvWmzrWqG4uP"]["note"] == (
        "Monterrey, Nuevo León, México"
    )
    # the file's spelling of the Kestrel DID finds the canonical entry
    assert lookup(app, "did:web:Badges.Kestrel.example%3a8443:issuers:data") == KESTREL


def test_reimporting_is_idempotent_and_updates_names(client: TestClient) -> None:
    document = registry_document()
    assert import_registry(client, document).json()["added"] == 6
    ids = {e["identifier"]: e["id"] for e in entries(client)}

    again = import_registry(client, document).json()
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 6)

    renamed = copy.deepcopy(document)
    renamed["registry"]["did:web:Badges.Kestrel.example%3a8443:issuers:data"]["name"] = (
        "Kestrel School of Data"
    )
    del renamed["registry"]["did:web:credentials.northwind.example"]["location"]
    result = import_registry(client, renamed).json()
    assert (result["added"], result["updated"], result["unchanged"]) == (0, 2, 4)
    listed = {e["identifier"]: e for e in entries(client)}
    assert listed[KESTREL]["name"] == "Kestrel School of Data"
    assert listed["did:web:credentials.northwind.example"]["note"] is None
    assert {i: e["id"] for i, e in listed.items()} == ids  # updated in place, same ids


def test_manual_entries_win_over_an_import(client: TestClient) -> None:
    manual = added(client, "did:web:credentials.northwind.example", name="Northwind (verified)")
    result = import_registry(client, registry_document()).json()
    assert (result["added"], result["skipped"]) == (5, 1)
    listed = {e["identifier"]: e for e in entries(client)}
    assert listed["did:web:credentials.northwind.example"] == manual


def test_replace_removes_only_that_registrys_dropped_entries(client: TestClient) -> None:
    document = registry_document()
    assert import_registry(client, document).json()["added"] == 6
    other = {"registry": {"did:web:sandbox.example": {"name": "Sandbox issuer"}}}
    assert import_registry(client, other, registry="DCC Sandbox Registry").json() == {
        "source": "dcc-registry:DCC Sandbox Registry",
        "added": 1,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "skipped": 0,
    }
    added(client, "did:web:manual.example", name="By hand")

    smaller = copy.deepcopy(document)
    del smaller["registry"]["did:web:credentials.northwind.example"]
    kept = import_registry(client, smaller).json()  # without replace: nothing removed
    assert (kept["removed"], kept["unchanged"]) == (0, 5)
    assert len(entries(client)) == 8

    replaced = import_registry(client, smaller, replace="true").json()
    assert (replaced["removed"], replaced["unchanged"]) == (1, 5)
    identifiers = {e["identifier"] for e in entries(client)}
    assert "did:web:credentials.northwind.example" not in identifiers
    assert {"did:web:sandbox.example", "did:web:manual.example"} <= identifiers
    assert len(identifiers) == 7


def _with_entry(key: str, value: Any) -> dict[str, Any]:
    """The realistic file with one more entry, placed last: the good ones come first."""
    document = registry_document()
    document["registry"][key] = value
    return document


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ([registry_document()], "array"),
        ("did:web:northwind.example", "string"),
        ({"meta": {"created": "2026-01-01"}}, '"registry"'),
        ({"registry": ["did:web:northwind.example"]}, '"registry"'),
        ({"meta": "2026-01-01", "registry": {}}, '"meta"'),
        (_with_entry("did:web:bad.example", "Bad Example"), "did:web:bad.example"),
        (_with_entry("did:web:bad.example", {"url": "https://bad.example"}), "name"),
        (_with_entry("did:web:bad.example", {"name": ""}), "name"),
        (_with_entry("did:web:bad.example", {"name": 42}), "name"),
        (_with_entry("did:web:bad.example", {"name": "Bad\x00"}), "name"),
        (_with_entry("did:web:bad.example", {"name": "B" * (NAME_MAX + 1)}), "name"),
        (_with_entry("did:web:bad.example", {"name": "Bad", "url": "http://bad.example"}), "url"),
        (_with_entry("did:web:bad.example", {"name": "Bad", "location": ["x"]}), "location"),
        (
            _with_entry("did:web:bad.example", {"name": "Bad", "location": "x" * (NOTE_MAX + 1)}),
            "location",
        ),
        (_with_entry("not a did", {"name": "Bad"}), "not a did"),
        (_with_entry("did:web:bad.example\x00", {"name": "Bad"}), "NUL"),
        (_with_entry("did:key:z" + "6" * IDENTIFIER_MAX, {"name": "Bad"}), "DID"),
        (_with_entry("did:web:Credentials.Northwind.example", {"name": "Again"}), "same issuer"),
        (_with_entry("did:web:\ud800.example", {"name": "Bad"}), "\\ud800"),
        (_with_entry("did:web:bad.example", {"name": "Bad \udc00"}), "name"),
        (
            {"registry": {f"did:web:n{n}.example": {"name": "N"} for n in range(10_001)}},
            "at most 10000",
        ),
    ],
)
def test_a_bad_registry_is_refused_whole(client: TestClient, document: Any, named: str) -> None:
    detail = assert_problem(import_registry(client, document), 422)
    assert named in detail, detail
    assert entries(client) == []


def test_a_registry_body_that_is_not_json_is_400_and_imports_nothing(client: TestClient) -> None:
    body = REGISTRY_FILE.read_bytes()[:-20]  # cut off
    response = client.post(
        f"{API}/import", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert entries(client) == []


@pytest.mark.parametrize("registry", ["", "x\x00", "x\ny", "r" * 300])
def test_a_bad_registry_name_is_refused(client: TestClient, registry: str) -> None:
    assert_problem(import_registry(client, registry_document(), registry=registry), 422)
    assert entries(client) == []


def test_parse_dcc_registry_is_pure(tmp_path: Path) -> None:
    parsed = service.parse_dcc_registry(registry_document())
    assert [e.identifier for e in parsed][3] == KESTREL
    assert parsed[0].name == "Harbour Nursing College"
    assert parsed[0].note == "Halifax, NS, Canada"
    with pytest.raises(service.InvalidRegistry, match="same issuer"):
        service.parse_dcc_registry(
            {"registry": {"did:web:a.example": {"name": "A"}, "DID:WEB:A.EXAMPLE": {"name": "A"}}}
        )


def test_the_openapi_document_describes_the_trust_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    create = paths[API]["post"]
    assert {"201", "401", "409", "422"} <= set(create["responses"])
    assert PROBLEM in create["responses"]["409"]["content"]
    assert PROBLEM in create["responses"]["422"]["content"]
    assert create["tags"] == ["operator"]
    imported = paths[f"{API}/import"]["post"]
    assert {"200", "400", "401", "422"} <= set(imported["responses"])
    schema = imported["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["registry"]
    assert {"401", "404"} <= set(paths[f"{API}/{{entry_id}}"]["delete"]["responses"])
    assert "204" in paths[f"{API}/{{entry_id}}"]["delete"]["responses"]


# --- microcred trust ----------------------------------------------------------------------------


def run_cli(settings: Settings, *args: str) -> Result:
    assert settings.admin_token is not None
    env = {
        "MICROCRED_BASE_URL": settings.base_url,
        "MICROCRED_DATABASE_URL": settings.database_url,
        "MICROCRED_KEYS_DIR": str(settings.keys_dir),
        "MICROCRED_ADMIN_TOKEN": settings.admin_token.get_secret_value(),
        "MICROCRED_ENV": "development",
    }
    return CliRunner().invoke(cli, list(args), env=env)


def assert_one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_cli_add_list_remove(client: TestClient, settings: Settings) -> None:
    done = run_cli(
        settings,
        "trust",
        "add",
        "did:web:Credentials.Northwind.example",
        "--name",
        "Northwind University",
        "--url",
        "https://northwind.example",
        "--note",
        "Added by the operator",
    )
    assert done.exit_code == 0, done.output
    entry = json.loads(done.stdout)
    assert entry["identifier"] == "did:web:credentials.northwind.example"
    assert entry["source"] == "manual"
    # the CLI and the API share one list
    assert [e["id"] for e in entries(client)] == [entry["id"]]
    other = added(client, "https://keys.kestrel.example", name="Kestrel")

    table = run_cli(settings, "trust", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["IDENTIFIER", "NAME", "SOURCE", "ID"]
    assert lines[1].split() == ["https://keys.kestrel.example", "Kestrel", "manual", other["id"]]
    assert lines[2].startswith("did:web:credentials.northwind.example  Northwind University  ")
    assert lines[2].endswith(entry["id"])
    as_json = run_cli(settings, "trust", "list", "--json")
    assert as_json.exit_code == 0
    assert [e["identifier"] for e in json.loads(as_json.stdout)] == [
        "https://keys.kestrel.example",
        "did:web:credentials.northwind.example",
    ]

    # remove by identifier in another spelling, then by id
    removed = run_cli(settings, "trust", "remove", "did:web:CREDENTIALS.northwind.example")
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["id"] == entry["id"]
    assert run_cli(settings, "trust", "remove", other["id"]).exit_code == 0
    assert entries(client) == []
    empty = run_cli(settings, "trust", "list", "--json")
    assert json.loads(empty.stdout) == []


def test_cli_errors_are_one_line(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli(settings, "trust", "add", "http://northwind.example", "--name", "N"),
        "invalid entry: identifier: must be a DID",
    )
    assert_one_line_error(
        run_cli(settings, "trust", "add", "did:web:northwind.example", "--name", "  "),
        "invalid entry: name",
    )
    assert_one_line_error(
        run_cli(settings, "trust", "add", "did:web:n.example", "--name", "N\x00"), "NUL"
    )
    added(client, "did:web:northwind.example")
    assert_one_line_error(
        run_cli(settings, "trust", "add", "did:web:NORTHWIND.example", "--name", "N"),
        "on the trust list already",
    )
    assert_one_line_error(
        run_cli(settings, "trust", "remove", "did:web:kestrel.example"), "not on the trust list"
    )
    assert_one_line_error(
        run_cli(settings, "trust", "remove", str(uuid.uuid4())), "No trust list entry"
    )
    assert_one_line_error(
        run_cli(settings, "trust", "import", str(tmp_path / "missing.json")), "cannot read"
    )
    broken = tmp_path / "broken.json"
    broken.write_bytes(REGISTRY_FILE.read_bytes()[:-20])
    assert_one_line_error(run_cli(settings, "trust", "import", str(broken)), "is not JSON")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(run_cli(settings, "trust", "import", str(binary)), "is not JSON")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_with_entry("not a did", {"name": "Bad"})), encoding="utf-8")
    assert_one_line_error(run_cli(settings, "trust", "import", str(bad)), "Nothing was imported.")
    assert [e["identifier"] for e in entries(client)] == ["did:web:northwind.example"]


def test_cli_import(client: TestClient, settings: Settings) -> None:
    first = run_cli(settings, "trust", "import", str(REGISTRY_FILE))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["added"] == 6
    again = run_cli(
        settings, "trust", "import", str(REGISTRY_FILE), "--registry", "dcc", "--replace"
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "source": "dcc-registry:dcc",
        "added": 0,
        "updated": 0,
        "unchanged": 6,
        "removed": 0,
        "skipped": 0,
    }
    named = run_cli(settings, "trust", "import", str(REGISTRY_FILE), "--registry", "Community")
    assert json.loads(named.stdout)["skipped"] == 6  # listed already, by the other registry
    assert {e["source"] for e in entries(client)} == {"dcc-registry:dcc"}

"""Pages for people: HTML error pages by content negotiation, HEAD wherever GET is, the
favicon, and the API docs served from our own files under our CSP."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from conftest import BASE_URL, World

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"
PEOPLE_404 = [
    f"/credentials/{UNKNOWN}",
    "/credentials/not-a-uuid",
    "/credentials/%E2%80%AE%00",
    f"/credentials/{UNKNOWN}/embed",
    "/credentials/nope/embed",
    f"/credentials/{UNKNOWN}/qr.svg",
    "/issuers/no-such-issuer",
    f"/achievements/{UNKNOWN}",
    "/achievements/not-a-uuid",
    "/no/such/page",
    "/static/nope.css",
]


@pytest.mark.parametrize("path", PEOPLE_404)
def test_browsers_get_an_error_page_with_a_way_on(client: TestClient, path: str) -> None:
    page = client.get(path, headers=BROWSER)
    assert page.headers["content-type"].startswith("text/html")
    assert "about:blank" not in page.text
    assert 'href="/verify"' in page.text
    assert 'href="/"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    if "%00" in path:  # NUL is refused at the edge, before any route: 400, as a page too
        assert page.status_code == 400, page.text
        assert "NUL" in page.text
        return
    assert page.status_code == 404, page.text
    assert "<h1>Nothing at this address</h1>" in page.text
    assert "do not rely on it" in page.text


@pytest.mark.parametrize("path", PEOPLE_404)
@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "application/problem+json"])
def test_api_clients_keep_problem_json(client: TestClient, path: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get(path, headers=headers)
    expected = 400 if "%00" in path else 404  # NUL: refused at the edge, before any route
    assert response.status_code == expected
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == expected


def test_api_paths_never_answer_html(client: TestClient) -> None:
    for path in ("/api/v1/issuers", "/api/v1/nope", f"/api/v1/credentials/{UNKNOWN}"):
        response = client.get(path, headers=BROWSER)
        assert response.status_code in {401, 404}
        assert response.headers["content-type"].startswith("application/problem+json")


def test_other_statuses_get_pages_too(client: TestClient) -> None:
    wrong_method = client.delete("/verify", headers=BROWSER)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")
    assert 'href="/verify"' in wrong_method.text
    bad_query = client.get(f"/credentials/{UNKNOWN}?format=xml", headers=BROWSER)
    assert bad_query.status_code == 422
    assert bad_query.headers["content-type"].startswith("text/html")


def test_favicon(client: TestClient) -> None:
    ico = client.get("/favicon.ico", headers=BROWSER)
    assert ico.status_code == 200
    assert ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # the ICO magic
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    home = client.get("/", headers=BROWSER).text
    assert 'rel="icon" href="/favicon.ico"' in home
    assert 'href="/static/favicon.svg" type="image/svg+xml"' in home


def test_head_wherever_get_is(world: World) -> None:
    _issuer, issued = world.issued()
    cid = issued["id"]
    for path in (
        "/",
        "/verify",
        f"/credentials/{cid}",
        f"/credentials/{cid}/qr.svg",
        f"/credentials/{cid}/qr.png",
        f"/credentials/{cid}/badge.png",
        f"/credentials/{cid}/card.png",
        f"/credentials/{cid}/embed",
        "/favicon.ico",
        "/static/style.css",
        "/docs",
        "/health",
    ):
        got = world.client.get(path, headers=BROWSER)
        head = world.client.head(path, headers=BROWSER)
        assert got.status_code == 200, path
        assert head.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers.get("etag") == got.headers.get("etag"), path
        assert head.headers["x-content-type-options"] == "nosniff"
    # A route without GET answers HEAD as it answers GET; an unknown path 404s.
    assert world.client.head("/api/v1/verify").status_code == 405
    assert world.client.head("/nope").status_code == 404
    assert world.client.head("/nope").content == b""


def test_docs_are_served_from_our_files_under_a_strict_csp(client: TestClient) -> None:
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = client.get(path, headers=BROWSER)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
        assert scripts
        for attrs, body in scripts:
            assert body.strip() == "", "no inline script"
            src = re.search(r'src="([^"]+)"', attrs)
            assert src, attrs
            assert src.group(1).startswith("/static/"), attrs
            js = client.get(src.group(1))
            assert js.status_code == 200
            assert "javascript" in js.headers["content-type"]
        assert f"/static/vendor/{asset}" in page.text
        assert "cdn" not in page.text.lower()
        assert not re.search(r'(src|href)="(https?:)?//', page.text), "nothing from elsewhere"
    # Every other page keeps the strict site-wide policy.
    assert (
        "'unsafe-inline'" not in client.get("/", headers=BROWSER).headers["content-security-policy"]
    )


def test_openapi_document_resolves_every_reference(client: TestClient) -> None:
    """Every `$ref` points into the document (ReDoc refuses the whole document otherwise)."""
    document = client.get("/openapi.json").json()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    all_refs = refs(document)
    assert all_refs
    for ref in all_refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"], ref


def test_every_json_request_body_has_examples_that_validate(client: TestClient) -> None:
    """The docs show a worked example for every JSON body, and each example is one the API
    accepts (checked by the model itself, so an example cannot drift from the schema)."""
    from pydantic import BaseModel

    from app.models import load_all_models

    load_all_models()
    models: dict[str, type[BaseModel]] = {}
    stack: list[type[BaseModel]] = list(BaseModel.__subclasses__())
    while stack:
        model = stack.pop()
        if model.__module__.startswith("app."):
            models[model.__name__] = model
        stack.extend(model.__subclasses__())
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json")
            if body is None:
                continue
            schema = body.get("schema", {})
            # An optional body is `anyOf: [{$ref}, {type: null}]`.
            refs = [s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s]
            if not refs:
                described = body.get("examples") or body.get("example") or schema.get("example")
                assert described, f"{method} {path}"
                continue
            name = refs[0].rsplit("/", 1)[1]
            examples = schemas[name].get("examples") or []
            assert examples, f"{method.upper()} {path}: {name} has no examples"
            for example in examples:
                models[name].model_validate(example)
                checked += 1
    assert checked >= 13


def test_credential_page_shows_the_registered_issuers_logo(world: World) -> None:
    issuer = world.issuer(image="https://data-academy.example/logo.png")
    key = issuer["api_key"]["key"]
    credential = world.credential(key, world.achievement(key)["uuid"])
    page = world.client.get(f"/credentials/{credential['id']}", headers=BROWSER).text
    assert '<img class="issuer-logo" src="https://data-academy.example/logo.png"' in page
    # A pasted copy with its signature broken shows no logo and no issuer link.
    head, body, signature = credential["jwt"].split(".")
    broken = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    pasted = world.client.post("/verify", data={"credential": broken}).text
    assert "issuer-logo" not in pasted
    assert f'href="{BASE_URL}/issuers/' not in pasted
    assert "Unverified claims" in pasted


def test_banners_carry_dates_and_reasons(world: World) -> None:
    from datetime import UTC, datetime, timedelta

    from conftest import bearer

    issuer = world.issuer(suspension=True)
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)["uuid"]
    today = datetime.now(UTC).strftime("%-d %b %Y")

    def banner(credential: dict[str, str]) -> str:
        page = world.client.get(f"/credentials/{credential['id']}", headers=BROWSER).text
        found = re.search(r'<p class="banner-text">(.*?)</p>', page, re.S)
        assert found
        return found.group(1)

    revoked = world.credential(key, achievement)
    done = world.client.post(
        f"/api/v1/credentials/{revoked['id']}/revoke",
        json={"reason": "Exam <re-marked> after appeal"},
        headers=bearer(key),
    )
    assert done.status_code == 200, done.text
    text = banner(revoked)
    assert f"revoked this credential on {today}" in text
    assert "Reason given: Exam &lt;re-marked&gt; after appeal." in text
    suspended = world.credential(key, achievement)
    done = world.client.post(
        f"/api/v1/credentials/{suspended['id']}/suspend",
        json={"reason": "Under review"},
        headers=bearer(key),
    )
    assert done.status_code == 200, done.text
    assert f"suspended this credential on {today}" in banner(suspended)
    assert "Reason given: Under review." in banner(suspended)
    now = datetime.now(UTC)
    expired = world.credential(
        key,
        achievement,
        valid_from=(now - timedelta(days=60)).isoformat(),
        valid_until=(now - timedelta(days=3)).isoformat(),
    )
    assert f"expired on {(now - timedelta(days=3)).strftime('%-d %b %Y')}" in banner(expired)
    for credential in (revoked, suspended, expired):
        page = world.client.get(f"/credentials/{credential['id']}", headers=BROWSER).text
        assert "certificate.pdf" not in page
        assert 'id="print-button"' not in page
        pdf = world.client.get(f"/credentials/{credential['id']}/certificate.pdf")
        assert pdf.status_code == 409
    valid = world.credential(key, achievement)
    pdf = world.client.get(f"/credentials/{valid['id']}/certificate.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")

"""Public pages and representations: the credential URL by Accept, verify form, QR caching."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from conftest import BASE_URL, World

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ISSUED: dict[str, Any] = {"recipient": {"email": "amara@example.com", "name": "Amara Okafor"}}


def assert_security_headers(response: Any) -> None:
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_credential_page_for_browsers(world: World) -> None:
    issuer, issued = world.issued(**ISSUED)
    path = f"/credentials/{issued['id']}"
    response = world.client.get(path, headers=HTML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Accept" in response.headers["vary"]
    assert_security_headers(response)
    page = response.text
    assert re.search(r'<h1 class="banner-title">\s*Verified\s*</h1>', page)
    assert "SQL for Analysts" in page
    assert "Data Academy" in page
    assert "Amara Okafor" in page
    assert "amara@example.com" not in page
    # Skills: alignment target names (with framework and code) and tags.
    assert "Data Scientists" in page
    assert "O*NET-SOC 15-2051.00" in page
    assert '<li class="tag">SQL</li>' in page
    assert '<li class="tag">data visualisation</li>' in page
    assert "Passed a proctored practical exam." in page
    # The answer in plain words first: who issued it, until when, checked when.
    line = re.search(r'<p class="verdict-line">(.*?)</p>', page, re.S)
    assert line
    words = re.sub(r"<[^>]+>", "", line.group(1))
    assert re.fullmatch(
        r"Issued by Data Academy · data-academy\.example · no expiry · "
        r"checked just now at \d\d:\d\d UTC",
        words,
    ), words
    for question in ("Is it real?", "Who certified it?", "Is it still valid?"):
        assert f"<dt>{question}</dt>" in page
    assert 'data-trust="registered"' in page
    # The baked badge image; the achievement name links to its page.
    assert f'src="{path}/badge.svg"' in page
    assert re.search(r'<h2 class="achievement-name"[^>]*><a href="[^"]*/achievements/', page)
    # The QR image, the share link, print and PDF; owner tools are not on the public page.
    assert f'src="{path}/qr.svg"' in page
    assert f'value="{BASE_URL}{path}"' in page
    assert f'href="{path}/certificate.pdf"' in page
    assert 'id="print-button"' in page
    assert "linkedin.com" not in page
    assert "embed-snippet" not in page
    # The technical checks are folded away.
    assert '<details class="panel checks">' in page
    assert f'href="{path}?format=json"' in page
    assert f'href="{path}?format=jwt"' in page
    assert f'href="/issuers/{issuer["issuer"]["slug"]}"' in page.replace(BASE_URL, "")
    # The links on the page work.
    assert world.client.get(f"{path}?format=json").json() == issued["credential"]
    assert world.client.get(f"{path}?format=jwt").text == issued["jwt"]


@pytest.mark.parametrize("accept", ["application/json", "application/ld+json"])
def test_credential_json_by_accept(world: World, accept: str) -> None:
    _issuer, issued = world.issued()
    response = world.client.get(f"/credentials/{issued['id']}", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.json() == issued["credential"]
    assert_security_headers(response)


@pytest.mark.parametrize("accept", ["application/vc+jwt", "application/jwt"])
def test_credential_jwt_by_accept(world: World, accept: str) -> None:
    _issuer, issued = world.issued()
    response = world.client.get(f"/credentials/{issued['id']}", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vc+jwt")
    assert response.text == issued["jwt"]


def test_format_query_overrides_accept(world: World) -> None:
    _issuer, issued = world.issued()
    path = f"/credentials/{issued['id']}"
    as_json = world.client.get(f"{path}?format=json", headers=HTML)
    assert as_json.headers["content-type"].startswith("application/ld+json")
    assert as_json.json() == issued["credential"]
    as_jwt = world.client.get(f"{path}?format=jwt", headers={"Accept": "application/json"})
    assert as_jwt.headers["content-type"].startswith("application/vc+jwt")
    assert as_jwt.text == issued["jwt"]
    as_html = world.client.get(f"{path}?format=html", headers={"Accept": "application/json"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert "Verified" in as_html.text
    # Preference by q-value, and a browser-like wildcard still gets the page.
    preferred = world.client.get(
        path, headers={"Accept": "text/html;q=0.5, application/vc+jwt;q=0.9"}
    )
    assert preferred.text == issued["jwt"]
    assert (
        world.client.get(path, headers={"Accept": "*/*"})
        .headers["content-type"]
        .startswith("text/html")
    )
    bad = world.client.get(f"{path}?format=xml")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_expired_credential_page_says_expired(world: World) -> None:
    now = datetime.now(UTC)
    _issuer, issued = world.issued(
        valid_from=(now - timedelta(days=30)).isoformat(),
        valid_until=(now - timedelta(days=1)).isoformat(),
    )
    page = world.client.get(f"/credentials/{issued['id']}", headers=HTML).text
    assert re.search(r'<h1 class="banner-title">\s*Expired\s*</h1>', page)
    assert "Verified" not in page
    assert world.verify(issued["jwt"])["status"] == "expired"


def test_verify_form_and_submissions(world: World) -> None:
    form = world.client.get("/verify", headers=HTML)
    assert form.status_code == 200
    assert '<form method="post" action="/verify" enctype="multipart/form-data">' in form.text
    assert 'name="credential"' in form.text
    assert_security_headers(form)

    _issuer, issued = world.issued(**ISSUED)
    result = world.client.post("/verify", data={"credential": issued["jwt"]})
    assert result.status_code == 200
    assert re.search(r'<h1 class="banner-title">\s*Verified\s*</h1>', result.text)
    assert "Amara Okafor" in result.text

    redirect = world.client.post(
        "/verify", data={"credential": f"  {issued['url']} "}, follow_redirects=False
    )
    assert redirect.status_code == 303
    assert redirect.headers["location"] == f"/credentials/{issued['id']}"

    # A damaged token of a real credential, or a token that holds no credential: a red result
    # page (with the reason), never "Verified", never an "Unnamed credential".
    for token in (issued["jwt"][:-6], "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"):
        page = world.client.post("/verify", data={"credential": token})
        assert page.status_code == 200
        assert re.search(r'<h1 class="banner-title">\s*Not valid\s*</h1>', page.text)
        assert "Verified" not in page.text
        assert "Unnamed credential" not in page.text
    assert "Nothing in it can be read as a credential" in page.text
    assert "The payload holds no credential" in page.text
    # Garbage of every shape: the form again with an error, never a result ("Unnamed credential").
    for garbage in (
        "not a credential",
        '{"a": 1}',
        "a.b.c",
        "....",
        "eyJ" + "A" * 5000,
        "[1, 2]",
        "{not json",
    ):
        page = world.client.post("/verify", data={"credential": garbage})
        assert page.status_code == 400, garbage
        assert page.headers["content-type"].startswith("text/html")
        assert 'class="notice error" role="alert"' in page.text
        assert "Unnamed credential" not in page.text
        assert "banner-title" not in page.text
        assert "Verified" not in page.text
    # NUL never reaches the form: the edge guard refuses it, with a page for the browser.
    refused = world.client.post(
        "/verify", data={"credential": "\u202e\u0000"}, headers={"Accept": "text/html"}
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert "Verified" not in refused.text
    # An unknown link of ours is a form error too, not a redirect to a 404.
    unknown = world.client.post(
        "/verify",
        data={"credential": f"{BASE_URL}/credentials/00000000-0000-4000-8000-000000000000"},
        follow_redirects=False,
    )
    assert unknown.status_code == 400
    assert "No credential of this service has that link" in unknown.text

    empty = world.client.post("/verify", data={"credential": "   "})
    assert empty.status_code == 400
    assert "Paste a credential" in empty.text
    foreign = world.client.post("/verify", data={"credential": "https://elsewhere.example/x"})
    assert foreign.status_code == 400


def test_issuer_and_achievement_pages(world: World) -> None:
    created = world.issuer(description="Evening courses in data.")
    issuer, key = created["issuer"], created["api_key"]["key"]
    achievement = world.achievement(key)

    page = world.client.get(f"/issuers/{issuer['slug']}", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Data Academy" in page.text
    assert "Evening courses in data." in page.text
    assert issuer["id"] in page.text
    assert_security_headers(page)
    profile = world.client.get(f"/issuers/{issuer['slug']}")
    assert profile.headers["content-type"].startswith("application/ld+json")
    assert profile.json()["id"] == issuer["id"]
    assert profile.json()["type"] == ["Profile"]
    assert profile.json()["name"] == "Data Academy"
    forced = world.client.get(f"/issuers/{issuer['slug']}?format=json", headers=HTML)
    assert forced.json()["id"] == issuer["id"]

    path = f"/achievements/{achievement['uuid']}"
    page = world.client.get(path, headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for text in ("SQL for Analysts", "Data Academy", "Data Scientists", "SQL", "MicroCredential"):
        assert text in page.text
    document = world.client.get(path, headers={"Accept": "application/json"})
    assert document.headers["content-type"].startswith("application/ld+json")
    body = document.json()
    assert body["id"] == f"{BASE_URL}{path}"
    assert body["name"] == "SQL for Analysts"
    assert body["creator"]["id"] == issuer["id"]
    assert world.client.get(f"{path}?format=json", headers=HTML).json() == body


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "keys": "ok", "disk": "ok"}
    assert_security_headers(response)


def test_security_headers_on_errors_and_api(client: TestClient) -> None:
    for response in (
        client.get("/no/such/page", headers=HTML),
        client.get("/api/v1/issuers"),
        client.get("/"),
    ):
        assert_security_headers(response)


@pytest.mark.parametrize(("kind", "media_type"), [("svg", "image/svg+xml"), ("png", "image/png")])
def test_qr_codes_are_cacheable_forever(world: World, kind: str, media_type: str) -> None:
    _issuer, issued = world.issued()
    path = f"/credentials/{issued['id']}/qr.{kind}"
    assert issued[f"qr_{kind}_url"] == f"{BASE_URL}{path}"
    first = world.client.get(path)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith(media_type)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag), etag  # strong: quoted, no W/ prefix
    assert "immutable" in first.headers["cache-control"]
    assert "max-age=31536000" in first.headers["cache-control"]
    if kind == "png":
        assert first.content.startswith(b"\x89PNG\r\n\x1a\n")
        [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(first.content)))
        assert decoded.text == issued["url"]
    else:
        assert b"<svg" in first.content

    again = world.client.get(path)
    assert again.content == first.content
    assert again.headers["etag"] == etag

    not_modified = world.client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    listed = world.client.get(path, headers={"If-None-Match": f'"other", {etag}'})
    assert listed.status_code == 304
    stale = world.client.get(path, headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == first.content

"""Web hardening: path tokens never reach a cookie or a header unchecked, negotiated URLs say
`Vary: Accept`, and only http(s) URLs are taken in or rendered as links."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.core.web import safe_href
from conftest import World, bearer, ob_credential

HTML = {"Accept": "text/html"}
HOSTILE_URLS = [
    "javascript:alert(document.domain)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://example.org/x",
    "//evil.example.org/x",
    "/relative/path",
    "http:/\\evil.example.org",
    "https://",
    "mailto:someone@example.org",
]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"href", "src", "action", "formaction"} and value is not None:
                self.urls.append((tag, value))


def _links(html: str) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


def _assert_only_web_links(html: str) -> None:
    """Every href/src of the page is one of ours (a path) or an absolute http(s) URL."""
    for tag, url in _links(html):
        if url.startswith("/") and not url.startswith("//"):
            continue
        if url.startswith("#") or url.startswith("mailto:?"):  # in-page, our own share link
            continue
        parts = urlsplit(url)
        assert parts.scheme in {"http", "https"}, (tag, url)
        assert parts.hostname, (tag, url)


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_safe_href_refuses_what_is_not_an_absolute_web_url(url: str) -> None:
    assert safe_href(url) is None


@pytest.mark.parametrize(
    "url", ["https://example.org/criteria", "http://example.org:8080/a?b=c#d", "HTTPS://EX.ORG"]
)
def test_safe_href_keeps_web_urls(url: str) -> None:
    assert safe_href(url) == url


@pytest.mark.parametrize("value", [None, 42, {"id": "https://x.example"}, ""])
def test_safe_href_refuses_what_is_not_text(value: Any) -> None:
    assert safe_href(value) is None


# --- tokens in the path ------------------------------------------------------------------------

INJECTED = [
    "x;%20Domain=evil.example.org;%20Max-Age=999999",
    "x%0d%0aSet-Cookie:%20pwned=1",
    "mcm_" + "A" * 40 + "%0d%0a",
    "mcm_" + "A" * 42 + ";",
    "mcm_" + "A" * 43 + "%20",
    "x%00y",
]


@pytest.mark.parametrize("token", INJECTED)
@pytest.mark.parametrize(
    ("method", "suffix", "data"),
    [
        ("POST", "/portfolio", {"handle": "my-portfolio"}),
        ("POST", "/portfolio", {"handle": "!!"}),  # the form's own error path redirects too
        ("POST", "/portfolio/remove", {}),
        ("POST", "/name-visibility", {"hidden": "true"}),
        ("GET", "", None),
    ],
)
def test_a_malformed_manage_token_never_reaches_a_cookie_or_a_redirect(
    world: World, token: str, method: str, suffix: str, data: dict[str, str] | None
) -> None:
    response = world.client.request(
        method, f"/manage/{token}{suffix}", data=data, headers=HTML, follow_redirects=False
    )
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    if "%00" in token:
        # NUL never reaches a route: the edge guard refuses the path itself (core.errors).
        assert response.status_code == 400, response.text
        return
    assert response.status_code == 404, response.text
    assert "This management link is not valid" in response.text


def test_the_flash_cookie_of_a_real_link_is_scoped_to_its_page(world: World) -> None:
    _, credential = world.issued()
    token = credential["manage_url"].rsplit("/", 1)[1]
    response = world.client.post(
        f"/manage/{token}/name-visibility", data={"hidden": "true"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/manage/{token}"
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1
    attributes = {
        part.split("=", 1)[0].strip().lower(): part.partition("=")[2]
        for part in cookies[0].split(";")[1:]
    }
    assert attributes["path"] == f"/manage/{token}"
    assert "domain" not in attributes
    assert attributes["max-age"] == "300"
    assert {"httponly", "samesite"} <= attributes.keys()


# --- Vary: Accept on negotiated URLs -----------------------------------------------------------


def _varies_on_accept(response: Any) -> None:
    vary = [v.strip().lower() for v in response.headers.get("vary", "").split(",")]
    assert "accept" in vary, (response.request.url, dict(response.headers))


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json", "application/ld+json", "*/*", "application/vc+jwt"]
)
def test_every_negotiated_url_varies_on_accept(world: World, accept: str) -> None:
    issuer, credential = world.issued()
    key = issuer["api_key"]["key"]
    achievement = world.client.get("/api/v1/achievements", headers=bearer(key)).json()["items"][0]
    token = credential["manage_url"].rsplit("/", 1)[1]
    joined = world.client.post(f"/api/v1/manage/{token}/portfolio", json={"handle": "amara"})
    assert joined.status_code == 201, joined.text
    headers = {"Accept": accept}
    for path in (
        f"/issuers/{issuer['issuer']['slug']}",
        f"/achievements/{achievement['uuid']}",
        f"/credentials/{credential['id']}",
        "/p/amara",
        "/p/nobody-here",
        f"/status/{issuer['issuer']['slug']}/revocation/1",
    ):
        response = world.client.get(path, headers=headers)
        assert response.status_code in {200, 404}, (path, response.text)
        _varies_on_accept(response)
        etag = response.headers.get("etag")
        if etag:
            again = world.client.get(path, headers={**headers, "If-None-Match": etag})
            assert again.status_code == 304
            _varies_on_accept(again)


# --- URLs taken in, URLs rendered --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
    ],
)
def test_api_refuses_non_web_urls_wherever_a_link_is_rendered(world: World, url: str) -> None:
    client = world.client
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    bodies: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        (
            "POST",
            "/api/v1/credentials",
            {
                "achievement_id": achievement["uuid"],
                "recipient": {"email": "a@example.com"},
                "evidence": [{"id": url, "name": "Project"}],
            },
            bearer(key),
        ),
        (
            "POST",
            "/api/v1/credentials",
            {"achievement_id": achievement["uuid"], "recipient": {"url": url}},
            bearer(key),
        ),
        (
            "POST",
            "/api/v1/achievements",
            {"name": "A", "description": "B", "criteria": {"id": url}},
            bearer(key),
        ),
        (
            "POST",
            "/api/v1/achievements",
            {"name": "A", "description": "B", "criteria": {"narrative": "n"}, "image": url},
            bearer(key),
        ),
        (
            "POST",
            "/api/v1/achievements",
            {
                "name": "A",
                "description": "B",
                "criteria": {"narrative": "n"},
                "alignments": [{"target_name": "T", "target_url": url}],
            },
            bearer(key),
        ),
        (
            "POST",
            "/api/v1/issuers",
            {"name": "Evil", "url": url},
            {"Authorization": "Bearer test-admin-token"},
        ),
        (
            "POST",
            "/api/v1/issuers",
            {"name": "Evil", "url": "https://evil.example", "image": url},
            {"Authorization": "Bearer test-admin-token"},
        ),
        (
            "PATCH",
            f"/api/v1/issuers/{issuer['issuer']['slug']}",
            {"url": url},
            {"Authorization": "Bearer test-admin-token"},
        ),
    ]
    for method, path, body, headers in bodies:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_bulk_rows_refuse_a_javascript_evidence_url(world: World) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    csv = (
        "email,evidence_url\n"
        "a@example.com,https://example.org/ok\n"
        "b@example.com,javascript:alert(1)\n"
        'c@example.com,"data:text/html;base64,PHNjcmlwdD4="\n'
    )
    response = world.client.post(
        f"/api/v1/credentials/batch?achievement_id={achievement['uuid']}",
        content=csv,
        headers={**bearer(key), "Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert (submitted["total"], submitted["failed"]) == (3, 2)
    assert [r["row"] for r in submitted["rows"]] == [2, 3]
    errors = [r["error"] for r in submitted["rows"]]
    assert all(e.startswith("evidence_url: URL scheme") for e in errors), errors


def test_pasted_foreign_credential_links_only_web_urls(world: World) -> None:
    credential = ob_credential("https://acme.example/issuer")
    achievement = credential["credentialSubject"]["achievement"]
    achievement["criteria"] = {"id": "javascript:alert('criteria')", "narrative": "Did it."}
    achievement["alignment"] = [
        {"type": ["Alignment"], "targetName": "Skill", "targetUrl": "data:text/html,<b>x</b>"},
        {"type": ["Alignment"], "targetName": "Fine", "targetUrl": "https://skills.example/1"},
    ]
    achievement["image"] = {"id": "javascript:alert('image')", "type": "Image"}
    credential["evidence"] = [
        {"id": "vbscript:msgbox(1)", "type": ["Evidence"], "name": "Project"},
        {"id": " JavaScript:alert(2)", "type": ["Evidence"], "name": "Other"},
    ]
    credential["issuer"]["url"] = "javascript:alert('issuer')"
    credential["issuer"]["image"] = "data:image/svg+xml,<svg onload=alert(1)>"
    page = world.client.post("/verify", data={"credential": json.dumps(credential)})
    assert page.status_code == 200, page.text
    assert "Project" in page.text  # shown, as text
    assert "Skill" in page.text
    # An unsigned paste is unverified: even its web links are shown as text, not followed
    # (the page marks it "Unverified claims"); what matters here is that nothing else links.
    assert "Fine" in page.text
    assert "Unverified claims" in page.text
    _assert_only_web_links(page.text)
    for word in ("javascript:", "vbscript:", "data:text", "data:image"):
        for _tag, url in _links(page.text):
            assert word not in url.lower()


def test_our_own_pages_link_only_web_urls(world: World) -> None:
    issuer, credential = world.issued(evidence=[{"id": "https://example.org/project", "name": "P"}])
    for path in (
        f"/credentials/{credential['id']}",
        f"/issuers/{issuer['issuer']['slug']}",
        "/verify",
        "/",
    ):
        page = world.client.get(path, headers=HTML)
        assert page.status_code == 200
        _assert_only_web_links(page.text)

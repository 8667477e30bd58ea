"""Sharing: LinkedIn add-to-profile links, link previews, the share card, embedding and oEmbed."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.sharing.linkedin import Certification, add_to_profile_url
from conftest import ADMIN, BASE_URL, World, bearer

HTML = {"Accept": "text/html"}


class Head(HTMLParser):
    """Collects <meta> and <link> tags (and <img>, <textarea> text) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.textareas: list[str] = []
        self._in_textarea = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a["name"]] = a.get("content", "")
        elif tag == "link":
            self.links.append(a)
        elif tag == "img":
            self.images.append(a)
        elif tag == "textarea":
            self._in_textarea = True
            self.textareas.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._in_textarea = False

    def handle_data(self, data: str) -> None:
        if self._in_textarea:
            self.textareas[-1] += data


def parse(html: str) -> Head:
    head = Head()
    head.feed(html)
    head.close()
    return head


def query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.linkedin.com", "/profile/add")
    parsed = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


# --- LinkedIn -------------------------------------------------------------------------------


def test_linkedin_url_is_form_encoded() -> None:
    cert = Certification(
        name="C++ & Rust: 100% safe?",
        organization_name="Ünï Academy #1",
        organization_id=None,
        issued=datetime(2026, 3, 5, tzinfo=UTC),
        expires=None,
        cert_url="http://testserver/credentials/x?y=1&z=2",
        cert_id="x",
    )
    fields = query(add_to_profile_url(cert))
    assert fields["name"] == "C++ & Rust: 100% safe?"
    assert fields["organizationName"] == "Ünï Academy #1"
    assert fields["certUrl"] == "http://testserver/credentials/x?y=1&z=2"


def test_linkedin_url_non_expiring_without_organization_id(world: World) -> None:
    _issuer, credential = world.issued(valid_from="2026-02-14T09:00:00Z")
    fields = query(credential["linkedin_add_url"])
    assert fields == {
        "startTask": "CERTIFICATION_NAME",
        "name": "SQL for Analysts",
        "organizationName": "Data Academy",
        "issueYear": "2026",
        "issueMonth": "2",
        "certUrl": credential["url"],
        "certId": credential["id"],
    }
    assert credential["url"] == f"{BASE_URL}/credentials/{credential['id']}"


def test_linkedin_url_expiring_with_organization_id(world: World) -> None:
    issuer = world.issuer(linkedin_organization_id="2414183")
    assert issuer["issuer"]["linkedin_organization_id"] == "2414183"
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    credential = world.credential(
        key,
        achievement["uuid"],
        valid_from="2026-11-01T00:00:00Z",
        valid_until="2028-10-31T23:59:59Z",
    )
    fields = query(credential["linkedin_add_url"])
    assert fields == {
        "startTask": "CERTIFICATION_NAME",
        "name": "SQL for Analysts",
        "organizationId": "2414183",
        "issueYear": "2026",
        "issueMonth": "11",
        "expirationYear": "2028",
        "expirationMonth": "10",
        "certUrl": credential["url"],
        "certId": credential["id"],
    }
    # The same link from every credential response.
    read = world.client.get(f"/api/v1/credentials/{credential['id']}", headers=bearer(key))
    assert read.json()["linkedin_add_url"] == credential["linkedin_add_url"]
    listed = world.client.get("/api/v1/credentials", headers=bearer(key)).json()["items"]
    assert [c["linkedin_add_url"] for c in listed] == [credential["linkedin_add_url"]]


def test_linkedin_expiring_without_id_and_patching_the_id(world: World) -> None:
    issuer = world.issuer()
    slug, key = issuer["issuer"]["slug"], issuer["api_key"]["key"]
    credential = world.credential(
        key,
        world.achievement(key)["uuid"],
        valid_from="2026-01-31T23:00:00Z",
        valid_until="2027-12-01T00:00:00Z",
    )
    fields = query(credential["linkedin_add_url"])
    assert "organizationId" not in fields
    assert (fields["organizationName"], fields["expirationYear"], fields["expirationMonth"]) == (
        "Data Academy",
        "2027",
        "12",
    )
    patched = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"linkedin_organization_id": "1337"}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["linkedin_organization_id"] == "1337"
    read = world.client.get(f"/api/v1/credentials/{credential['id']}", headers=bearer(key))
    fields = query(read.json()["linkedin_add_url"])
    assert fields["organizationId"] == "1337"
    assert "organizationName" not in fields
    # The owner's management page carries the same link (the public page has no owner tools).
    page = world.client.get(credential["manage_url"], headers=HTML).text
    assert 'href="https://www.linkedin.com/profile/add?' in page
    assert "Add to LinkedIn profile" in page
    # Not digits: refused; null removes it.
    bad = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"linkedin_organization_id": "acme"}, headers=ADMIN
    )
    assert bad.status_code == 422
    cleared = world.client.patch(
        f"/api/v1/issuers/{slug}", json={"linkedin_organization_id": None}, headers=ADMIN
    )
    assert cleared.json()["linkedin_organization_id"] is None
    assert (
        world.client.patch(f"/api/v1/issuers/{slug}", json={}, headers=bearer(key)).status_code
        == 401
    )


# --- link previews --------------------------------------------------------------------------


def test_open_graph_and_twitter_tags(world: World) -> None:
    _issuer, credential = world.issued()
    cid = credential["id"]
    page = world.client.get(f"/credentials/{cid}", headers=HTML)
    assert page.status_code == 200
    head = parse(page.text)
    card = f"{BASE_URL}/credentials/{cid}/card.png"
    m = head.meta
    assert m["og:title"] == "Verified: SQL for Analysts · Data Academy"
    assert m["og:url"] == credential["url"]
    assert m["og:type"] == "website"
    assert "SQL for Analysts" in m["og:description"]
    assert "Amara Okafor" in m["og:description"]
    assert m["og:image"] == card
    assert (m["og:image:width"], m["og:image:height"]) == ("1200", "627")
    assert "SQL for Analysts" in m["og:image:alt"]
    assert m["twitter:card"] == "summary_large_image"
    assert m["twitter:title"] == m["og:title"]
    assert m["twitter:description"] == m["og:description"]
    assert m["twitter:image"] == card
    # oEmbed discovery.
    alternates = [link for link in head.links if link.get("type") == "application/json+oembed"]
    assert len(alternates) == 1
    assert alternates[0]["rel"] == "alternate"
    assert alternates[0]["title"]
    assert alternates[0]["href"] == f"{BASE_URL}/oembed?" + urlencode(
        {"url": credential["url"], "format": "json"}
    )
    # No inline script on the public page (the print button's script is a file of ours).
    assert all(not body.strip() for body in re.findall(r"<script[^>]*>(.*?)</script>", page.text))
    assert len(head.textareas) == 0, "the owner's sharing tools are on the management page"
    # The LinkedIn fields shown for copying, and the copy-paste snippet (no script), for the owner.
    page = world.client.get(credential["manage_url"], headers=HTML)
    head = parse(page.text)
    assert credential["id"] in page.text
    assert len(head.textareas) == 2
    snippet = parse(head.textareas[0])
    assert snippet.images == [
        {
            "src": card,
            "alt": m["og:image:alt"],
            "width": "600",
            "height": "314",
        }
    ]
    assert "<script" not in head.textareas[0]
    assert "<script" not in page.text
    assert f'href="{credential["url"]}"' in head.textareas[0]


def _png(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def test_share_card_png_and_etag(world: World) -> None:
    issuer, credential = world.issued()
    cid = credential["id"]
    response = world.client.get(f"/credentials/{cid}/card.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = _png(response.content)
    assert image.format == "PNG"
    assert image.size == (1200, 627)
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    again = world.client.get(f"/credentials/{cid}/card.png", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # Revoked: a different card (no "Verified" mark), a different ETag; the old one is stale.
    key = issuer["api_key"]["key"]
    revoked = world.client.post(
        f"/api/v1/credentials/{cid}/revoke", json={"reason": "test"}, headers=bearer(key)
    )
    assert revoked.status_code == 200
    after = world.client.get(f"/credentials/{cid}/card.png", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert _png(after.content).size == (1200, 627)
    # A verified card has green in its status pill; the revoked one has none.
    assert _has_colour(_png(response.content), (17, 99, 41))
    assert not _has_colour(_png(after.content), (17, 99, 41))
    assert _has_colour(_png(after.content), (164, 14, 38))
    assert world.client.get("/credentials/not-a-uuid/card.png").status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert world.client.get(f"/credentials/{missing}/card.png").status_code == 404


def _has_colour(image: Image.Image, rgb: tuple[int, int, int]) -> bool:
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    return any(colour == rgb and count > 50 for count, colour in colours)


# --- embedding and oEmbed -------------------------------------------------------------------


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for directive in csp.split(";"):
        parts = directive.split()
        if parts:
            out[parts[0].lower()] = parts[1:]
    return out


def test_embed_route_allows_framing(world: World) -> None:
    _issuer, credential = world.issued()
    response = world.client.get(f"/credentials/{credential['id']}/embed")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = _directives(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["*"]
    assert csp["default-src"] == ["'self'"]
    assert "script-src" not in csp  # default-src 'self', and the card has no script at all
    assert "x-frame-options" not in response.headers
    body = response.text
    assert "SQL for Analysts" in body
    assert "Data Academy" in body
    assert "Verified" in body
    assert f'href="{credential["url"]}" target="_blank" rel="noopener"' in body
    assert "<script" not in body


def test_every_other_route_forbids_framing(world: World) -> None:
    issuer, credential = world.issued()
    cid, slug = credential["id"], issuer["issuer"]["slug"]
    key = issuer["api_key"]["key"]
    responses = {
        "page": world.client.get(f"/credentials/{cid}", headers=HTML),
        "json": world.client.get(f"/credentials/{cid}?format=json"),
        "api": world.client.get(f"/api/v1/credentials/{cid}", headers=bearer(key)),
        "qr.svg": world.client.get(f"/credentials/{cid}/qr.svg"),
        "qr.png": world.client.get(f"/credentials/{cid}/qr.png"),
        "card": world.client.get(f"/credentials/{cid}/card.png"),
        "oembed": world.client.get("/oembed", params={"url": credential["url"]}),
        "verify": world.client.get("/verify"),
        "health": world.client.get("/health"),
        "issuer page": world.client.get(f"/issuers/{slug}", headers=HTML),
        "home": world.client.get("/"),
        "404": world.client.get("/nowhere"),
    }
    for name, response in responses.items():
        assert response.status_code in {200, 404}, name
        assert response.headers.get("x-frame-options") == "DENY", name
        csp = _directives(response.headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"], name


def test_oembed_rich_response(world: World) -> None:
    _issuer, credential = world.issued()
    cid = credential["id"]
    response = world.client.get("/oembed", params={"url": credential["url"], "format": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = response.json()
    _assert_valid_oembed(data)
    assert data["type"] == "rich"
    assert data["provider_name"] == "microcred"
    assert data["provider_url"] == f"{BASE_URL}/"
    assert data["title"] == "SQL for Analysts, issued by Data Academy"
    frame = parse(data["html"])
    iframe_src = f'src="{BASE_URL}/credentials/{cid}/embed"'
    assert iframe_src in data["html"]
    assert data["html"].startswith("<iframe ")
    assert f'width="{data["width"]}"' in data["html"]
    assert frame.images == []
    assert (data["thumbnail_url"], data["thumbnail_width"], data["thumbnail_height"]) == (
        f"{BASE_URL}/credentials/{cid}/card.png",
        1200,
        627,
    )
    # maxwidth/maxheight are honoured, the thumbnail too (left out when it would not fit).
    small = world.client.get(
        "/oembed", params={"url": credential["url"], "maxwidth": 300, "maxheight": 150}
    ).json()
    _assert_valid_oembed(small)
    assert small["width"] <= 300
    assert small["height"] <= 150
    assert 'width="300"' in small["html"]
    assert 'height="150"' in small["html"]
    assert "thumbnail_url" not in small
    # The embed URL is a URL of the same credential.
    via_embed = world.client.get("/oembed", params={"url": f"{credential['url']}/embed"})
    assert via_embed.status_code == 200


def _assert_valid_oembed(data: dict[str, Any]) -> None:
    """The oEmbed 1.0 spec's requirements (§2.3.4) for a response of any type, and for `rich`."""
    assert data["version"] == "1.0"
    assert data["type"] in {"photo", "video", "link", "rich"}
    if data["type"] in {"rich", "video"}:
        assert isinstance(data["html"], str)
        assert data["html"]
        assert isinstance(data["width"], int)
        assert data["width"] > 0
        assert isinstance(data["height"], int)
        assert data["height"] > 0
    thumbs = {"thumbnail_url", "thumbnail_width", "thumbnail_height"} & data.keys()
    assert thumbs in (set(), {"thumbnail_url", "thumbnail_width", "thumbnail_height"})
    for key in ("title", "author_name", "provider_name", "provider_url"):
        assert key not in data or isinstance(data[key], str)


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.example/credentials/00000000-0000-4000-8000-000000000000",
        f"{BASE_URL}/credentials/00000000-0000-4000-8000-000000000000",
        f"{BASE_URL}/issuers/data-academy",
        f"{BASE_URL}/credentials/not-a-uuid",
        "not a url",
    ],
)
def test_oembed_unknown_or_foreign_url_is_404(client: TestClient, url: str) -> None:
    response = client.get("/oembed", params={"url": url, "format": "json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_oembed_xml_is_501(world: World) -> None:
    _issuer, credential = world.issued()
    response = world.client.get("/oembed", params={"url": credential["url"], "format": "xml"})
    assert response.status_code == 501


def test_pasted_credential_page_has_no_share_panel(world: World) -> None:
    _issuer, credential = world.issued(
        valid_until=(datetime.now(UTC) + timedelta(days=30)).isoformat()
    )
    pasted = world.client.post("/verify", data={"credential": credential["jwt"]}, headers=HTML)
    assert pasted.status_code == 200
    assert "og:image" not in pasted.text
    assert "Add to LinkedIn profile" not in pasted.text

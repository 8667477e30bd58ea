"""Freelancer portfolios: the recipient's management link, and public pages of chosen credentials.

Everything goes through the HTTP API and the HTML forms (no shortcuts into the database); the
portfolio QR code is rasterised by resvg and decoded by zxing-cpp.
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import resvg_py
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from conftest import BASE_URL, World, bearer

HTML = {"Accept": "text/html"}
PROBLEM = "application/problem+json"


def _token(credential: dict[str, Any]) -> str:
    url = credential["manage_url"]
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    prefix, _, token = parts.path.rpartition("/")
    assert prefix == "/manage"
    assert token.startswith("mcm_")
    return token


class Freelancer:
    """One issuer, three achievements with distinct skills, three credentials to one recipient."""

    ACHIEVEMENTS = (
        ("SQL for Analysts", "Data Analysts", ["SQL", "reporting"]),
        ("Python Foundations", "Software Developers", ["Python", "reporting"]),
        ("Secret Skunkworks", "Skunk Handlers", ["skunkworks-only"]),
    )

    def __init__(self, world: World) -> None:
        self.client = world.client
        issuer = world.issuer()
        self.key: str = issuer["api_key"]["key"]
        self.credentials: list[dict[str, Any]] = []
        for name, target, tags in self.ACHIEVEMENTS:
            achievement = world.achievement(
                self.key,
                name=name,
                alignments=[{"target_name": target, "target_url": "https://skills.example/x"}],
                tags=tags,
            )
            self.credentials.append(world.credential(self.key, achievement["uuid"]))
        self.tokens = [_token(c) for c in self.credentials]

    def add(self, i: int, handle: str, **body: Any) -> Any:
        return self.client.post(
            f"/api/v1/manage/{self.tokens[i]}/portfolio", json={"handle": handle, **body}
        )

    def portfolio(self, handle: str) -> dict[str, Any]:
        response = self.client.get(f"/p/{handle}?format=json")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def page(self, handle: str) -> str:
        response = self.client.get(f"/p/{handle}", headers=HTML)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        return response.text


@pytest.fixture
def freelancer(world: World) -> Freelancer:
    return Freelancer(world)


def test_issuance_hands_out_the_management_link_once(world: World, client: TestClient) -> None:
    issuer = world.issuer()
    key = issuer["api_key"]["key"]
    achievement = world.achievement(key)
    body = {"achievement_id": achievement["uuid"], "recipient": {"email": "amara@example.com"}}
    headers = {**bearer(key), "Idempotency-Key": "order-42"}
    first = client.post("/api/v1/credentials", json=body, headers=headers)
    assert first.status_code == 201, first.text
    token = _token(first.json())
    replay = client.post("/api/v1/credentials", json=body, headers=headers)
    assert replay.status_code == 200
    assert replay.json()["manage_url"] is None, "the token is not stored, so it cannot be replayed"
    read = client.get(f"/api/v1/credentials/{first.json()['id']}", headers=bearer(key))
    assert read.json()["manage_url"] is None
    managed = client.get(f"/api/v1/manage/{token}")
    assert managed.status_code == 200, managed.text
    data = managed.json()
    assert data["id"] == first.json()["id"]
    assert data["status"] == "valid"
    assert data["verified"] is True
    assert data["portfolio"] is None
    assert data["changes_allowed"] is True
    assert managed.headers["cache-control"] == "no-store"
    assert token not in str(client.get(f"/credentials/{data['id']}?format=json").json())


def test_portfolio_shows_exactly_the_chosen_credentials(freelancer: Freelancer) -> None:
    f = freelancer
    created = f.add(0, "amara-data", display_name="Amara Okafor")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True
    assert body["portfolio"] == {
        "handle": "amara-data",
        "display_name": "Amara Okafor",
        "url": f"{BASE_URL}/p/amara-data",
    }
    assert body["portfolio_key"].startswith("mcp_")
    assert created.headers["location"] == f"{BASE_URL}/p/amara-data"
    added = f.add(1, "amara-data", portfolio_key=body["portfolio_key"])
    assert added.status_code == 200, added.text
    assert added.json()["created"] is False
    assert added.json()["portfolio_key"] is None

    listed = f.portfolio("amara-data")
    chosen = {f.credentials[0]["id"], f.credentials[1]["id"]}
    assert {c["id"] for c in listed["credentials"]} == chosen
    assert all(c["status"] == "valid" and c["verified"] for c in listed["credentials"])
    assert {c["achievement_name"] for c in listed["credentials"]} == {
        "SQL for Analysts",
        "Python Foundations",
    }
    skills = {(s["kind"], s["name"]): s["count"] for s in listed["skills"]}
    assert skills == {
        ("alignment", "Data Analysts"): 1,
        ("alignment", "Software Developers"): 1,
        ("tag", "SQL"): 1,
        ("tag", "Python"): 1,
        ("tag", "reporting"): 2,
    }
    html = f.page("amara-data")
    assert "SQL for Analysts" in html
    assert "Python Foundations" in html
    never = f.credentials[2]
    assert "Secret Skunkworks" not in html
    assert never["id"] not in html
    assert "skunkworks-only" not in html
    assert never["id"] not in str(listed)
    # Accept: application/json gives the JSON too
    as_json = f.client.get("/p/amara-data", headers={"Accept": "application/json"})
    assert as_json.json() == listed

    # hide one again: gone from the page and the JSON
    removed = f.client.delete(f"/api/v1/manage/{f.tokens[1]}/portfolio")
    assert removed.status_code == 204
    listed = f.portfolio("amara-data")
    assert [c["id"] for c in listed["credentials"]] == [f.credentials[0]["id"]]
    html = f.page("amara-data")
    assert "Python Foundations" not in html
    assert "SQL for Analysts" in html
    assert f.client.get(f"/api/v1/manage/{f.tokens[1]}").json()["portfolio"] is None


def test_wrong_management_token_is_404(freelancer: Freelancer) -> None:
    client = freelancer.client
    real = freelancer.tokens[0]
    for token in ("mcm_nope", real[:-1] + ("A" if real[-1] != "A" else "B"), "x" * 500):
        calls = [
            client.get(f"/api/v1/manage/{token}"),
            client.post(f"/api/v1/manage/{token}/portfolio", json={"handle": "abc"}),
            client.delete(f"/api/v1/manage/{token}/portfolio"),
            client.put(f"/api/v1/manage/{token}/name-visibility", json={"hidden": True}),
        ]
        for response in calls:
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == PROBLEM
        page = client.get(f"/manage/{token}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        form = client.post(
            f"/manage/{token}/portfolio", data={"handle": "abc", "display_name": "A"}
        )
        assert form.status_code == 404
    assert client.get("/p/abc?format=json").status_code == 404


def test_old_token_after_remint_is_404(freelancer: Freelancer, world: World) -> None:
    f = freelancer
    credential_id = f.credentials[0]["id"]
    old = f.tokens[0]
    reminted = f.client.post(
        f"/api/v1/credentials/{credential_id}/manage-link", headers=bearer(f.key)
    )
    assert reminted.status_code == 200, reminted.text
    new = _token(reminted.json())
    assert new != old
    assert f.client.get(f"/api/v1/manage/{old}").status_code == 404
    assert f.client.get(f"/manage/{old}").status_code == 404
    assert f.client.post(f"/api/v1/manage/{old}/portfolio", json={"handle": "abc"}).status_code == (
        404
    )
    assert f.client.get(f"/api/v1/manage/{new}").json()["id"] == credential_id
    # only the credential's own issuer may re-mint
    other = world.issuer(name="Other Academy", url="https://other.example")
    foreign = f.client.post(
        f"/api/v1/credentials/{credential_id}/manage-link",
        headers=bearer(other["api_key"]["key"]),
    )
    assert foreign.status_code == 404
    assert f.client.post(f"/api/v1/credentials/{credential_id}/manage-link").status_code == 401
    assert f.client.get(f"/api/v1/manage/{new}").status_code == 200


def test_revoked_credential_token_cannot_change_and_portfolio_shows_revoked(
    freelancer: Freelancer,
) -> None:
    f = freelancer
    created = f.add(0, "amara-data", display_name="Amara Okafor")
    key = created.json()["portfolio_key"]
    assert f.add(2, "amara-data", portfolio_key=key).status_code == 200
    before = {(s["kind"], s["name"]) for s in f.portfolio("amara-data")["skills"]}
    assert ("tag", "skunkworks-only") in before

    revoked_id = f.credentials[2]["id"]
    revoked = f.client.post(
        f"/api/v1/credentials/{revoked_id}/revoke",
        json={"reason": "exam irregularity"},
        headers=bearer(f.key),
    )
    assert revoked.status_code == 200, revoked.text

    token = f.tokens[2]
    seen = f.client.get(f"/api/v1/manage/{token}")
    assert seen.status_code == 200
    assert seen.json()["status"] == "revoked"
    assert seen.json()["changes_allowed"] is False
    changes = [
        f.client.post(f"/api/v1/manage/{token}/portfolio", json={"handle": "elsewhere"}),
        f.client.delete(f"/api/v1/manage/{token}/portfolio"),
        f.client.put(f"/api/v1/manage/{token}/name-visibility", json={"hidden": True}),
    ]
    for response in changes:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM
    page = f.client.get(f"/manage/{token}")
    assert page.status_code == 200
    assert "Revoked" in page.text
    assert "<form" not in page.text
    # the HTML form refuses too, and says why
    form = f.client.post(f"/manage/{token}/portfolio/remove", follow_redirects=True)
    assert form.status_code == 200
    assert "revoked" in form.text
    assert f.client.get("/p/elsewhere?format=json").status_code == 404

    listed = f.portfolio("amara-data")
    by_id = {c["id"]: c for c in listed["credentials"]}
    assert set(by_id) == {f.credentials[0]["id"], revoked_id}, "never hidden silently"
    assert by_id[revoked_id]["status"] == "revoked"
    assert by_id[revoked_id]["status_label"] == "Revoked"
    assert by_id[revoked_id]["verified"] is False
    skills = {(s["kind"], s["name"]) for s in listed["skills"]}
    assert ("tag", "skunkworks-only") not in skills
    assert ("alignment", "Skunk Handlers") not in skills
    assert ("tag", "SQL") in skills
    html = f.page("amara-data")
    item = html[html.index("status-revoked") :]
    assert "Revoked" in item[:200]
    assert "Secret Skunkworks" in item
    assert "1 of 2 credentials verified" in html


def test_name_hiding_hides_the_name_on_portfolio_and_credential_page(
    freelancer: Freelancer,
) -> None:
    f = freelancer
    created = f.add(0, "amara-data")  # display name defaults to the name on the credential
    assert created.status_code == 201, created.text
    assert created.json()["portfolio"]["display_name"] == "Amara Okafor"
    credential_page = f"/credentials/{f.credentials[0]['id']}"
    assert "Amara Okafor" in f.page("amara-data")
    assert "Amara Okafor" in f.client.get(credential_page, headers=HTML).text

    hidden = f.client.put(f"/api/v1/manage/{f.tokens[0]}/name-visibility", json={"hidden": True})
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["name_hidden"] is True
    assert "Amara" not in f.page("amara-data")
    assert "Amara" not in f.client.get(credential_page, headers=HTML).text
    listed = f.portfolio("amara-data")
    assert listed["display_name"] is None
    assert all(c["recipient_name"] is None for c in listed["credentials"])
    assert "Amara" not in str(listed)
    # the other credentials' pages are the recipient's own choice, one by one
    assert (
        "Amara Okafor" in f.client.get(f"/credentials/{f.credentials[1]['id']}", headers=HTML).text
    )

    shown = f.client.put(f"/api/v1/manage/{f.tokens[0]}/name-visibility", json={"hidden": False})
    assert shown.json()["name_hidden"] is False
    assert "Amara Okafor" in f.page("amara-data")
    assert "Amara Okafor" in f.client.get(credential_page, headers=HTML).text
    bad = f.client.put(f"/api/v1/manage/{f.tokens[0]}/name-visibility", json={"hidden": "yes"})
    assert bad.status_code == 422


def test_handles_conflict_and_validate(freelancer: Freelancer) -> None:
    f = freelancer
    assert f.add(0, "amara-data", display_name="Amara").status_code == 201
    taken = f.add(1, "amara-data", display_name="Someone else")
    assert taken.status_code == 409, taken.text
    assert taken.headers["content-type"] == PROBLEM
    for bad in ("ab", "x" * 41, "amara_data", "amara data", "amära", "", "../etc"):
        response = f.add(1, bad, display_name="A")
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == PROBLEM
    # surrounding blanks and capitals are forgiven: handles are stored lowercase
    normalised = f.add(1, "  Amara-Python ", display_name="Amara")
    assert normalised.status_code == 201, normalised.text
    assert normalised.json()["portfolio"]["handle"] == "amara-python"
    assert [c["id"] for c in f.portfolio("amara-python")["credentials"]] == [f.credentials[1]["id"]]
    # a credential is on one portfolio at most: adding it elsewhere moves it
    assert [c["id"] for c in f.portfolio("amara-data")["credentials"]] == [f.credentials[0]["id"]]


def test_portfolio_key_is_required_to_add_to_an_existing_portfolio(
    freelancer: Freelancer,
) -> None:
    f = freelancer
    created = f.add(0, "amara-data", display_name="Amara")
    key = created.json()["portfolio_key"]
    no_key = f.add(1, "amara-data")
    assert no_key.status_code == 409, "without a key it is a request for a new portfolio"
    wrong = f.add(1, "amara-data", portfolio_key="mcp_" + "A" * 43)
    assert wrong.status_code == 403, wrong.text
    assert wrong.headers["content-type"] == PROBLEM
    other = f.add(2, "someone-else", display_name="Mallory")
    wrong_portfolio = f.add(1, "amara-data", portfolio_key=other.json()["portfolio_key"])
    assert wrong_portfolio.status_code == 403
    unknown = f.add(1, "no-such-portfolio", portfolio_key=key)
    assert unknown.status_code == 404
    assert [c["id"] for c in f.portfolio("amara-data")["credentials"]] == [f.credentials[0]["id"]]
    assert f.add(1, "amara-data", portfolio_key=key).status_code == 200
    assert len(f.portfolio("amara-data")["credentials"]) == 2


def _flash_key(html: str) -> str:
    match = re.search(r'id="portfolio-key"[^>]*value="(mcp_[A-Za-z0-9_-]+)"', html)
    assert match, html
    return match.group(1)


def test_manage_page_forms_end_to_end(freelancer: Freelancer) -> None:
    f = freelancer
    client = f.client
    first, second = f.tokens[0], f.tokens[1]

    page = client.get(f"/manage/{first}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]
    assert "<script" not in page.text
    assert "SQL for Analysts" in page.text
    assert "Verified" in page.text
    assert f'action="/manage/{first}/portfolio"' in page.text

    # a bad handle comes back as a message, nothing created
    bad = client.post(
        f"/manage/{first}/portfolio",
        data={"handle": "no", "display_name": "Amara"},
        follow_redirects=False,
    )
    assert bad.status_code == 303
    assert bad.headers["location"] == f"/manage/{first}"
    bad = client.get(bad.headers["location"])
    assert "A handle is 3–40 characters" in bad.text
    assert 'role="alert"' in bad.text

    # create: the owner key is shown once, after the redirect, never in a URL
    created = client.post(
        f"/manage/{first}/portfolio",
        data={"handle": "amara-dev", "display_name": "Amara Okafor", "portfolio_key": ""},
        follow_redirects=True,
    )
    assert created.status_code == 200
    assert [r.status_code for r in created.history] == [303]
    assert "mcp_" not in created.history[0].headers["location"]
    key = _flash_key(created.text)
    assert "/p/amara-dev" in created.text
    again = client.get(f"/manage/{first}")
    assert key not in again.text, "shown once"
    assert "listed on your public portfolio" in again.text

    # the second credential joins with the key; the third is never added
    joined = client.post(
        f"/manage/{second}/portfolio",
        data={"handle": "amara-dev", "portfolio_key": key},
        follow_redirects=True,
    )
    assert "Added to your portfolio /p/amara-dev." in joined.text
    wrong = client.post(
        f"/manage/{f.tokens[2]}/portfolio",
        data={"handle": "amara-dev", "portfolio_key": "mcp_wrong"},
        follow_redirects=True,
    )
    assert "not the owner key" in wrong.text
    html = f.page("amara-dev")
    assert "SQL for Analysts" in html
    assert "Python Foundations" in html
    assert "Secret Skunkworks" not in html

    # hide the name, then take the second credential off again
    hidden = client.post(
        f"/manage/{first}/name-visibility", data={"hidden": "true"}, follow_redirects=True
    )
    assert "Your name is now hidden on public pages." in hidden.text
    assert "Show my name" in hidden.text
    assert "Amara" not in f.page("amara-dev")
    shown = client.post(
        f"/manage/{first}/name-visibility", data={"hidden": "false"}, follow_redirects=True
    )
    assert "Hide my name" in shown.text
    assert "Amara Okafor" in f.page("amara-dev")
    removed = client.post(f"/manage/{second}/portfolio/remove", follow_redirects=True)
    assert "Removed from your portfolio" in removed.text
    assert "not on any portfolio" in removed.text
    html = f.page("amara-dev")
    assert "Python Foundations" not in html
    assert "SQL for Analysts" in html


def test_portfolio_page_and_qr_code(freelancer: Freelancer) -> None:
    f = freelancer
    assert f.add(0, "amara-data", display_name="Amara Okafor").status_code == 201
    html = f.page("amara-data")
    url = f"{BASE_URL}/p/amara-data"
    assert 'src="/p/amara-data/qr.svg"' in html
    assert f'value="{url}"' in html, "a copyable link"
    assert "linkedin.com/sharing/share-offsite/?url=" in html
    assert "<script" not in html
    assert 'lang="en"' in html
    assert "Verified skills" in html

    qr = f.client.get("/p/amara-data/qr.svg")
    assert qr.status_code == 200
    assert qr.headers["content-type"].startswith("image/svg+xml")
    png = resvg_py.svg_to_bytes(svg_string=qr.text, dpi=96, width=400, background="white")
    image = Image.open(io.BytesIO(bytes(png)))
    decoded = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [r.text for r in decoded] == [url]
    etag = qr.headers["etag"]
    assert etag.startswith('"')
    again = f.client.get("/p/amara-data/qr.svg", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag

    for path in ("/p/nobody/qr.svg", "/p/nobody", "/p/Bad_Handle"):
        missing = f.client.get(path, headers={"Accept": "application/json"})
        assert missing.status_code == 404, path
        assert missing.headers["content-type"] == PROBLEM
    browser = f.client.get("/p/nobody", headers=HTML)
    assert browser.status_code == 404
    assert browser.headers["content-type"].startswith("text/html")
    assert "Portfolio not found" in browser.text

"""The portfolio as its owner arranges it: valid first, featured and ordered, headline and bio."""

from __future__ import annotations

from typing import Any

from conftest import World, bearer

HTML = {"Accept": "text/html"}


def _portfolio(world: World) -> tuple[str, list[dict[str, Any]]]:
    issuer = world.issuer(suspension=True)
    key = issuer["api_key"]["key"]
    names = ["First Course", "Second Course", "Third Course", "Fourth Course"]
    creds = []
    for name in names:
        achievement = world.achievement(key, name=name)
        creds.append(world.credential(key, achievement["uuid"]))
    token = creds[0]["manage_url"].rsplit("/", 1)[1]
    joined = world.client.post(
        f"/api/v1/manage/{token}/portfolio", json={"handle": "owner-test", "display_name": "Ada"}
    )
    assert joined.status_code in {200, 201}, joined.text
    portfolio_key = joined.json()["portfolio_key"]
    for c in creds[1:]:
        added = world.client.post(
            f"/api/v1/manage/{c['manage_url'].rsplit('/', 1)[1]}/portfolio",
            json={"handle": "owner-test", "portfolio_key": portfolio_key},
        )
        assert added.status_code in {200, 201}, added.text
    return key, creds


def _order(world: World) -> list[str]:
    body = world.client.get("/p/owner-test", headers={"Accept": "application/json"}).json()
    return [c["achievement_name"] for c in body["credentials"]]


def _form(world: World, credential: dict[str, Any], action: str, **data: str) -> None:
    response = world.client.post(
        f"{credential['manage_url']}/portfolio/{action}", data=data, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_valid_first_then_featured_and_owner_order(world: World) -> None:
    key, creds = _portfolio(world)
    first, second, _third, fourth = creds
    # Newest first to begin with.
    assert _order(world) == ["Fourth Course", "Third Course", "Second Course", "First Course"]
    # A suspended credential drops below every valid one, whatever the owner's order.
    suspended = world.client.post(
        f"/api/v1/credentials/{fourth['id']}/suspend",
        json={"reason": "review"},
        headers=bearer(key),
    )
    assert suspended.status_code == 200, suspended.text
    assert _order(world)[-1] == "Fourth Course"
    # Featuring puts a credential first; moves swap neighbours within the same group.
    _form(world, first, "feature", featured="true")
    assert _order(world) == ["First Course", "Third Course", "Second Course", "Fourth Course"]
    _form(world, second, "move", direction="up")
    assert _order(world) == ["First Course", "Second Course", "Third Course", "Fourth Course"]
    _form(world, second, "move", direction="up")  # already first of the unfeatured: stays
    assert _order(world) == ["First Course", "Second Course", "Third Course", "Fourth Course"]
    _form(world, second, "move", direction="down")
    assert _order(world) == ["First Course", "Third Course", "Second Course", "Fourth Course"]
    # Even featured, a suspended credential stays below the valid ones.
    _form(world, fourth, "feature", featured="true")
    assert _order(world)[-1] == "Fourth Course"
    body = world.client.get("/p/owner-test", headers={"Accept": "application/json"}).json()
    assert [c["featured"] for c in body["credentials"]] == [True, False, False, True]
    page = world.client.get("/p/owner-test", headers=HTML).text
    assert page.count("★ Featured") == 2
    assert page.count('class="portfolio-thumb"') == 4
    _form(world, first, "feature", featured="false")
    assert _order(world) == ["Third Course", "Second Course", "First Course", "Fourth Course"]


def test_headline_and_bio(world: World) -> None:
    _key, creds = _portfolio(world)
    _form(
        world,
        creds[2],
        "profile",
        headline="  Freelance data analyst · SQL <and> dashboards ",
        bio="Ten years of reporting.\nBased in Lagos.",
    )
    body = world.client.get("/p/owner-test", headers={"Accept": "application/json"}).json()
    assert body["headline"] == "Freelance data analyst · SQL <and> dashboards"
    assert body["bio"] == "Ten years of reporting.\nBased in Lagos."
    page = world.client.get("/p/owner-test", headers=HTML).text
    assert "SQL &lt;and&gt; dashboards" in page
    manage = world.client.get(creds[2]["manage_url"], headers=HTML).text
    assert 'value="Freelance data analyst · SQL &lt;and&gt; dashboards"' in manage
    _form(world, creds[2], "profile", headline=" ", bio="")
    body = world.client.get("/p/owner-test", headers={"Accept": "application/json"}).json()
    assert body["headline"] is None
    assert body["bio"] is None
    # Too long is refused, not cut silently into a half-written record.
    long = world.client.post(
        f"{creds[2]['manage_url']}/portfolio/profile", data={"headline": "x" * 201}
    )
    assert long.status_code == 422


def test_owner_forms_for_a_credential_on_no_portfolio(world: World) -> None:
    _issuer, credential = world.issued()
    for action, data in (
        ("feature", {"featured": "true"}),
        ("move", {"direction": "up"}),
        ("profile", {"headline": "x"}),
    ):
        response = world.client.post(
            f"{credential['manage_url']}/portfolio/{action}", data=data, follow_redirects=True
        )
        assert response.status_code == 200
        assert "not on a portfolio" in response.text
    bad = world.client.post(
        f"{credential['manage_url']}/portfolio/move", data={"direction": "sideways"}
    )
    assert bad.status_code == 422
    unknown = world.client.post("/manage/mcm_nope/portfolio/feature", data={"featured": "true"})
    assert unknown.status_code == 404

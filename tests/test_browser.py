"""The credential page in a real browser: headless Chromium against a real `microcred serve`.

Screenshots at a phone width (390 px) and a desktop width (1280 px) are saved under
`test-artifacts/` for people to look at; the rendered DOM (`--dump-dom`) is checked for the
status banner, the badge emblem, the QR code and the link-preview and oEmbed tags.
Chromium only ever talks to 127.0.0.1: the flags turn off its own background traffic.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from test_interop_server import ADMIN, Server, running_server

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
SIZES = {"phone": (390, 2000), "desktop": (1280, 1400)}


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    pytest.skip("Chromium is not installed: run `make test-deps` (apt-get install chromium)")


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("browser")) as srv:
        yield srv


@pytest.fixture(scope="module")
def credential(server: Server) -> dict[str, Any]:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
        created = http.post(
            "/api/v1/issuers",
            json={
                "name": "Northwind Data Academy",
                "url": "https://northwind.example",
                "linkedin_organization_id": "2414183",
            },
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        key = {"Authorization": f"Bearer {created.json()['api_key']['key']}"}
        achievement = http.post(
            "/api/v1/achievements",
            json={
                "name": "SQL for Analysts",
                "description": "Writes correct, efficient SQL for reporting and dashboards.",
                "criteria": {"narrative": "Passed a proctored two-hour practical exam."},
                "achievement_type": "MicroCredential",
                "alignments": [
                    {
                        "target_name": "Data Scientists",
                        "target_url": "https://www.onetonline.org/link/summary/15-2051.00",
                        "target_framework": "O*NET-SOC",
                        "target_code": "15-2051.00",
                    }
                ],
                "tags": ["SQL", "PostgreSQL", "data visualisation"],
            },
            headers=key,
        )
        assert achievement.status_code == 201, achievement.text
        issued = http.post(
            "/api/v1/credentials",
            json={
                "achievement_id": achievement.json()["uuid"],
                "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
                "valid_until": "2029-06-30T23:59:59Z",
            },
            headers=key,
        )
        assert issued.status_code == 201, issued.text
        data: dict[str, Any] = issued.json()
        return data


@pytest.mark.parametrize("size", list(SIZES))
def test_screenshots(server: Server, credential: dict[str, Any], size: str, tmp_path: Path) -> None:
    width, height = SIZES[size]
    ARTIFACTS.mkdir(exist_ok=True)
    for name, url in (
        ("credential", credential["url"]),
        ("embed", f"{credential['url']}/embed"),
    ):
        if name == "embed" and size == "phone":
            continue
        target = ARTIFACTS / f"{name}-{size}-{width}.png"
        target.unlink(missing_ok=True)
        done = _run(
            [f"--screenshot={target}", f"--window-size={width},{height}", url], tmp_path / "profile"
        )
        assert target.exists(), f"no screenshot of {url}:\n{done.stderr[-3000:]}"
        with Image.open(target) as image:
            assert image.format == "PNG"
            assert image.width == width
            assert image.height == height


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def with_class(self, cls: str) -> list[tuple[str, dict[str, str]]]:
        return [(t, a) for t, a in self.tags if cls in a.get("class", "").split()]


def test_rendered_dom(server: Server, credential: dict[str, Any], tmp_path: Path) -> None:
    done = _run(["--dump-dom", credential["url"]], tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-3000:]
    (ARTIFACTS / "credential-dom.html").write_text(done.stdout)
    dom = Dom()
    dom.feed(done.stdout)
    cid = credential["id"]
    # The status banner.
    banners = dom.with_class("banner")
    assert banners
    assert "status-valid" in banners[0][1]["class"]
    assert banners[0][1].get("role") == "status"
    assert "Verified" in done.stdout
    # The badge: an image or the generated emblem, with a text alternative.
    emblems = dom.with_class("emblem") + dom.with_class("badge-image")
    assert emblems
    assert any(a.get("aria-label") or a.get("alt") for _t, a in emblems)
    # The QR code.
    qr = dom.find("img", src=f"/credentials/{cid}/qr.svg")
    assert qr
    assert qr[0]["alt"]
    # Link previews and oEmbed discovery.
    base = server.base_url
    assert dom.find("meta", property="og:image", content=f"{base}/credentials/{cid}/card.png")
    assert dom.find("meta", property="og:url", content=credential["url"])
    assert dom.find("meta", name="twitter:card", content="summary_large_image")
    oembed = dom.find("link", rel="alternate", type="application/json+oembed")
    assert oembed
    assert oembed[0]["href"].startswith(f"{base}/oembed?url=")
    # The LinkedIn button is the owner's (on the management page), not every visitor's.
    assert not dom.with_class("linkedin")
    manage = _run(["--dump-dom", credential["manage_url"]], tmp_path / "profile")
    owner = Dom()
    owner.feed(manage.stdout)
    assert any(
        a.get("href", "").startswith("https://www.linkedin.com/profile/add?")
        for _t, a in owner.with_class("linkedin")
    )
    # Every image has a text alternative.
    assert all("alt" in a for a in dom.find("img"))

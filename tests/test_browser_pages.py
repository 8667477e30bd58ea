"""Every page a person meets, in real headless Chromium against a real `microcred serve`.

For each: screenshots at 390 px (phone) and 1280 px (desktop) under `test-artifacts/pages/`,
and DOM assertions of what a person must see there (read in the browser, after CSS and
scripts: computed styles, loaded images, overflow). Console errors fail the test. Chromium
only talks to 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium
import pytest
import zxingcpp
from chrome import FLAGS, Chrome, Page, chromium_path
from cryptography.hazmat.primitives.asymmetric import ed25519
from pypdf import PdfReader
from test_interop_server import ADMIN, Server, running_server
from test_trust_verdicts import harvard, sign
from test_verify_interop import did_key, did_key_url
from test_verify_negative import segment, split

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"
WIDTHS = {"phone": 390, "desktop": 1280}
REASON = "Exam result withdrawn after an appeal."
# Chromium's own flags for a one-shot run (no DevTools port).
CLI_FLAGS = [f for f in FLAGS if not f.startswith("--remote-debugging")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with running_server(tmp_path_factory.mktemp("pages")) as srv:
        yield srv


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory, server: Server) -> Iterator[Chrome]:
    with Chrome(tmp_path_factory.mktemp("profile")) as browser:
        yield browser


@pytest.fixture(scope="module")
def page(chrome: Chrome) -> Page:
    return chrome.page()


class Fixture:
    """Northwind's credentials in every state, made through the real API."""

    def __init__(self, server: Server) -> None:
        self.base = server.base_url
        self.http = httpx.Client(base_url=server.base_url, timeout=60.0)
        created = self.http.post(
            "/api/v1/issuers",
            json={
                "name": "Northwind Data School",
                "url": "https://northwind.example",
                "suspension": True,
                "linkedin_organization_id": "2414183",
            },
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        self.key = {"Authorization": f"Bearer {created.json()['api_key']['key']}"}
        self.achievement = self._achievement("SQL for Analysts")
        self.long_achievement = self._achievement(
            "Advanced Statistical Modelling, Causal Inference and Machine Learning for "
            "Public Health Data Analysts"
        )
        self.valid = self.issue(valid_until="2028-12-31T23:59:59Z")
        self.revoked = self.issue()
        self.post(f"/api/v1/credentials/{self.revoked['id']}/revoke", {"reason": REASON})
        self.suspended = self.issue()
        self.post(
            f"/api/v1/credentials/{self.suspended['id']}/suspend",
            {"reason": "Under review by the exam board."},
        )
        now = datetime.now(UTC)
        self.expired = self.issue(
            valid_from=(now - timedelta(days=400)).isoformat(),
            valid_until=(now - timedelta(days=35)).isoformat(),
        )
        self.long = self.issue(achievement=self.long_achievement)

    def _achievement(self, name: str) -> str:
        response = self.http.post(
            "/api/v1/achievements",
            json={
                "name": name,
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
            headers=self.key,
        )
        assert response.status_code == 201, response.text
        uuid: str = response.json()["uuid"]
        return uuid

    def issue(self, achievement: str | None = None, **body: Any) -> dict[str, Any]:
        response = self.http.post(
            "/api/v1/credentials",
            json={
                "achievement_id": achievement or self.achievement,
                "recipient": {"email": "amara@example.com", "name": "Amara Okafor"},
                **body,
            },
            headers=self.key,
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body, headers=self.key)
        assert response.status_code in {200, 201}, response.text
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[Fixture]:
    fixture = Fixture(server)
    yield fixture
    fixture.http.close()


def shoot(page: Page, name: str, *, widths: dict[str, int] = WIDTHS) -> None:
    """Screenshots at each width, after asserting nothing spills sideways on a phone."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, width in widths.items():
        target = ARTIFACTS / f"{name}-{size}-{width}.png"
        target.unlink(missing_ok=True)
        page.screenshot(target, width)
        assert target.stat().st_size > 1000
        overflow = page.eval("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
    page.size(390, 800)


def text(page: Page, selector: str) -> str:
    value = page.eval(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
        "return e ? e.innerText : null; })()"
    )
    assert value is not None, f"nothing matches {selector}"
    return str(value)


def count(page: Page, selector: str) -> int:
    return int(page.eval(f"document.querySelectorAll({json.dumps(selector)}).length"))


def visible(page: Page, selector: str) -> bool:
    return bool(
        page.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            " const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0"
            " && getComputedStyle(e).visibility !== 'hidden'; })()"
        )
    )


def images_loaded(page: Page) -> None:
    broken = page.eval(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)"
    )
    assert broken == [], f"images that did not load: {broken}"


def day(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%-d %b %Y")


def verify_by_form(page: Page, base: str, pasted: str) -> None:
    page.goto(f"{base}/verify")
    page.submit(
        "document.getElementById('credential').value = " + json.dumps(pasted) + ";"
        " document.querySelector('form[action=\"/verify\"]').submit(); true"
    )


def test_valid(page: Page, world: Fixture) -> None:
    page.size(390, 800)
    page.goto(world.valid["url"])
    assert page.eval("document.querySelector('.banner').dataset.status") == "valid"
    assert text(page, ".banner-title") == "Verified"
    line = text(page, ".verdict-line")
    assert re.fullmatch(
        r"Issued by Northwind Data School · northwind\.example · valid until 31 Dec 2028 · "
        r"checked just now at \d\d:\d\d UTC",
        line,
    ), line
    who = text(page, ".answer:nth-child(2) dd")
    assert "Northwind Data School" in who
    assert "Registered with" in who
    assert "Yes" in text(page, ".answer:nth-child(1) dd")
    assert "until 31 Dec 2028" in text(page, ".answer:nth-child(3) dd")
    assert page.eval("document.querySelector('a.issuer-name').getAttribute('href')").startswith(
        world.base + "/issuers/"
    )
    # The baked badge image, the achievement linking to its page, occupations apart from tags.
    assert page.eval("document.querySelector('img.badge-image').src").endswith("/badge.svg")
    assert "/achievements/" in page.eval("document.querySelector('.achievement-name a').href")
    assert "Data Scientists" in text(page, ".aligned")
    assert "O*NET-SOC 15-2051.00" in text(page, ".aligned")
    assert "Data Scientists" not in text(page, ".chips")
    # Technical checks are folded; sharing is a link, Print and the PDF; no owner tools.
    assert page.eval("document.querySelector('details.checks').open") is False
    assert visible(page, "#print-button")
    assert visible(page, "a[href$='/certificate.pdf']")
    assert count(page, "a[href*='linkedin.com']") == 0
    assert count(page, "textarea") == 0
    images_loaded(page)
    shoot(page, "valid")
    # Dark mode follows the system setting.
    page.send(
        "Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}]
    )
    background = page.eval("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(13, 17, 23)", background
    shoot(page, "valid-dark")
    page.send("Emulation.setEmulatedMedia", features=[])
    # Opened, the technical list wraps within the phone's width.
    page.eval("document.querySelector('details.checks').open = true")
    shoot(page, "valid-details-open", widths={"phone": 390})
    assert page.console_errors == []


def test_revoked(page: Page, world: Fixture) -> None:
    page.goto(world.revoked["url"])
    assert page.eval("document.querySelector('.banner').dataset.status") == "revoked"
    banner = text(page, ".banner-text")
    today = datetime.now(UTC).strftime("%-d %b %Y")
    assert f"revoked this credential on {today}" in banner
    assert REASON in banner
    assert REASON in text(page, ".answer:nth-child(3) dd")
    assert count(page, ".share-public") == 0
    assert count(page, "a[href$='/certificate.pdf']") == 0
    assert count(page, "#print-button") == 0
    shoot(page, "revoked")
    assert page.console_errors == []


def test_suspended(page: Page, world: Fixture) -> None:
    page.goto(world.suspended["url"])
    assert page.eval("document.querySelector('.banner').dataset.status") == "suspended"
    banner = text(page, ".banner-text")
    today = datetime.now(UTC).strftime("%-d %b %Y")
    assert f"suspended this credential on {today}" in banner
    assert "Under review by the exam board." in banner
    assert count(page, ".share-public") == 0
    shoot(page, "suspended")
    assert page.console_errors == []


def test_expired(page: Page, world: Fixture) -> None:
    page.goto(world.expired["url"])
    assert page.eval("document.querySelector('.banner').dataset.status") == "expired"
    until = world.expired["credential"]["validUntil"]
    assert f"expired on {day(until)}" in text(page, ".banner-text")
    assert count(page, ".share-public") == 0
    shoot(page, "expired")
    assert page.console_errors == []


def test_issuer_unconfirmed(page: Page, world: Fixture) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    token = sign(harvard(did_key(public)), key, "EdDSA", kid=did_key_url(public))
    verify_by_form(page, world.base, token)
    assert page.eval("document.querySelector('.banner').dataset.status") == "issuer_unconfirmed"
    assert text(page, ".banner-title") == "Issuer not confirmed"
    who = text(page, ".answer:nth-child(2) dd")
    assert "Harvard University" in who
    assert "self-declared" in who
    assert count(page, "a[href*='/issuers/']") == 0
    line = text(page, ".verdict-line")
    assert "Harvard University (not confirmed)" in line
    assert "Issued by" not in line
    assert "harvard.edu" not in line, "the website it names proves nothing"
    assert visible(page, "a[href='/verify'].button")
    shoot(page, "issuer-unconfirmed")
    assert page.console_errors == []


def test_tampered(page: Page, world: Fixture) -> None:
    # The signed claims with a grander name, under the original signature.
    _header, payload, _sig = split(world.valid["jwt"])
    claims = json.loads(
        json.dumps(payload).replace("SQL for Analysts", "Chief Data Scientist Diploma")
    )
    head, _body, signature = world.valid["jwt"].split(".")
    tampered = f"{head}.{segment(claims)}.{signature}"
    verify_by_form(page, world.base, tampered)
    assert page.eval("document.querySelector('.banner').dataset.status") == "invalid"
    assert text(page, ".banner-title") == "Not valid"
    assert "No proof" in text(page, ".answer:nth-child(1) dd")
    # The claimed content is marked, at reduced weight, and lends no trust.
    assert "Unverified claims" in text(page, ".unverified-label")
    assert "Chief Data Scientist Diploma" in text(page, ".unverified .achievement-name")
    weight = page.eval("getComputedStyle(document.querySelector('.achievement-name')).fontWeight")
    assert int(weight) <= 400
    assert count(page, ".credential a") == 0, "nothing in unverified claims links anywhere"
    assert count(page, "a[href*='/issuers/']") == 0
    assert count(page, ".share-public, img[src*='qr']") == 0
    assert "Issued by" not in text(page, ".verdict-line")
    assert visible(page, "a[href='/verify'].button")
    shoot(page, "tampered")
    assert page.console_errors == []


def test_unknown_id_is_an_html_404(page: Page, world: Fixture) -> None:
    page.goto(f"{world.base}/credentials/00000000-0000-4000-8000-000000000000")
    assert text(page, "h1") == "Nothing at this address"
    assert "do not rely on it" in text(page, "main")
    assert visible(page, "main a[href='/verify']")
    assert visible(page, "main a[href='/']")
    shoot(page, "unknown-id")
    # The browser reports the 404 of the document itself; nothing else may fail.
    assert all("404" in e for e in page.console_errors), page.console_errors


def test_verify_garbage(page: Page, world: Fixture) -> None:
    verify_by_form(page, world.base, "hello, this is not a credential")
    alert = text(page, ".notice.error[role=alert]")
    assert "That is not a credential" in alert
    assert count(page, ".banner") == 0
    assert page.eval("document.getElementById('credential').value").startswith("hello")
    shoot(page, "verify-garbage")
    assert all("400" in e for e in page.console_errors), page.console_errors


def test_portfolio(page: Page, world: Fixture) -> None:
    token = world.valid["manage_url"].rsplit("/", 1)[1]
    joined = world.http.post(
        f"/api/v1/manage/{token}/portfolio",
        json={"handle": "amara-okafor", "display_name": "Amara Okafor"},
    )
    assert joined.status_code in {200, 201}, joined.text
    key = joined.json()["portfolio_key"]
    for other in (world.suspended, world.expired, world.long):
        token = other["manage_url"].rsplit("/", 1)[1]
        added = world.http.post(
            f"/api/v1/manage/{token}/portfolio",
            json={"handle": "amara-okafor", "portfolio_key": key},
        )
        assert added.status_code in {200, 201}, added.text
    page.goto(f"{world.base}/p/amara-okafor")
    assert text(page, "h1") == "Amara Okafor"
    statuses = page.eval(
        "Array.from(document.querySelectorAll('.portfolio-item .pill')).map(e => e.innerText.trim())"
    )
    assert len(statuses) == 4
    assert [s.endswith("Verified") for s in statuses] == [True, True, False, False], statuses
    assert count(page, "img.portfolio-thumb") == 4
    page.eval("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for("Array.from(document.images).every(i => i.complete)")
    images_loaded(page)
    shoot(page, "portfolio")
    assert page.console_errors == []


def test_manage_page(page: Page, world: Fixture) -> None:
    page.goto(world.suspended["manage_url"])
    assert count(page, ".share") == 0
    assert "Sharing is paused" in text(page, "main")
    page.goto(world.long["manage_url"])
    assert "private page" in text(page, ".manage-private").lower()
    assert visible(page, "a.button.linkedin")
    assert count(page, "textarea[readonly]") == 2  # the two embed snippets
    assert visible(page, "#headline")  # on a portfolio: headline, bio, feature, move
    for link in ("badge.png", "badge.svg", "qr.svg", "qr.png", "certificate.pdf"):
        assert count(page, f".download-list a[href$='/{link}']") == 1, link
    body_font = page.eval("getComputedStyle(document.body).fontFamily")
    assert page.eval("getComputedStyle(document.querySelector('main button')).fontFamily") == (
        body_font
    )
    shoot(page, "manage")
    assert page.console_errors == []
    # The handle pattern compiles under the v flag, and the browser really checks it.
    page.goto(world.revoked["manage_url"])  # revoked: no forms
    assert count(page, "#new-handle") == 0
    fresh = world.issue()
    page.goto(fresh["manage_url"])
    assert page.eval(
        "(() => { new RegExp(document.getElementById('new-handle').pattern, 'v'); return true; })()"
    )
    checks = page.eval(
        "(() => { const i = document.getElementById('new-handle'); const out = {};"
        " for (const v of ['amara-okafor', 'Amara', 'a_b', 'ok-1']) { i.value = v;"
        " out[v] = i.validity.patternMismatch; } return out; })()"
    )
    assert checks == {"amara-okafor": False, "Amara": True, "a_b": True, "ok-1": False}
    assert page.console_errors == []


def test_embed_card(page: Page, world: Fixture) -> None:
    """The card in its 480x210 iframe and at 320 px: the whole title and the link are visible."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (320, 480):
        page.size(width, 210)
        page.goto(f"{world.long['url']}/embed")
        target = ARTIFACTS / f"embed-{width}x210.png"
        target.write_bytes(
            base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
        )
        fits = page.eval(
            "(() => { const a = document.querySelector('.embed-link a').getBoundingClientRect();"
            " const t = document.querySelector('.embed-title');"
            " return {linkBottom: a.bottom, linkRight: a.right,"
            " height: document.documentElement.scrollHeight,"
            " titleClipped: t.scrollHeight > t.clientHeight + 1"
            " || t.scrollWidth > t.clientWidth + 1}; })()"
        )
        assert fits["linkBottom"] <= 210, fits
        assert fits["linkRight"] <= width, fits
        assert fits["height"] <= 210, fits
        assert fits["titleClipped"] is False, fits
        assert "Advanced Statistical Modelling" in text(page, ".embed-title")
        assert "Public Health Data Analysts" in text(page, ".embed-title")
    assert page.console_errors == []


def test_docs_render_their_operations(page: Page, world: Fixture) -> None:
    page.size(1280, 900)
    page.goto(f"{world.base}/docs")
    n = page.wait_for("document.querySelectorAll('.opblock').length")
    assert n >= 20
    assert "/api/v1/verify" in text(page, "#swagger-ui")
    shoot(page, "docs")
    assert page.console_errors == []
    page.goto(f"{world.base}/redoc")
    page.wait_for("document.querySelectorAll('[id^=\"operation/\"]').length > 20")
    assert "Something went wrong" not in page.eval("document.body.innerText")
    assert "/api/v1/verify" in page.eval("document.body.innerText")
    shoot(page, "redoc", widths={"desktop": 1280})
    # ReDoc's bundle hard-codes its "API docs by Redocly" logo on their CDN: the one request
    # that leaves (and fails offline); nothing of the docs depends on it.
    assert [e for e in page.console_errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in e] == []


def test_print_fits_one_page_and_the_pdf_certificate(
    page: Page, world: Fixture, tmp_path: Path
) -> None:
    page.goto(world.valid["url"])
    for name, (w, h) in {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}.items():
        pdf = page.pdf(w, h)
        (ARTIFACTS / f"print-{name}.pdf").write_bytes(pdf)
        reader = PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) == 1, f"{name}: {len(reader.pages)} pages"
        printed = unicodedata.normalize("NFKC", reader.pages[0].extract_text())
        assert "SQL for Analysts" in printed
        assert re.search(r"Verified at .* by 127\.0\.0\.1", printed), printed
        assert "Share or print" not in printed
        assert "Technical details" not in printed
    # The same with Chromium's own command line, as someone would print it.
    target = ARTIFACTS / "print-cli.pdf"
    target.unlink(missing_ok=True)
    done = subprocess.run(
        [
            chromium_path() or "chromium",
            *CLI_FLAGS,
            f"--user-data-dir={tmp_path / 'print-profile'}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            world.valid["url"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert target.exists(), done.stderr[-2000:]
    assert len(PdfReader(target).pages) == 1
    pdf = world.http.get(f"/credentials/{world.valid['id']}/certificate.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    (ARTIFACTS / "certificate.pdf").write_bytes(pdf.content)
    reader = PdfReader(io.BytesIO(pdf.content))
    assert len(reader.pages) == 1
    assert "SQL for Analysts" in reader.pages[0].extract_text()
    # Rasterised by PDFium (Chromium's own PDF engine), the QR code reads back as the URL.
    document = pdfium.PdfDocument(pdf.content)
    bitmap = document[0].render(scale=2).to_pil()
    bitmap.save(ARTIFACTS / "certificate.png")
    decoded = zxingcpp.read_barcodes(bitmap)
    assert [d.text for d in decoded] == [world.valid["url"]]
    for refused in (world.revoked, world.suspended, world.expired):
        response = world.http.get(f"/credentials/{refused['id']}/certificate.pdf")
        assert response.status_code == 409

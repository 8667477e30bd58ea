"""Lighthouse (npm `lighthouse`, mobile, simulated throttling) with the system Chromium against a
real `microcred serve` on loopback: the credential page, /verify and a portfolio score 100 for
Accessibility, Best Practices and SEO and at least 95 for Performance, with no console errors.

Reports go to `test-artifacts/lighthouse/`. Performance on a shared, loaded machine varies from
run to run, so it is the best of up to three runs (as Lighthouse CI takes several); the other
categories must be perfect on every run.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chrome import chromium_path
from nodejs import ensure_package
from test_browser_pages import Fixture
from test_interop_server import Server, running_server

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync "
    "--disable-quic"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with running_server(tmp_path_factory.mktemp("lighthouse")) as srv:
        world = Fixture(srv)
        token = world.valid["manage_url"].rsplit("/", 1)[1]
        joined = world.http.post(
            f"/api/v1/manage/{token}/portfolio",
            json={"handle": "amara-okafor", "display_name": "Amara Okafor"},
        )
        assert joined.status_code in {200, 201}, joined.text
        world.http.close()
        yield (
            srv,
            {
                "credential": world.valid["url"],
                "verify": f"{srv.base_url}/verify",
                "portfolio": f"{srv.base_url}/p/amara-okafor",
            },
        )


def lighthouse(url: str, out: Path) -> dict[str, Any]:
    js = ensure_package("lighthouse")
    done = subprocess.run(
        [
            str(js / "node_modules" / ".bin" / "lighthouse"),
            url,
            "--quiet",
            "--output=json",
            f"--output-path={out}",
            f"--only-categories={','.join(CATEGORIES)}",
            f"--chrome-flags={CHROME_FLAGS}",
        ],
        env={**os.environ, "CHROME_PATH": chromium_path() or ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.parametrize("name", ["credential", "verify", "portfolio"])
def test_lighthouse_scores(site: tuple[Server, dict[str, str]], name: str) -> None:
    _server, urls = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    best = 0.0
    for attempt in range(3):
        report = lighthouse(urls[name], ARTIFACTS / f"{name}-{attempt}.json")
        scores = {c: report["categories"][c]["score"] for c in CATEGORIES}
        failing = {
            ref["id"]: report["audits"][ref["id"]].get("displayValue")
            or report["audits"][ref["id"]]["title"]
            for c in CATEGORIES[1:]
            for ref in report["categories"][c]["auditRefs"]
            if ref.get("weight") and (report["audits"][ref["id"]]["score"] or 0) < 1
        }
        for c in CATEGORIES[1:]:
            assert scores[c] == 1, (name, c, scores, failing)
        console = report["audits"]["errors-in-console"]
        assert console["score"] == 1, console.get("details")
        best = max(best, scores["performance"])
        print(f"{name} run {attempt + 1}: {scores}")
        if best >= 0.95:
            break
    assert best >= 0.95, f"{name}: performance {best}"

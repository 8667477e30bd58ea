"""QR codes of credentials: what a phone camera reads leads to a page that says "Verified".

The images are decoded by an independent reader (zxing-cpp); the SVG is rasterised by resvg
(resvg-py, self-contained wheels) so that what is checked is what a browser would draw.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import resvg_py
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from conftest import World

SVG_NS = "{http://www.w3.org/2000/svg}"


def _decode(image: Image.Image) -> list[str]:
    results = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return [r.text for r in results]


def _path(url: str) -> str:
    return urlsplit(url).path


def test_png_decodes_to_the_credential_url(world: World, client: TestClient) -> None:
    _issuer, credential = world.issued()
    response = client.get(_path(credential["qr_png_url"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    assert _decode(image) == [credential["url"]]


def test_svg_rasterises_and_decodes_to_the_credential_url(world: World, client: TestClient) -> None:
    _issuer, credential = world.issued()
    response = client.get(_path(credential["qr_svg_url"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own server's output
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("viewBox"), "a viewBox keeps the code scalable"
    # the SVG is sized in mm: resvg-py needs a dpi (its default 0 makes mm zero pixels wide)
    png = resvg_py.svg_to_bytes(svg_string=response.text, dpi=96, width=400, background="white")
    image = Image.open(io.BytesIO(bytes(png)))
    assert image.width == 400
    assert _decode(image) == [credential["url"]]


def test_qr_leads_to_a_verified_page(world: World, client: TestClient) -> None:
    _issuer, credential = world.issued()
    png = client.get(_path(credential["qr_png_url"])).content
    (scanned,) = _decode(Image.open(io.BytesIO(png)))
    assert scanned == credential["url"]
    page = client.get(_path(scanned), headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Verified" in page.text
    assert "SQL for Analysts" in page.text


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_strong_etag_and_not_modified(world: World, client: TestClient, kind: str) -> None:
    _issuer, credential = world.issued()
    path = _path(credential[f"qr_{kind}_url"])
    first = client.get(path)
    second = client.get(path)
    assert first.status_code == second.status_code == 200
    etag = first.headers["etag"]
    assert etag == second.headers["etag"]
    assert etag.startswith('"'), f"not a strong ETag: {etag}"
    assert not etag.startswith("W/")
    assert first.content == second.content

    cached = client.get(path, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag

    listed = client.get(path, headers={"If-None-Match": f'"other", {etag}'})
    assert listed.status_code == 304
    stale = client.get(path, headers={"If-None-Match": '"not-this-one"'})
    assert stale.status_code == 200
    assert stale.content == first.content


def test_unknown_credential_has_no_qr(client: TestClient) -> None:
    for path in (
        "/credentials/00000000-0000-4000-8000-000000000000/qr.png",
        "/credentials/not-a-uuid/qr.svg",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")

"""Baking and unbaking Open Badges 3.0 images: pure functions over bytes, no I/O.

A baked PNG carries the credential in an `iTXt` chunk with keyword `openbadgecredential`; a baked
SVG carries it in an `<openbadges:credential>` element, as its `verify` attribute (a compact JWT)
or as its text (credential JSON). See Open Badges 3.0 §5.3 "Baking".

Uploads are hostile input: the PNG reader checks the signature, every chunk's length and CRC, and
caps decompressed text (zip bombs); the SVG reader uses defusedxml and refuses entity declarations
(billion laughs) and external references.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.core import text as client_text
from app.core.errors import AppError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OB_NAMESPACE = "https://purl.imsglobal.org/ob/v3p0"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
KEYWORD = "openbadgecredential"
# Open Badges 2.0 and early 3.0 drafts baked under `openbadges`; still accepted when unbaking.
KEYWORDS = frozenset({KEYWORD, "openbadges"})
# A credential is a few KiB; anything that inflates past this is a zip bomb, not a credential.
MAX_TEXT_BYTES = 1024 * 1024
_MAX_CHUNK_LENGTH = 2**31 - 1  # PNG §5.3: a chunk length is at most 2^31 - 1


class BadImage(AppError):
    """An uploaded image that is not a readable baked badge."""

    status_code = 400
    title = "Unreadable badge image"


class NotABadgeImage(BadImage):
    status_code = 415
    title = "Not a PNG or SVG image"


class OversizedCredential(BadImage):
    status_code = 413
    title = "Embedded credential too large"


# --- baking -------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 over type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def itxt_chunk(keyword: str, text: str) -> bytes:
    """An uncompressed `iTXt` chunk: keyword NUL, flag 0, method 0, empty language and translation."""
    body = keyword.encode("latin-1") + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + text.encode()
    return png_chunk(b"iTXt", body)


def bake_png(png: bytes, jwt: str) -> bytes:
    """The PNG with exactly one `openbadgecredential` iTXt chunk holding `jwt`, just before IEND.

    Any credential chunk already present is dropped, so that a re-baked image never carries two.
    """
    out = [PNG_SIGNATURE]
    for kind, data in iter_png_chunks(png):
        if kind == b"IEND":
            out.append(itxt_chunk(KEYWORD, jwt))
        elif kind in {b"iTXt", b"tEXt", b"zTXt"} and _keyword(data) in KEYWORDS:
            continue
        out.append(png_chunk(kind, data))
    return b"".join(out)


# --- unbaking -----------------------------------------------------------------------------------


def detect(data: bytes) -> str:
    """`png` or `svg` from the content's first bytes (never from a file name), else 415."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg", b"<!--")):
        return "svg"
    raise NotABadgeImage("The upload is neither a PNG nor an SVG image.")


def unbake(data: bytes) -> str | dict[str, Any]:
    """The credential baked into a PNG or SVG: a compact JWT, or credential JSON."""
    if not data:
        raise BadImage("The uploaded file is empty.")
    if detect(data) == "png":
        return unbake_png(data)
    return unbake_svg(data)


def iter_png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of every chunk up to IEND, checking structure and CRCs as it goes."""
    if not data.startswith(PNG_SIGNATURE):
        raise NotABadgeImage("The upload is not a PNG image (bad signature).")
    offset = len(PNG_SIGNATURE)
    first = True
    while True:
        if len(data) < offset + 8:
            raise BadImage("The PNG image is truncated: it ends before its IEND chunk.")
        length, kind = struct.unpack_from(">I4s", data, offset)
        if length > _MAX_CHUNK_LENGTH or not kind.isalpha() or not kind.isascii():
            raise BadImage(f"The PNG image has a malformed chunk header at byte {offset}.")
        if first and kind != b"IHDR":
            raise BadImage("The PNG image does not start with an IHDR chunk.")
        first = False
        end = offset + 8 + length
        if len(data) < end + 4:
            raise BadImage(f"The PNG image is truncated inside its {kind.decode('ascii')} chunk.")
        body = data[offset + 8 : end]
        (crc,) = struct.unpack_from(">I", data, end)
        if crc != zlib.crc32(kind + body):
            raise BadImage(
                f"The PNG image is corrupted: CRC mismatch in its {kind.decode('ascii')} chunk at byte {offset}."
            )
        yield kind, body
        if kind == b"IEND":
            return
        offset = end + 4


def unbake_png(data: bytes) -> str | dict[str, Any]:
    """The credential in a PNG's `openbadgecredential` (or legacy `openbadges`) text chunk."""
    found: list[str] = []
    for kind, body in iter_png_chunks(data):
        if kind in {b"iTXt", b"zTXt", b"tEXt"} and _keyword(body) in KEYWORDS:
            found.append(_chunk_text(kind, body))
    if not found:
        raise BadImage(
            "The PNG image carries no credential: it has no 'openbadgecredential' iTXt chunk."
        )
    if len(found) > 1:
        raise BadImage("The PNG image carries more than one credential chunk; a badge has one.")
    return _credential(found[0])


def _keyword(body: bytes) -> str:
    return body.split(b"\x00", 1)[0].decode("latin-1")


def _chunk_text(kind: bytes, body: bytes) -> str:
    name = kind.decode("ascii")
    try:
        _keyword_bytes, rest = body.split(b"\x00", 1)
        if kind == b"tEXt":
            return _decode(rest, "latin-1", name)
        if kind == b"zTXt":
            # keyword NUL, compression method (0 = zlib), compressed Latin-1 text
            if rest[:1] != b"\x00":
                raise BadImage(f"The {name} chunk uses an unknown compression method.")
            return _decode(_inflate(rest[1:], name), "latin-1", name)
        # iTXt: keyword NUL, compression flag, compression method, language NUL, translated NUL, text
        flag, method = rest[0], rest[1]
        _language, _translated, text = rest[2:].split(b"\x00", 2)
    except (ValueError, IndexError):
        raise BadImage(f"The {name} chunk is malformed.") from None
    if flag not in (0, 1) or (flag == 1 and method != 0):
        raise BadImage(f"The {name} chunk has an unknown compression flag or method.")
    if flag == 1:
        text = _inflate(text, name)
    return _decode(text, "utf-8", name)


def _inflate(compressed: bytes, name: str) -> bytes:
    """zlib-decompress at most MAX_TEXT_BYTES; more than that is refused, never allocated."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, MAX_TEXT_BYTES + 1)
    except zlib.error:
        raise BadImage(f"The {name} chunk's compressed text is corrupt.") from None
    if len(text) > MAX_TEXT_BYTES:
        raise OversizedCredential(
            f"The {name} chunk inflates to more than {MAX_TEXT_BYTES} bytes; refused."
        )
    if not inflater.eof:
        raise BadImage(f"The {name} chunk's compressed text is truncated.")
    return text


def _decode(raw: bytes, encoding: str, name: str) -> str:
    if len(raw) > MAX_TEXT_BYTES:
        raise OversizedCredential(f"The {name} chunk's text exceeds {MAX_TEXT_BYTES} bytes.")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise BadImage(f"The {name} chunk's text is not valid {encoding}.") from None


def unbake_svg(data: bytes) -> str | dict[str, Any]:
    """The credential in an SVG's `<openbadges:credential>`: its `verify` attribute or JSON text.

    A DOCTYPE naming the SVG 1.1 DTD (as 1EdTech's own baked examples carry) is allowed; it is never
    fetched. Entity declarations and external references are refused.
    """
    root = _parse_svg(data)
    if root.tag != f"{{{SVG_NAMESPACE}}}svg":
        raise NotABadgeImage("The XML document is not an SVG image (its root is not <svg>).")
    elements = list(root.iter(f"{{{OB_NAMESPACE}}}credential"))
    if not elements:
        raise BadImage(
            f"The SVG image carries no credential: no <openbadges:credential> element in the {OB_NAMESPACE} namespace."
        )
    if len(elements) > 1:
        raise BadImage("The SVG image carries more than one <openbadges:credential> element.")
    element = elements[0]
    jwt = element.get("verify")
    if jwt is not None and jwt.strip():
        return _credential(jwt)
    return _credential("".join(element.itertext()))


def _parse_svg(data: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise BadImage(
            "The SVG image declares XML entities or external references; they are refused."
        ) from None
    except ParseError as exc:
        raise BadImage(f"The SVG image is not well-formed XML ({exc}).") from None
    return root


def _credential(text: str) -> str | dict[str, Any]:
    """A compact JWT as is, or credential JSON parsed to an object."""
    text = text.strip()
    if not text:
        raise BadImage("The badge's credential element is empty.")
    if not text.startswith("{"):
        return text
    try:
        parsed = client_text.loads(text)
    except ValueError:
        raise BadImage("The badge's embedded credential JSON cannot be parsed.") from None
    if not isinstance(parsed, dict):
        raise BadImage("The badge's embedded credential JSON is not an object.")
    return parsed

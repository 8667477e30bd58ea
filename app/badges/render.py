"""Badge images: a generated circular emblem (or the achievement's own image), baked.

Pure rendering functions, CPU-bound: call them off the event loop. The PNG uses Pillow's bundled
scalable font (`ImageFont.load_default(size=…)`), so nothing depends on the host's fonts; the SVG
wraps its text with the same font's metrics. Neither ever fetches a remote image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from functools import cache
from xml.sax.saxutils import escape, quoteattr

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from app.badges.bake import OB_NAMESPACE, bake_png

SIZE = 600
_SCALE = 2  # draw at twice the size and downsample: smooth circles and text
BRAND = "#3b3fb6"
BRAND_DARK = "#262a8a"
INK = "#1b1f24"
MUTED = "#57606a"
ACCENT = "#c9a227"
FONT_FAMILY = "Aileron, 'Helvetica Neue', Helvetica, Arial, sans-serif"

# Layout on the 600 x 600 canvas: the white disc spans y 52..548.
_ISSUER_TOP, _ISSUER_SIZE, _ISSUER_WIDTH, _ISSUER_LINES = 112, 20, 300, 2
_NAME_CENTRE, _NAME_WIDTH, _NAME_LINES = 252, 400, 3
_NAME_SIZES = (40, 36, 32, 28, 25)
_DATE_SIZE = 19
_QR_TOP, _QR_SIZE = 372, 140


@dataclass(frozen=True)
class BadgeInfo:
    """What a badge shows, all taken from the signed credential."""

    achievement_name: str
    issuer_name: str
    issued_on: date
    url: str  # the credential's URL: the QR code's content
    jwt: str  # baked into the image
    # Baked instead of the JWT when set: the JSON-LD credential with its embedded proof.
    credential_json: str | None = None
    image_url: str | None = None  # the achievement's own image (http(s) or data:image)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _width(text: str, size: int) -> float:
    return _font(size).getlength(text)


def wrap(text: str, *, size: int, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap by the font's metrics; the last line is ellipsised when text is left over."""
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if _width(candidate, size) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    lines = [_fit(line, size, width) for line in lines]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + " …", size, width, force_ellipsis=True)
    return lines or [""]


def _fit(line: str, size: int, width: float, *, force_ellipsis: bool = False) -> str:
    if _width(line, size) <= width and not force_ellipsis:
        return line
    base = line.removesuffix(" …")
    while base and _width(base.rstrip() + "…", size) > width:
        base = base[:-1]
    return base.rstrip() + "…"


def _name_layout(name: str) -> tuple[int, list[str]]:
    """The largest size at which the achievement name fits in three lines."""
    for size in _NAME_SIZES:
        lines = wrap(name, size=size, width=_NAME_WIDTH, max_lines=99)
        if len(lines) <= _NAME_LINES:
            return size, lines
    size = _NAME_SIZES[-1]
    return size, wrap(name, size=size, width=_NAME_WIDTH, max_lines=_NAME_LINES)


def _date_text(issued_on: date) -> str:
    return f"Issued {issued_on.day} {issued_on:%B %Y}"


def _qr_matrix(data: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    matrix: list[list[bool]] = qr.get_matrix()
    return matrix


# --- PNG ----------------------------------------------------------------------------------------


def badge_png(info: BadgeInfo) -> bytes:
    """The emblem as a 600 x 600 PNG, baked with the credential's JWT.

    An achievement image is never fetched here (no remote requests at render time), so the PNG is
    always the generated emblem.
    """
    s = _SCALE
    canvas = Image.new("RGBA", (SIZE * s, SIZE * s), (255, 255, 255, 0))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((4 * s, 4 * s, 596 * s, 596 * s), fill=BRAND_DARK)
    draw.ellipse((16 * s, 16 * s, 584 * s, 584 * s), fill=BRAND)
    draw.ellipse((44 * s, 44 * s, 556 * s, 556 * s), fill=ACCENT)
    draw.ellipse((52 * s, 52 * s, 548 * s, 548 * s), fill="#ffffff")

    def centred(text: str, y: float, size: int, fill: str, *, bold: bool = False) -> None:
        draw.text(
            (SIZE * s / 2, y * s),
            text,
            font=_font(size * s),
            fill=fill,
            anchor="mm",
            stroke_width=s if bold else 0,
            stroke_fill=fill,
        )

    issuer_lines = wrap(
        info.issuer_name.upper(), size=_ISSUER_SIZE, width=_ISSUER_WIDTH, max_lines=_ISSUER_LINES
    )
    for i, line in enumerate(issuer_lines):
        centred(line, _ISSUER_TOP + i * 26, _ISSUER_SIZE, MUTED)
    rule_y = _ISSUER_TOP + len(issuer_lines) * 26 + 4
    draw.line((250 * s, rule_y * s, 350 * s, rule_y * s), fill=ACCENT, width=3 * s)

    size, lines = _name_layout(info.achievement_name)
    step = size * 1.2
    top = _NAME_CENTRE - step * (len(lines) - 1) / 2
    for i, line in enumerate(lines):
        centred(line, top + i * step, size, INK, bold=True)
    centred(_date_text(info.issued_on), 340, _DATE_SIZE, MUTED)

    image = canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    image.paste(_qr_image(info.url), ((SIZE - _QR_SIZE) // 2, _QR_TOP))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return bake_png(buffer.getvalue(), info.credential_json or info.jwt)


def _qr_image(data: str) -> Image.Image:
    """The QR code with whole-pixel modules (crisp, decodable), centred on a white square."""
    matrix = _qr_matrix(data)
    modules = len(matrix)
    box = max(1, _QR_SIZE // modules)
    qr = Image.new("RGB", (modules * box, modules * box), "white")
    pixels = ImageDraw.Draw(qr)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                pixels.rectangle((x * box, y * box, x * box + box - 1, y * box + box - 1), "black")
    square = Image.new("RGB", (_QR_SIZE, _QR_SIZE), "white")
    offset = (_QR_SIZE - modules * box) // 2
    square.paste(qr, (offset, offset))
    return square


# --- SVG ----------------------------------------------------------------------------------------


def _credential_element(info: BadgeInfo) -> str:
    """OB 3.0 §5.3.2: the JWT in the `verify` attribute, or the JSON credential as CDATA."""
    if info.credential_json is not None:
        # "]]>" cannot occur in JSON text except inside a string; split it there.
        body = info.credential_json.replace("]]>", "]]]]><![CDATA[>")
        return f"<openbadges:credential><![CDATA[{body}]]></openbadges:credential>"
    return f"<openbadges:credential verify={quoteattr(info.jwt)}></openbadges:credential>"


def badge_svg(info: BadgeInfo) -> bytes:
    """The badge as SVG, baked: `<openbadges:credential verify="JWT">` is the root's first child.

    With an achievement image, the SVG references it (`<image href>`); otherwise it draws the emblem.
    Presentation attributes only: the service's CSP forbids inline styles.
    """
    title = f"{info.achievement_name}, issued by {info.issuer_name}"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:openbadges="{OB_NAMESPACE}" '
        f'width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}" role="img" aria-labelledby="badge-title">',
        _credential_element(info),
        f'<title id="badge-title">{escape(title)}</title>',
    ]
    if info.image_url:
        parts.append(
            f'<image href={quoteattr(info.image_url)} x="0" y="0" width="{SIZE}" height="{SIZE}" '
            'preserveAspectRatio="xMidYMid meet"/>'
        )
    else:
        parts.extend(_emblem_svg(info))
    parts.append("</svg>\n")
    return "".join(parts).encode()


def _text(text: str, y: float, size: int, fill: str, *, bold: bool = False) -> str:
    weight = ' font-weight="700"' if bold else ""
    return (
        f'<text x="{SIZE / 2:g}" y="{y:.1f}" font-size="{size}" fill="{fill}"{weight} '
        f'text-anchor="middle" dominant-baseline="central">{escape(text)}</text>'
    )


def _emblem_svg(info: BadgeInfo) -> list[str]:
    out = [
        f'<circle cx="300" cy="300" r="296" fill="{BRAND_DARK}"/>',
        f'<circle cx="300" cy="300" r="284" fill="{BRAND}"/>',
        f'<circle cx="300" cy="300" r="256" fill="{ACCENT}"/>',
        '<circle cx="300" cy="300" r="248" fill="#ffffff"/>',
        f'<g font-family="{FONT_FAMILY}">',
    ]
    issuer_lines = wrap(
        info.issuer_name.upper(), size=_ISSUER_SIZE, width=_ISSUER_WIDTH, max_lines=_ISSUER_LINES
    )
    for i, line in enumerate(issuer_lines):
        out.append(_text(line, _ISSUER_TOP + i * 26, _ISSUER_SIZE, MUTED))
    rule_y = _ISSUER_TOP + len(issuer_lines) * 26 + 4
    out.append(
        f'<line x1="250" y1="{rule_y}" x2="350" y2="{rule_y}" stroke="{ACCENT}" stroke-width="3" stroke-linecap="round"/>'
    )
    size, lines = _name_layout(info.achievement_name)
    step = size * 1.2
    top = _NAME_CENTRE - step * (len(lines) - 1) / 2
    out.extend(_text(line, top + i * step, size, INK, bold=True) for i, line in enumerate(lines))
    out.append(_text(_date_text(info.issued_on), 340, _DATE_SIZE, MUTED))
    out.append("</g>")
    matrix = _qr_matrix(info.url)
    modules = len(matrix)
    left = (SIZE - _QR_SIZE) / 2
    path = "".join(
        f"M{x} {y}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark
    )
    out.append(
        f'<g transform="translate({left:g} {_QR_TOP}) scale({_QR_SIZE / modules:.4f})">'
        f'<rect width="{modules}" height="{modules}" fill="#ffffff"/>'
        f'<path d="{path}" fill="#000000" shape-rendering="crispEdges"/></g>'
    )
    return out

"""The 1200x627 share card (Open Graph / Twitter image): a pure, CPU-bound PNG renderer.

Fonts come from Pillow itself (`ImageFont.load_default(size=…)`, its bundled FreeType font), so
the card looks the same on every host and needs no system fonts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 627

INK = (27, 31, 36)
MUTED = (87, 96, 106)
BRAND = (59, 63, 182)
BRAND_LIGHT = (111, 115, 224)
RING = (200, 202, 245)
BG = (246, 248, 250)
WHITE = (255, 255, 255)
# Status colours: the page's palette (WCAG AA on white).
STATUS_COLOURS = {
    "valid": ((17, 99, 41), (218, 251, 225)),
    "revoked": ((164, 14, 38), (255, 235, 233)),
    "invalid": ((164, 14, 38), (255, 235, 233)),
    "expired": ((125, 78, 0), (255, 248, 197)),
    "suspended": ((125, 78, 0), (255, 248, 197)),
    "not_yet_valid": ((125, 78, 0), (255, 248, 197)),
    "unknown": ((66, 74, 83), (234, 238, 242)),
}

Font = ImageFont.FreeTypeFont


@dataclass(frozen=True)
class CardData:
    achievement: str
    issuer: str
    recipient: str | None
    status: str  # a verification status (valid, revoked, expired, ...)
    status_label: str  # "Verified", "Revoked", ...
    initials: str
    host: str


@cache
def _font(size: int) -> Font:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType: the share card needs it")
    return font


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, max_lines: int
) -> list[str]:
    """Greedy word wrap; the last line is shortened with an ellipsis when the text does not fit."""
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while draw.textlength(current, font=font) > width and len(current) > 1:
            # A single word wider than the line: break it.
            cut = len(current) - 1
            while cut > 1 and draw.textlength(current[:cut], font=font) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and draw.textlength(last + "...", font=font) > width:
            last = last[:-1].rstrip()
        lines = [*lines[: max_lines - 1], last + "..."]
    return lines or [""]


def _fit(
    draw: ImageDraw.ImageDraw, text: str, sizes: tuple[int, ...], width: int, max_lines: int
) -> tuple[Font, list[str]]:
    """The largest size at which the text fits in `max_lines`; else the smallest, truncated."""
    for size in sizes:
        font = _font(size)
        lines = _wrap(draw, text, font, width, max_lines + 1)
        if len(lines) <= max_lines:
            return font, lines
    font = _font(sizes[-1])
    return font, _wrap(draw, text, font, width, max_lines)


def _emblem(image: Image.Image, centre: tuple[int, int], radius: int, initials: str) -> None:
    """A round badge emblem with the achievement's initials, drawn at 2x and scaled down."""
    scale = 2
    size = radius * 2 * scale
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.ellipse((0, 0, size - 1, size - 1), fill=RING)
    ring = 14 * scale
    inner = (ring, ring, size - 1 - ring, size - 1 - ring)
    # A simple two-tone fill stands in for the page's radial gradient.
    d.ellipse(inner, fill=BRAND)
    d.ellipse(
        (
            ring + 20 * scale,
            ring + 16 * scale,
            size - 1 - ring - 46 * scale,
            size - 1 - ring - 56 * scale,
        ),
        fill=BRAND_LIGHT,
    )
    d.ellipse((ring + 34 * scale, ring + 30 * scale, size - 1 - ring, size - 1 - ring), fill=BRAND)
    font = _font(int(radius * 0.62) * scale)
    d.text((size / 2, size / 2), initials[:3], font=font, fill=WHITE, anchor="mm")
    layer = layer.resize((radius * 2, radius * 2), Image.Resampling.LANCZOS)
    image.paste(layer, (centre[0] - radius, centre[1] - radius), layer)


def _check(
    draw: ImageDraw.ImageDraw, x: int, y: int, size: int, colour: tuple[int, int, int]
) -> None:
    """A check mark drawn as strokes (the bundled font has no ✓ glyph)."""
    w = max(3, size // 6)
    draw.line(
        [(x, y + size * 0.55), (x + size * 0.38, y + size * 0.9), (x + size, y + size * 0.1)],
        fill=colour,
        width=w,
        joint="curve",
    )


def render_card(data: CardData) -> bytes:
    """The share card as PNG bytes, exactly WIDTH x HEIGHT."""
    image = Image.new("RGB", (WIDTH, HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    fg, bg = STATUS_COLOURS.get(data.status, STATUS_COLOURS["unknown"])
    # Frame: a brand band on the left and a soft footer strip.
    draw.rectangle((0, 0, 18, HEIGHT), fill=BRAND)
    draw.rectangle((18, HEIGHT - 84, WIDTH, HEIGHT), fill=BG)
    draw.line((18, HEIGHT - 84, WIDTH, HEIGHT - 84), fill=(208, 215, 222), width=2)

    _emblem(image, (210, 272), 140, data.initials or "?")

    left, right = 410, WIDTH - 70
    text_width = right - left
    y = 64
    draw.text((left, y), "OPEN BADGE CREDENTIAL", font=_font(24), fill=MUTED)
    y += 44
    font, lines = _fit(draw, data.achievement, (64, 56, 48, 42), text_width, 3)
    line_height = int(font.size * 1.15)
    for line in lines:
        draw.text((left, y), line, font=font, fill=INK, stroke_width=1, stroke_fill=INK)
        y += line_height
    y += 18
    small = _font(32)
    for label, value in (("Issued by", data.issuer), ("Awarded to", data.recipient)):
        if not value:
            continue
        prefix = f"{label} "
        draw.text((left, y), prefix, font=small, fill=MUTED)
        offset = int(draw.textlength(prefix, font=small))
        value_lines = _wrap(draw, value, small, text_width - offset, 1)
        draw.text(
            (left + offset, y),
            value_lines[0],
            font=small,
            fill=INK,
            stroke_width=1,
            stroke_fill=INK,
        )
        y += 46

    # Status pill, bottom right of the text column.
    pill_font = _font(36)
    label = data.status_label
    label_width = int(draw.textlength(label, font=pill_font))
    icon = 30 if data.status == "valid" else 0
    pad = 26
    pill_w = pad * 2 + label_width + (icon + 16 if icon else 0)
    pill_h = 68
    px, py = left, HEIGHT - 84 - 40 - pill_h
    draw.rounded_rectangle(
        (px, py, px + pill_w, py + pill_h), radius=pill_h // 2, fill=bg, outline=fg, width=3
    )
    tx = px + pad
    if icon:
        _check(draw, tx, py + (pill_h - icon) // 2, icon, fg)
        tx += icon + 16
    draw.text(
        (tx, py + pill_h / 2),
        label,
        font=pill_font,
        fill=fg,
        anchor="lm",
        stroke_width=1,
        stroke_fill=fg,
    )

    # Footer: where to check it.
    footer = _font(26)
    draw.text(
        (60, HEIGHT - 42),
        "microcred",
        font=footer,
        fill=BRAND,
        anchor="lm",
        stroke_width=1,
        stroke_fill=BRAND,
    )
    draw.text(
        (WIDTH - 60, HEIGHT - 42),
        f"Verify at {data.host}",
        font=footer,
        fill=MUTED,
        anchor="rm",
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()

"""The printable certificate of a credential, as a one-page PDF drawn with ReportLab.

ReportLab is pure Python (no system libraries), draws the QR code as vectors itself, and the
PDF it writes is stable enough to test: the QR code decodes to the credential's URL.
"""

from __future__ import annotations

import io
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Frame, Paragraph

from app.verify.page import PageModel

BRAND = colors.HexColor("#3b3fb6")
OK = colors.HexColor("#116329")


def _day(value: datetime | None) -> str:
    return value.strftime("%-d %B %Y") if value else "no expiry"


def certificate_pdf(model: PageModel, *, url: str, service: str) -> bytes:
    """One A4 page: who earned what from whom, the verdict and its time, and a QR code to check
    it again (the stamp says when it was verified; the QR leads to today's verdict)."""
    out = io.BytesIO()
    width, height = A4
    pdf = Canvas(out, pagesize=A4, pageCompression=1)
    title = model.achievement_name or "Credential"
    pdf.setTitle(f"{title} — certificate")
    pdf.setAuthor(model.issuer_name or service)
    pdf.setSubject(f"Verified at {model.checked_at:%Y-%m-%d %H:%M} UTC by {service}: {url}")
    pdf.setCreator("microcred")

    pdf.setStrokeColor(BRAND)
    pdf.setLineWidth(3)
    pdf.rect(15 * mm, 15 * mm, width - 30 * mm, height - 30 * mm)

    styles = {
        "eyebrow": ParagraphStyle(
            "eyebrow", fontName="Helvetica-Bold", fontSize=11, textColor=BRAND, alignment=1
        ),
        "title": ParagraphStyle(
            "title", fontName="Helvetica-Bold", fontSize=28, leading=34, alignment=1
        ),
        "body": ParagraphStyle("body", fontName="Helvetica", fontSize=13, leading=19, alignment=1),
        "name": ParagraphStyle(
            "name", fontName="Helvetica-Bold", fontSize=20, leading=26, alignment=1
        ),
        "small": ParagraphStyle(
            "small",
            fontName="Helvetica",
            fontSize=9,
            leading=12,
            alignment=1,
            textColor=colors.grey,
        ),
    }
    story: list[Flowable] = [
        Paragraph(
            "CERTIFICATE · " + escape(model.achievement_type or "CREDENTIAL").upper(),
            styles["eyebrow"],
        ),
        Paragraph("&nbsp;", styles["body"]),
        Paragraph(escape(title), styles["title"]),
        Paragraph("&nbsp;", styles["body"]),
    ]
    if model.recipient_name:
        story += [
            Paragraph("awarded to", styles["body"]),
            Paragraph(escape(model.recipient_name), styles["name"]),
        ]
    story += [
        Paragraph("&nbsp;", styles["body"]),
        Paragraph(f"issued by <b>{escape(model.issuer_name or 'the issuer')}</b>", styles["body"]),
    ]
    if model.trust_text:
        story.append(Paragraph(escape(model.trust_text), styles["small"]))
    story += [
        Paragraph("&nbsp;", styles["body"]),
        Paragraph(
            f"Valid from {_day(model.valid_from)} · valid until {_day(model.valid_until)}",
            styles["body"],
        ),
    ]
    if model.achievement_description:
        story += [
            Paragraph("&nbsp;", styles["body"]),
            Paragraph(escape(model.achievement_description[:600]), styles["body"]),
        ]
    frame = Frame(25 * mm, 110 * mm, width - 50 * mm, height - 140 * mm, showBoundary=0)
    frame.addFromList(story, pdf)

    size = 55 * mm
    qr = QrCodeWidget(url, barLevel="M")
    x0, y0, x1, y1 = qr.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(qr)
    renderPDF.draw(drawing, pdf, (width - size) / 2, 45 * mm)

    pdf.setFillColor(OK)
    pdf.setFont("Helvetica-Bold", 12)
    pdf.drawCentredString(
        width / 2, 38 * mm, f"Verified at {model.checked_at:%d %b %Y, %H:%M} UTC by {service}"
    )
    pdf.setFillColor(colors.black)
    pdf.setFont("Helvetica", 9)
    pdf.drawCentredString(
        width / 2, 32 * mm, "Scan the code or open the link to see today's verdict:"
    )
    pdf.drawCentredString(width / 2, 27 * mm, url)
    pdf.showPage()
    pdf.save()
    return out.getvalue()

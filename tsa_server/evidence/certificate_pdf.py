"""Drawing the PDF evidence certificate (REC-4, issue 19) with reportlab: pages of
labelled rows, wrapped Latin and Chinese text, the QR code to the item's public
verification page, the TSA and its operator, the earlier certificates of the same digest,
the verify recipe, and the `.tsr` as an associated file. What it states is gathered by
certificate.py (`CertificateData`); certificate_sign.py signs the result.

The file is PDF/A-3b (certificate_pdfa.py): every glyph comes from an embedded subset of
WenQuanYi Micro Hei (fonts-wqy-microhei), so Chinese renders in any viewer without a
language pack; headings are that font drawn filled and stroked (it has no bold face).
The output is deterministic for given data: the PDF's dates are genTime and its /ID is a
digest of the content.
"""

from __future__ import annotations

import io
import re
from datetime import datetime

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas as pdf_canvas

from tsa_server.clock.beijing import require_aware, to_beijing
from tsa_server.evidence.certificate import NOT_GIVEN, CertificateData, recipe
from tsa_server.evidence.certificate_pdfa import (
    MONO,
    SANS,
    TSR_MEDIA_TYPE,
    attach,
    ensure_fonts,
    make_archival,
    xmp_packet,
)

__all__ = ["TSR_MEDIA_TYPE", "render_certificate", "seconds_utc", "seconds_beijing"]

LATIN, LATIN_BOLD = SANS, SANS + ":bold"  # ":bold": the same face, filled and stroked
PAGE_W, PAGE_H = A4
MARGIN = 48
LABEL_W = 124
TEXT_W = PAGE_W - 2 * MARGIN
VALUE_W = TEXT_W - LABEL_W
QR_SIZE = 112
TOP = PAGE_H - MARGIN
BOTTOM = MARGIN + 24  # keep the footer clear
PRODUCER = "tsa-server (reportlab, pyHanko)"


def _face(font: str) -> str:
    return font.removesuffix(":bold")


def text_width(text: str, font: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, _face(font), size))


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of `text` no wider than `width`: at spaces when possible, anywhere (CJK,
    hex digests, long names) otherwise; explicit newlines are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in re.findall(r"\S+\s*|\s+", paragraph) or [""]:
            if text_width(line + word.rstrip(), font, size) <= width:
                line += word
                continue
            if line.strip():
                lines.append(line.rstrip())
                line = ""
            for ch in word:
                if line and text_width(line + ch, font, size) > width:
                    lines.append(line.rstrip())
                    line = "" if ch.isspace() else ch
                else:
                    line += ch
        lines.append(line.rstrip())
    return lines


def draw_text(c: pdf_canvas.Canvas, x: float, y: float, text: str, font: str, size: float) -> None:
    """One line in the embedded font; a bold `font` is drawn filled and stroked."""
    t = c.beginText(x, y)
    t.setFont(_face(font), size)
    bold = font.endswith(":bold")
    if bold:
        c.setLineWidth(size * 0.035)
    t.setTextRenderMode(2 if bold else 0)  # Tr outlives the text object: always set it
    t.textOut(text)
    c.drawText(t)


def seconds_utc(t: datetime) -> str:
    """genTime in UTC to the second, as people read it: `2026-12-07 10:00:00 UTC`."""
    return f"{require_aware(t):%Y-%m-%d %H:%M:%S} UTC"


def seconds_beijing(t: datetime) -> str:
    b = to_beijing(t)
    return (
        f"{b:%Y-%m-%d %H:%M:%S} (UTC+08:00)  {b.year}年{b.month}月{b.day}日 {b:%H:%M:%S} 北京时间"
    )


class _Page:
    """A cursor over pages: draws rows top-down and starts a new page when full."""

    def __init__(self, canvas: pdf_canvas.Canvas, footer: str) -> None:
        self.c, self.footer, self.y, self.number = canvas, footer, TOP, 1

    def need(self, height: float) -> None:
        if self.y - height < BOTTOM:
            self.finish()
            self.c.showPage()
            self.number += 1
            self.y = TOP

    def finish(self) -> None:
        c = self.c
        c.setStrokeGray(0.7)
        c.setLineWidth(0.5)
        c.line(MARGIN, MARGIN + 14, PAGE_W - MARGIN, MARGIN + 14)
        c.setFillGray(0.35)
        draw_text(c, MARGIN, MARGIN + 3, self.footer, LATIN, 7.5)
        c.setFont(LATIN, 7.5)
        c.drawRightString(PAGE_W - MARGIN, MARGIN + 3, f"page {self.number}")
        c.setFillGray(0)

    def heading(self, text: str) -> None:
        self.need(40)
        self.y -= 20
        self.c.setStrokeGray(0)
        draw_text(self.c, MARGIN, self.y, text, LATIN_BOLD, 11)
        self.y -= 5
        self.c.setStrokeGray(0.6)
        self.c.setLineWidth(0.5)
        self.c.line(MARGIN, self.y, PAGE_W - MARGIN, self.y)
        self.y -= 3

    def row(self, label: str, value: str, font: str = LATIN, size: float = 9.5) -> None:
        lead = size + 4
        for n, line in enumerate(wrap(value or "-", font, size, VALUE_W)):
            self.need(lead)
            self.y -= lead
            if n == 0:
                self.c.setStrokeGray(0)
                draw_text(self.c, MARGIN, self.y, label, LATIN_BOLD, 8.5)
            draw_text(self.c, MARGIN + LABEL_W, self.y, line, font, size)
        self.y -= 3

    def text(self, value: str, font: str = LATIN, size: float = 9, width: float = TEXT_W) -> None:
        lead = size + 3.5
        for line in wrap(value, font, size, width):
            self.need(lead)
            self.y -= lead
            draw_text(self.c, MARGIN, self.y, line, font, size)


class _Stamp:
    """reportlab's TimeStamp interface, fixed to an instant (UTC): the PDF's dates."""

    def __init__(self, t: datetime) -> None:
        u = require_aware(t)
        self.t = u.timestamp()
        self.YMDhms = (u.year, u.month, u.day, u.hour, u.minute, u.second)
        self.dhh = self.dmm = 0
        self.tzname = "UTC"


def _draw_qr(c: pdf_canvas.Canvas, url: str, x: float, y: float) -> None:
    widget = QrCodeWidget(url, barLevel="M", barBorder=2)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(
        QR_SIZE,
        QR_SIZE,
        transform=[QR_SIZE / (x1 - x0), 0, 0, QR_SIZE / (y1 - y0), 0, 0],
        initialFontName=SANS,  # else reportlab's graphics state names Helvetica
    )
    drawing.add(widget)
    renderPDF.draw(drawing, c, x, y)


INTRO = (
    "This certificate records that a file with the digest below existed no later than the "
    "time stated, as certified by the time-stamping authority named below. "
    "本证书证明：具有下列摘要值的文件不晚于所载时间已经存在。"
)


def _header(c: pdf_canvas.Canvas, page: _Page, data: CertificateData) -> None:
    """Title, subtitle and introduction on the left, the QR code on the right."""
    c.setStrokeGray(0)
    draw_text(c, MARGIN, TOP - 18, "Time-Stamp Evidence Certificate", LATIN_BOLD, 17)
    draw_text(c, MARGIN, TOP - 39, "可信时间戳认证证书", LATIN, 14)
    qr_x, qr_y = PAGE_W - MARGIN - QR_SIZE, TOP - QR_SIZE + 6
    _draw_qr(c, data.verify_url, qr_x, qr_y)
    c.setFont(LATIN, 6.5)
    c.setFillGray(0.3)
    c.drawCentredString(qr_x + QR_SIZE / 2, qr_y - 4, "scan to verify  扫码验证")
    c.setFillGray(0)
    page.y = TOP - 50
    page.text(INTRO, LATIN, 8.5, TEXT_W - QR_SIZE - 20)
    page.y = min(page.y, qr_y - 10)


def _time_stamp(page: _Page, data: CertificateData) -> None:
    page.heading("Time stamp  时间戳")
    page.row("Serial number", data.serial_hex, MONO, 9)
    page.row("Time (UTC)", seconds_utc(data.gen_time))
    page.row("Beijing time", seconds_beijing(data.gen_time))
    if data.gen_time.microsecond:
        page.row("genTime (token)", data.gen_time.isoformat().replace("+00:00", "Z"), MONO, 8.5)
    page.row("Hash algorithm", data.hash_algorithm)
    page.row("Policy OID", data.policy_oid, MONO, 9)
    if data.ledger_index is not None:
        page.row("Ledger entry", f"index {data.ledger_index} of the public token log")


def _authority(page: _Page, data: CertificateData) -> None:
    op = data.operator
    page.heading("Time-stamping authority  时间戳服务机构")
    page.row("TSA (token)", data.tsa_name)
    if op.name and op.name != data.tsa_name:
        page.row("Service", op.name)
    page.row("Operator", op.organisation or "not configured")
    if op.address:
        page.row("Address", op.address)
    page.row("Contact", op.contact or "not configured")
    if op.policy_url:
        page.row("Disclosure statement", op.policy_url, MONO, 8.5)


def _evidence(page: _Page, data: CertificateData) -> None:
    page.heading("Evidence  存证对象")
    page.row("File name", data.file_name or NOT_GIVEN)
    page.row("Size", "-" if data.size is None else f"{data.size:,} bytes")
    for name, value in data.digests:
        page.row(name, value, MONO, 8.5)
    page.row("Mode", data.mode)
    page.row("Storage status", data.storage_status)
    page.row("Evidence item", data.item_id, MONO, 9)


def _depositor(page: _Page, data: CertificateData) -> None:
    page.heading("Depositor and work  存证人与作品")
    if data.organisation:
        page.row("Organisation", data.organisation)
    page.row("Depositor", data.depositor)
    if data.holder_handle:
        page.row("Trade name (handle)", data.holder_handle)
    if data.title:
        page.row("Work title", data.title)
    page.row("Work content 作品内容", data.work_content)
    page.row("Statement 申请人声明", data.statement)


def _history(page: _Page, data: CertificateData) -> None:
    page.heading("History  历史存证")
    if not data.history:
        page.text("No earlier certificate of this SHA-256 by this organisation.")
        return
    page.text(
        f"This organisation had the same SHA-256 certified {len(data.history)} time(s) "
        "before this certificate (a new deposit is allowed: its statement may differ). "
        "本机构此前已为相同摘要值取得认证："
    )
    page.y -= 2
    for earlier in data.history:
        page.row(seconds_utc(earlier.gen_time), f"{earlier.serial_hex}  item {earlier.item_id}")


def _verify(page: _Page, data: CertificateData) -> None:
    page.need(160)  # the whole section on one page: never the URL alone on the next
    page.heading("Verify it yourself  自行验证")
    page.text(f"Verification page of this time stamp (the QR code): {data.verify_url}")
    page.y -= 4
    page.text(
        "This PDF is signed with the TSA's document-signing key and carries a document time "
        "stamp from this TSA: any change to it breaks both (check: pdfsig certificate.pdf, or "
        "a PDF reader's signature panel). "
        f"The time-stamp response is attached as {data.tsr_name} (attachments panel, or "
        "pdfdetach -saveall certificate.pdf). With the original file and the TSA's "
        "certificate chain (GET /certs, or ca-chain.pem in the evidence kit):"
    )
    page.y -= 4
    for line in recipe(data):
        page.text("  " + line, MONO, 7.5)
    page.y -= 4
    page.text(
        "Any change to the original, even re-saving it, changes its digest and fails the check."
    )


def render_certificate(data: CertificateData) -> bytes:
    """REC-4: the certificate PDF (A4, PDF/A-3b, unsigned), deterministic for `data`."""
    ensure_fonts()
    out = io.BytesIO()
    c = pdf_canvas.Canvas(
        out, pagesize=A4, invariant=1, pageCompression=1, pdfVersion=(1, 7), initialFontName=SANS
    )
    c._doc._timeStamp = _Stamp(data.gen_time)  # the PDF's dates: genTime, not "now"
    title = f"Time-stamp evidence certificate {data.serial_hex}"
    subject = f"RFC 3161 evidence certificate of {data.file_name or data.digests[0][1]}"
    keywords = [data.serial_hex, data.digests[0][1]]
    c.setTitle(title)
    c.setSubject(subject)
    c.setAuthor(data.tsa_name)
    c.setCreator("tsa-server")
    c.setProducer(PRODUCER)
    c.setKeywords(keywords)
    page = _Page(c, f"Evidence certificate {data.serial_hex} - item {data.item_id}")
    _header(c, page, data)
    for section in (_time_stamp, _authority, _evidence, _depositor, _history, _verify):
        section(page, data)
    page.finish()
    c.showPage()
    desc = "RFC 3161 time-stamp response (TimeStampResp, DER)"
    attach(c, data.tsr_name, data.tsr, data.gen_time, desc)
    xmp = xmp_packet(
        title=title,
        author=data.tsa_name,
        subject=subject,
        keywords=", ".join(keywords),
        creator="tsa-server",
        producer=PRODUCER,
        when=data.gen_time,
    )
    make_archival(c, xmp)
    c.save()
    return out.getvalue()

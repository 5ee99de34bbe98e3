"""Drawing the PDF evidence certificate (REC-4) with reportlab: pages of labelled rows,
wrapped Latin and Chinese text, the QR code to the verification lookup, the verify
recipe, and the `.tsr` embedded as a PDF attachment. What it states is gathered by
certificate.py (`CertificateData`).

Chinese text uses reportlab's built-in CID font STSong-Light (Adobe-GB1, no font file
embedded; every PDF reader ships it). The output is deterministic for given data: the
PDF's dates are genTime and its /ID is a digest of the content.
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
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream, PDFString
from reportlab.pdfgen import canvas as pdf_canvas

from tsa_server.clock.beijing import display, require_aware, to_beijing, utc_text
from tsa_server.evidence.certificate import CertificateData, recipe

CJK_FONT = "STSong-Light"
LATIN, LATIN_BOLD, MONO = "Helvetica", "Helvetica-Bold", "Courier"
TSR_MEDIA_TYPE = "application/timestamp-reply"

PAGE_W, PAGE_H = A4
MARGIN = 48
LABEL_W = 124
TEXT_W = PAGE_W - 2 * MARGIN
VALUE_W = TEXT_W - LABEL_W
QR_SIZE = 112
TOP = PAGE_H - MARGIN
BOTTOM = MARGIN + 24  # keep the footer clear
_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")


def _ensure_fonts() -> None:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def _runs(text: str, font: str) -> list[tuple[str, str]]:
    """(text, font) runs: ASCII in `font`, everything else in the CJK font."""
    return [(r, font if r[0] < "\x80" else CJK_FONT) for r in _RUNS.findall(text)]


def text_width(text: str, font: str, size: float) -> float:
    return sum(float(pdfmetrics.stringWidth(r, f, size)) for r, f in _runs(text, font))


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
    """One line, Latin runs in `font` and CJK runs in STSong-Light."""
    for run, run_font in _runs(text, font):
        c.setFont(run_font, size)
        c.drawString(x, y, run)
        x += pdfmetrics.stringWidth(run, run_font, size)


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
        c.drawRightString(PAGE_W - MARGIN, MARGIN + 3, f"page {self.number}")
        c.setFillGray(0)

    def heading(self, text: str) -> None:
        self.need(40)
        self.y -= 20
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


def _embed(c: pdf_canvas.Canvas, name: str, data: bytes, gen_time: datetime) -> None:
    """Attach `data` as an EmbeddedFile named `name` (Catalog /Names /EmbeddedFiles)."""
    doc = c._doc  # reportlab has no public API for attachments
    when = "D:" + require_aware(gen_time).strftime("%Y%m%d%H%M%S") + "Z"
    stream = PDFStream(
        PDFDictionary(
            {
                "Type": PDFName("EmbeddedFile"),
                "Subtype": "/" + TSR_MEDIA_TYPE.replace("/", "#2F"),  # PDFName keeps "/"
                "Params": PDFDictionary({"Size": len(data), "ModDate": PDFString(when)}),
            }
        ),
        data,
        filters=[],
    )
    spec = PDFDictionary(
        {
            "Type": PDFName("Filespec"),
            "F": PDFString(name),
            "UF": PDFString(name),
            "Desc": PDFString("RFC 3161 time-stamp response (TimeStampResp, DER)"),
            "AFRelationship": PDFName("Source"),
            "EF": PDFDictionary({"F": doc.Reference(stream)}),
        }
    )
    ref = doc.Reference(spec)
    names = PDFDictionary({"Names": PDFArray([PDFString(name), ref])})
    doc.Catalog.Names = PDFDictionary({"EmbeddedFiles": names})
    doc.Catalog.AF = PDFArray([ref])


def _draw_qr(c: pdf_canvas.Canvas, url: str, x: float, y: float) -> None:
    widget = QrCodeWidget(url, barLevel="M", barBorder=2)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(
        QR_SIZE, QR_SIZE, transform=[QR_SIZE / (x1 - x0), 0, 0, QR_SIZE / (y1 - y0), 0, 0]
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
    draw_text(c, MARGIN, TOP - 18, "Time-Stamp Evidence Certificate", LATIN_BOLD, 17)
    draw_text(c, MARGIN, TOP - 39, "可信时间戳认证证书", LATIN, 14)
    qr_x, qr_y = PAGE_W - MARGIN - QR_SIZE, TOP - QR_SIZE + 6
    _draw_qr(c, data.verify_url, qr_x, qr_y)
    c.setFont(LATIN, 6.5)
    c.setFillGray(0.3)
    c.drawCentredString(qr_x + QR_SIZE / 2, qr_y - 4, "scan: public token lookup")
    page.y = TOP - 50
    page.text(INTRO, LATIN, 8.5, TEXT_W - QR_SIZE - 20)
    c.setFillGray(0)
    page.y = min(page.y, qr_y - 10)


def render_certificate(data: CertificateData) -> bytes:
    """REC-4: the certificate PDF (A4), deterministic for `data`."""
    _ensure_fonts()
    out = io.BytesIO()
    c = pdf_canvas.Canvas(out, pagesize=A4, invariant=1, pageCompression=1)
    c._doc._timeStamp = _Stamp(data.gen_time)  # the PDF's dates: genTime, not "now"
    c.setTitle(f"Time-stamp evidence certificate {data.serial_hex}")
    c.setSubject(f"RFC 3161 evidence certificate of {data.file_name or data.digests[0][1]}")
    c.setAuthor(data.tsa_name)
    c.setCreator("tsa-server")
    c.setProducer("tsa-server (reportlab)")
    c.setKeywords([data.serial_hex, data.digests[0][1]])
    page = _Page(c, f"Evidence certificate {data.serial_hex} - item {data.item_id}")
    _header(c, page, data)

    page.heading("Time stamp  时间戳")
    page.row("Serial number", data.serial_hex, MONO, 9)
    page.row("Time (UTC)", utc_text(data.gen_time))
    page.row("Beijing time", f"{display(data.gen_time)}  {_cn_time(data.gen_time)}")
    page.row("TSA", data.tsa_name)
    page.row("Policy OID", data.policy_oid, MONO, 9)
    page.row("Hash algorithm", data.hash_algorithm)
    if data.ledger_index is not None:
        page.row("Ledger entry", f"index {data.ledger_index} of the public token log")

    page.heading("Evidence  存证对象")
    page.row("File name", data.file_name)
    page.row("Size", "-" if data.size is None else f"{data.size:,} bytes")
    for name, value in data.digests:
        page.row(name, value, MONO, 8.5)
    page.row("Mode", data.mode)
    page.row("Storage status", data.storage_status)
    page.row("Evidence item", data.item_id, MONO, 9)

    page.heading("Depositor  存证人")
    page.row("Depositor", data.depositor)
    if data.holder_handle:
        page.row("Trade name (handle)", data.holder_handle)
    if data.title:
        page.row("Work", data.title)
    page.row("Applicant statement", data.statement)

    page.heading("Verify it yourself  自行验证")
    page.text(
        f"The time-stamp response is attached to this PDF as {data.tsr_name} (open the "
        "attachments panel, or: pdfdetach -saveall certificate.pdf). With the original file "
        "and the TSA's certificate chain (GET /certs, or ca-chain.pem in the evidence kit):"
    )
    page.y -= 4
    for line in recipe(data):
        page.text("  " + line, MONO, 7.5)
    page.y -= 4
    page.text(
        "Any change to the original, even re-saving it, changes its digest and fails the "
        f"check. Public lookup of the token and its ledger proof: {data.verify_url}"
    )
    page.finish()
    c.showPage()
    _embed(c, data.tsr_name, data.tsr, data.gen_time)
    c.save()
    return out.getvalue()


def _cn_time(t: datetime) -> str:
    b = to_beijing(t)
    return f"({b.year}年{b.month}月{b.day}日 {b:%H:%M:%S} 北京时间)"

"""The TSA disclosure statement (web/policy.py) as a PDF, drawn with reportlab: the same
facts as the HTML page, one A4 document. Drawn on first request, off the event loop."""

from __future__ import annotations

import io

from tsa_server.web.disclosure import Statement


def render_pdf(statement: Statement) -> bytes:
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["Code"]

    def para(text: str, style=body):  # type: ignore[no-untyped-def]
        return Paragraph(escape(text), style)

    def table(rows: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
        return Table([[para(k), para(v)] for k, v in rows], colWidths=[45 * mm, 125 * mm])

    story = [
        Paragraph("TSA disclosure statement", styles["Title"]),
        para(f"Time-stamps under RFC 3161 issued by {statement.name}."),
        table(
            [
                ("Service", statement.name),
                ("Address", statement.url),
                ("Stated accuracy", statement.accuracy),
                ("Signing key", statement.key_type),
                ("Retention", statement.retention),
                ("Contact", statement.contact),
            ]
        ),
        Paragraph("Time-stamp policies", styles["Heading2"]),
        *[para(p, small) for p in statement.policies],
        Paragraph("Hash algorithms accepted", styles["Heading2"]),
        para(", ".join(statement.hashes)),
        Paragraph("TSA certificate", styles["Heading2"]),
        table(list(statement.certificate)),
        Paragraph("Clock sources", styles["Heading2"]),
        *[para(s, small) for s in statement.clock_sources],
        Spacer(1, 3 * mm),
        para(statement.clock_rules),
    ]
    out = io.BytesIO()
    SimpleDocTemplate(
        out, pagesize=A4, title="TSA disclosure statement", author=statement.name
    ).build(story)
    return out.getvalue()

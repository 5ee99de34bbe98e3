"""What makes a certificate PDF archival (PDF/A-3b, ISO 19005-3) and self-contained, on
top of what reportlab draws: the embedded font, the XMP metadata (pdfaid part 3,
conformance B) agreeing with the document information dictionary, the sRGB
OutputIntent, and the `.tsr` as an associated file (/AF, /AFRelationship /Supplement).

The font is WenQuanYi Micro Hei from Debian's fonts-wqy-microhei (Apache-2.0 or GPL-3+
with the font exception), embedded as a subset: Latin, Chinese and the monospaced digests
all come from it, so no viewer needs a font or a language pack of its own (reportlab's
standard fonts and its STSong-Light CID font are never embedded and PDF/A forbids them).
reportlab has no public API for catalog entries; they are added to its document object.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream, PDFString
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as pdf_canvas

from tsa_server.clock.beijing import require_aware
from tsa_server.evidence.errors import EvidenceError
from tsa_server.evidence.srgb_icc import SRGB_ICC

FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_PACKAGE = "fonts-wqy-microhei"
SANS, MONO = "WenQuanYiMicroHei", "WenQuanYiMicroHeiMono"  # faces 0 and 1 of the .ttc
TSR_MEDIA_TYPE = "application/timestamp-reply"


class FontMissing(EvidenceError):
    """The certificate's font is not installed (scripts/bootstrap installs it)."""


def ensure_fonts(font_file: Path = FONT_FILE) -> None:
    """Register both faces of the font with reportlab (once per process)."""
    registered = pdfmetrics.getRegisteredFontNames()
    if SANS in registered and MONO in registered:
        return
    if not font_file.is_file():
        raise FontMissing(
            f"the certificate font {font_file} is missing: install the Debian package "
            f"{FONT_PACKAGE} (scripts/bootstrap does)"
        )
    pdfmetrics.registerFont(TTFont(SANS, str(font_file), subfontIndex=0))
    pdfmetrics.registerFont(TTFont(MONO, str(font_file), subfontIndex=1))


def pdf_date(t: datetime) -> str:
    return "D:" + require_aware(t).strftime("%Y%m%d%H%M%S") + "+00'00'"


def _xmp_date(t: datetime) -> str:
    return require_aware(t).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"


def xmp_packet(
    *,
    title: str,
    author: str,
    subject: str,
    keywords: str,
    creator: str,
    producer: str,
    when: datetime,
) -> bytes:
    """The XMP metadata of a PDF/A-3b file whose information dictionary says the same
    (ISO 19005-3 6.6.2.3.1: Title, Author, Subject, Keywords, Creator, Producer and the
    dates must agree)."""
    e, date = escape, _xmp_date(when)
    xml = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
   <pdfaid:part>3</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(title)}</rdf:li></rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>{e(author)}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(subject)}</rdf:li></rdf:Alt>
   </dc:description>
   <pdf:Keywords>{e(keywords)}</pdf:Keywords>
   <pdf:Producer>{e(producer)}</pdf:Producer>
   <xmp:CreatorTool>{e(creator)}</xmp:CreatorTool>
   <xmp:CreateDate>{date}</xmp:CreateDate>
   <xmp:ModifyDate>{date}</xmp:ModifyDate>
   <xmp:MetadataDate>{date}</xmp:MetadataDate>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return xml.encode("utf-8")


def make_archival(c: pdf_canvas.Canvas, xmp: bytes) -> None:
    """The catalog's /Metadata (unfiltered, as PDF/A asks) and its sRGB /OutputIntents."""
    doc = c._doc  # reportlab has no public API for catalog entries
    metadata = PDFStream(
        PDFDictionary({"Type": PDFName("Metadata"), "Subtype": PDFName("XML")}), xmp, filters=[]
    )
    doc.Catalog.Metadata = doc.Reference(metadata)
    profile = PDFStream(PDFDictionary({"N": 3}), SRGB_ICC, filters=[])
    intent = PDFDictionary(
        {
            "Type": PDFName("OutputIntent"),
            "S": PDFName("GTS_PDFA1"),
            "OutputConditionIdentifier": PDFString("sRGB IEC61966-2.1"),
            "Info": PDFString("sRGB IEC61966-2.1"),
            "RegistryName": PDFString("http://www.color.org"),
            "DestOutputProfile": doc.Reference(profile),
        }
    )
    doc.Catalog.OutputIntents = PDFArray([intent])
    _catalog_keys(c, "OutputIntents")


def _catalog_keys(c: pdf_canvas.Canvas, *keys: str) -> None:
    """Let reportlab's catalog write `keys` (it writes only those it knows of)."""
    catalog = c._doc.Catalog
    known = list(catalog.__NoDefault__)
    catalog.__NoDefault__ = known + [k for k in keys if k not in known]


def attach(c: pdf_canvas.Canvas, name: str, data: bytes, when: datetime, desc: str) -> None:
    """`data` as an associated file named `name` (PDF/A-3 6.8): in the catalog's
    /Names /EmbeddedFiles and /AF, with its MIME type, date and /AFRelationship
    /Supplement (it supplements the certificate: the same proof, machine-checkable)."""
    doc = c._doc
    stream = PDFStream(
        PDFDictionary(
            {
                "Type": PDFName("EmbeddedFile"),
                "Subtype": "/" + TSR_MEDIA_TYPE.replace("/", "#2F"),  # PDFName keeps "/"
                "Params": PDFDictionary({"Size": len(data), "ModDate": PDFString(pdf_date(when))}),
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
            "Desc": PDFString(desc),
            "AFRelationship": PDFName("Supplement"),
            "EF": PDFDictionary({"F": doc.Reference(stream)}),
        }
    )
    ref = doc.Reference(spec)
    names = PDFDictionary({"Names": PDFArray([PDFString(name), ref])})
    doc.Catalog.Names = PDFDictionary({"EmbeddedFiles": names})
    doc.Catalog.AF = PDFArray([ref])
    _catalog_keys(c, "AF")

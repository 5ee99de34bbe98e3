"""The TSA disclosure statement's facts (`Statement`, from the services) and its HTML
page; web/policy.py serves it, web/policy_pdf.py draws the PDF."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from tsa_server.wiring import Services


@dataclass(frozen=True)
class Statement:
    """The facts the statement discloses, as text."""

    name: str
    url: str
    policies: tuple[str, ...]
    accuracy: str
    hashes: tuple[str, ...]
    key_type: str
    certificate: tuple[tuple[str, str], ...]  # (label, value)
    clock_sources: tuple[str, ...]
    clock_rules: str
    retention: str
    contact: str


def _certificate(cert: asn1_x509.Certificate) -> tuple[tuple[str, str], ...]:
    validity = cert["tbs_certificate"]["validity"]
    return (
        ("Subject", cert.subject.human_friendly),
        ("Issuer", cert.issuer.human_friendly),
        ("Serial number", f"{cert.serial_number:x}"),
        ("Valid from", validity["not_before"].native.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Valid until", validity["not_after"].native.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("SHA-256 fingerprint", hashlib.sha256(cert.dump()).hexdigest()),
    )


def statement_of(services: Services) -> Statement:
    config = services.config
    clock, disclosure = config.clock, config.disclosure
    return Statement(
        name=disclosure.name,
        url=config.server.origin,
        policies=config.tsa.policies,
        accuracy=f"{config.tsa.max_accuracy_ms} ms at worst; each token states its own",
        hashes=config.tsa.accepted_hashes,
        key_type=config.pkcs11.key_type
        + (" (RSASSA-PSS)" if config.pkcs11.rsa_pss else "")
        + ", generated and kept in a PKCS#11 token, never extractable",
        certificate=_certificate(services.chain[0]),
        clock_sources=clock.servers,
        clock_rules=(
            f"polled every {clock.interval_s:g} s; no token is issued when the offset "
            f"exceeds {clock.max_offset_ms:g} ms, the last good sample is older than "
            f"{clock.max_age_s:g} s, or fewer than {clock.min_good_servers} source(s) agree; "
            "a source that disagrees with the majority is dropped, and with no majority "
            "no token is issued; a step of the system clock of 1 s or more stops issuance "
            "until the clock is measured again; around a leap second the sources announce, "
            "issuance pauses for 1 s plus the error bound either side of that midnight UTC; "
            "every loss and regain of sync is recorded in the operations log"
        ),
        retention=disclosure.retention,
        contact=disclosure.contact or "not configured",
    )


def _rows(rows: tuple[tuple[str, str], ...]) -> str:
    return "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )


def render_html(statement: Statement) -> bytes:
    def items(values: tuple[str, ...]) -> str:
        return "<ul>" + "".join(f"<li><code>{html.escape(v)}</code></li>" for v in values) + "</ul>"

    facts = (
        ("Service", statement.name),
        ("Address", statement.url),
        ("Stated accuracy", statement.accuracy),
        ("Signing key", statement.key_type),
        ("Retention", statement.retention),
        ("Contact", statement.contact),
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>TSA disclosure statement: {html.escape(statement.name)}</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}
th{{text-align:left;vertical-align:top;padding-right:1em}}</style></head>
<body><h1>TSA disclosure statement</h1>
<p>Time-stamps under RFC 3161 issued by {html.escape(statement.name)}.</p>
<table>{_rows(facts)}</table>
<h2>Time-stamp policies</h2>{items(statement.policies)}
<h2>Hash algorithms accepted</h2>{items(statement.hashes)}
<h2>TSA certificate</h2><table>{_rows(statement.certificate)}</table>
<p>The certificate chain: <a href="/certs">/certs</a>.</p>
<h2>Clock sources</h2>{items(statement.clock_sources)}<p>{html.escape(statement.clock_rules)}</p>
</body></html>
"""
    return page.encode()

"""`GET /policy`: the TSA disclosure statement (ETSI EN 319 421 section 6.1, the PKI
disclosure statement of a TSA), generated from what the server is configured with and
the certificate it signs with: the policy OIDs, the accuracy it states at worst, the
hash algorithms it accepts, its signing key type and certificate, its clock sources,
how long tokens and records are kept, and whom to contact ([disclosure]).

It is built once, when the application starts (nothing on it changes while it runs),
and served as HTML: every configured text is escaped.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

from aiohttp import web
from asn1crypto import x509 as asn1_x509

from tsa_server.web.api import Described
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
            f"{clock.max_age_s:g} s, or fewer than {clock.min_good_servers} source(s) agree"
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


POLICY_HTML = web.AppKey("policy_html", bytes)
DESCRIBED = Described(
    paths={
        "/policy": {
            "get": {
                "summary": "The TSA disclosure statement (policy, accuracy, key, clock...)",
                "responses": {
                    "200": {
                        "description": "the statement, generated from the configuration",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        }
    }
)


def setup(app: web.Application, services: Services) -> None:
    app[POLICY_HTML] = render_html(statement_of(services))


async def policy(request: web.Request) -> web.Response:
    """The disclosure statement, HTML."""
    return web.Response(body=request.app[POLICY_HTML], content_type="text/html", charset="utf-8")

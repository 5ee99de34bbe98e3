"""GET /verify/serial/{serial}: the public verification page of one time stamp, for
people (the QR code and the printed link of every evidence certificate lead here).

The token is found in the token ledger by its serial (any node's log, like
GET /tokens/{serial}), verified by the same verifier, trust roots and key chains as
POST /verify (in its worker processes), and its ledger entry proved against the latest
checkpoint (web/verify/ledger.py). The answer is HTML: valid or not in words, every check
with its reason, genTime in UTC and Beijing time, the TSA, the ledger inclusion, and links
to the token and the disclosure statement. Everything printed is escaped, and the page
carries no script (Content-Security-Policy: default-src 'none'). The file itself is not
compared here: the certificate's digest and `openssl ts -verify -data` do that.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from ledger.serials import serial_text
from tsa_server.clock.beijing import to_beijing
from tsa_server.rfc3161 import response
from tsa_server.rfc3161.verify import CheckResult, VerificationReport, VerifyOptions
from tsa_server.web.handlers import STATE
from tsa_server.web.ledger import catalog
from tsa_server.web.ledger.logs import LOGS, entries_refusal
from tsa_server.web.ledger.lookup import by_any_serial
from tsa_server.web.params import serials
from tsa_server.web.verify.handler import VERIFIER
from tsa_server.web.verify.ledger import ledger_section

_STYLE = (
    "body{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;"
    "padding:.3em .5em;border-bottom:1px solid #ddd}code{word-break:break-all}"
    ".ok{color:#05620f}.bad{color:#a00000}"
)
_NO_DIGEST = "no data, stream or digest was given"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _rows(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _ledger_text(section: dict[str, Any] | None) -> str:
    if section is None:
        return "not a token of this TSA: no ledger entry to look for"
    if section.get("found") and section.get("token_matches"):
        where = f"entry {section.get('index')} of the public token log"
        if section.get("checkpoint"):
            return f"included: {where}, proved against a signed checkpoint"
        return f"included: {where}; the next checkpoint will sign it"
    return str(section.get("reason") or section.get("error") or "not found in the ledger")


def _not_compared(check: CheckResult) -> bool:
    """The imprint check of a page that has no file to compare it with."""
    return check.name == "message_imprint" and not check.passed and _NO_DIGEST in check.reason


def report_page(report: VerificationReport, section: dict[str, Any] | None, serial: int) -> str:
    """The body of the page for a verified (or not) token and its ledger section."""
    in_ledger = bool(section and section.get("found") and section.get("token_matches"))
    checked = [c for c in report.checks if not _not_compared(c)]
    valid = bool(checked) and all(c.passed for c in checked) and in_ledger
    verdict = (
        '<p class="ok"><strong>VALID</strong>: this time stamp was issued by this TSA, its '
        "signature and certificate chain verify, and it is in the public ledger.</p>"
        if valid
        else '<p class="bad"><strong>INVALID</strong>: see the failed checks below.</p>'
    )
    rows: list[tuple[str, str]] = [("Serial number", f"<code>{escape(serial_text(serial))}</code>")]
    fields = report.fields
    if fields is not None:
        t = fields.gen_time
        beijing = to_beijing(t)
        rows += [
            ("genTime (UTC)", escape(f"{t:%Y-%m-%d %H:%M:%S} UTC")),
            ("Beijing time", escape(f"{beijing:%Y-%m-%d %H:%M:%S} (UTC+08:00) 北京时间")),
            ("TSA", escape(fields.tsa_name or (fields.signer.subject if fields.signer else ""))),
            ("Policy", f"<code>{escape(fields.policy)}</code>"),
            ("Hash algorithm", escape(fields.imprint_algorithm)),
            ("Message imprint", f"<code>{escape(fields.imprint_hex)}</code>"),
        ]
    rows.append(("Ledger", escape(_ledger_text(section))))
    checks = "".join(
        f'<tr><td class="{"ok" if c.passed or _not_compared(c) else "bad"}">'
        f"{_outcome(c)}</td><td>{escape(c.name)}</td><td>{escape(_reason(c))}</td></tr>"
        for c in report.checks
    )
    token = f"/tokens/{escape(serial_text(serial))}"
    return (
        f"<h1>Time stamp {escape(serial_text(serial))}</h1>{verdict}{_rows(rows)}"
        f"<h2>Checks</h2><table>{checks}</table>"
        "<h2>Check it yourself</h2><p>Compare the message imprint with the SHA-256 of your "
        f"file, or run <code>openssl ts -verify -data FILE -in token.tsr -CAfile ca.pem</code> "
        f'with the <a href="{token}">token</a> and the <a href="/certs">certificate chain</a>. '
        'The TSA\'s <a href="/policy">disclosure statement</a>.</p>'
    )


def _outcome(check: CheckResult) -> str:
    if _not_compared(check):
        return "not compared"
    return "skipped" if check.skipped else "passed" if check.passed else "FAILED"


def _reason(check: CheckResult) -> str:
    if _not_compared(check):
        return "this page has no file: compare the message imprint with your file's digest"
    return check.reason


async def serial_page(request: web.Request) -> web.Response:
    """GET /verify/serial/{serial}: the HTML page (404 page when no such token)."""
    state = request.app[STATE]
    try:
        candidates = serials(request.match_info["serial"])
    except web.HTTPBadRequest as exc:
        return _page(
            "Bad serial number", f"<h1>Bad serial number</h1><p>{escape(exc.text or '')}</p>", 400
        )
    view = request.app[LOGS]["tokens"]
    if (refusal := await entries_refusal(request, view)) is not None:
        return refusal
    _, entry = await catalog.first_found(
        request, lambda r: by_any_serial(r, candidates), lambda e: e is not None
    )
    if entry is None:
        text = escape(request.match_info["serial"][:80])
        return _page("Not found", f"<h1>No time stamp with serial {text}</h1>", 404)
    own = state.issuer.keys.chains() or [state.tsa_chain]
    options = VerifyOptions(
        trust_roots=state.trust_roots, extra_certs=[c for chain in own for c in chain]
    )
    report = await request.app[VERIFIER].run(response.granted(entry.token), options)
    if report is None:
        return _page("Busy", "<h1>The verifier is busy: reload in a second</h1>", 503)
    section = await ledger_section(request, entry.token, report) if report.fields else None
    return _page(
        f"Time stamp {serial_text(entry.serial)}", report_page(report, section, entry.serial)
    )

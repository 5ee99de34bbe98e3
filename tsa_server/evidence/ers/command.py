"""`tsa verify --evidence-record ITEM.ers --data FILE` (cli/verify.py parses the options
and the trust roots; this checks and prints): the whole record against the file, every
archive timestamp at its own time (verify.py), exit status 0 valid, 2 invalid; a file
that is not an evidence record, or data that cannot be read, is the caller's usage error
(`Unusable`, one line, exit status 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tsa_server.evidence.ers.asn1 import MalformedRecord, load_record
from tsa_server.evidence.ers.verify import RecordReport, algorithms_of, data_digests, verify_record
from tsa_server.rfc3161.verify_load import CertificateLike

__all__ = ["Unusable", "check_record_file", "render"]


class Unusable(Exception):
    """The input cannot be checked at all (usage error, exit status 1)."""


def check_record_file(
    record: bytes,
    record_name: str,
    data_file: str,
    trust_roots: Sequence[CertificateLike],
    extra_certs: Sequence[CertificateLike] = (),
    at: datetime | None = None,
) -> RecordReport:
    """The verdict on `record` (the bytes of `record_name`) for the file `data_file`."""
    try:
        parsed = load_record(record)
    except MalformedRecord as exc:
        raise Unusable(f"{record_name}: {exc}") from None
    try:
        algorithms = algorithms_of(parsed)
    except MalformedRecord as exc:  # an archive timestamp whose token is not one
        return RecordReport(False, f"{record_name}: {exc}")
    try:
        with open(data_file, "rb") as stream:
            digests = data_digests(stream, algorithms)
    except OSError as exc:
        raise Unusable(f"cannot read {data_file}: {exc.strerror}") from None
    try:
        return verify_record(
            record, digests, trust_roots=trust_roots, extra_certs=extra_certs, at=at
        )
    except (MalformedRecord, ValueError, TypeError, KeyError, IndexError) as exc:
        # damage deep inside a token that its decoder only meets on use
        return RecordReport(False, f"{record_name}: malformed: {type(exc).__name__}: {exc}")


def render(report: RecordReport, as_json: bool) -> str:
    """The report as JSON or as lines for people."""
    body: dict[str, Any] = report.to_dict()
    if as_json:
        return json.dumps(body, indent=2)
    lines = [
        ("Evidence record: VALID" if report.valid else "Evidence record: INVALID")
        + f" ({report.reason})"
    ]
    for stamp in body["stamps"]:
        mark = "PASS" if stamp["passed"] else "FAIL"
        when = stamp["gen_time"] or "genTime unknown"
        lines.append(
            f"  {mark} chain {stamp['chain']}, archive timestamp {stamp['index']} "
            f"({stamp['algorithm']}, {when}, serial {stamp['serial'] or '?'}): {stamp['reason']}"
        )
    return "\n".join(lines)

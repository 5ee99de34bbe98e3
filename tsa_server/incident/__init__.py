"""Incident reports (EN 319 421 OVR-7.13): after a key compromise or a loss of
calibration, publish what identifies the affected tokens.

`tsa incident` selects the tokens of the token log by the certificate that signed them
(its ESSCertIDv2, `selection.py`) or by a genTime window, lists each with its inclusion
proof against one signed checkpoint (`report.py`), signs the report with the checkpoint
key (a signed note, checked with the token log's published verifier key), has it
time-stamped by this TSA (`timestamp.py`), writes it to `[ledger] incidents`
(`files.py`), and leaves an `incident_published` event for the operations log
(`publish.py`). The server serves the reports at `/incidents/` (web/incidents.py), and
`tsa incident verify` checks one offline (`verify.py`). Format: docs/operations.md,
"Incident handling".
"""

from __future__ import annotations

from tsa_server.errors import TSAError


class IncidentError(TSAError):
    """An incident report cannot be made or read as asked: one line for the operator."""

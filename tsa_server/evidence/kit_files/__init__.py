"""Files shipped verbatim in every evidence kit (issue 19 item 4).

`verify_kit.py` is an independent checker for the kit's recipient: it imports nothing
from this project (only Python's standard library and `cryptography`) and re-implements
what it checks (the ledger's leaf hash, the RFC 6962 inclusion path, the C2SP signed
note with an Ed25519 key) from docs/spec/ledger.md, so a bug here is not a bug there.
It ships as package data: a module of this package, read as bytes, never imported.
"""

from __future__ import annotations

from importlib import resources

VERIFY_SCRIPT = "verify_kit.py"


def verify_script() -> bytes:
    """The bytes of verify_kit.py, as the kit carries it."""
    return resources.files(__name__).joinpath(VERIFY_SCRIPT).read_bytes()

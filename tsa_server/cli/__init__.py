"""`tsa`: the command line of the time-stamping authority (click), one module per
command group: `root` (the group, `init`, `serve`), `keys`, `accounts`, `fees`,
`evidence`, `names`, `verify`, `audit`. Each command parses, calls the use case and prints.

Every command follows one convention (ledger/cli_run.py): exit status 0 success, 1 usage
or input error, 2 a check that failed; errors are one line, or JSON with --json.
"""

from __future__ import annotations

import os

from ledger.cli_run import run
from tsa_server.cli.root import cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    # Whatever the server or a command creates (databases, blobs, checkpoints, keys'
    # metadata, their directories) is private to the service user.
    os.umask(0o077)
    return run(cli, argv, "tsa")

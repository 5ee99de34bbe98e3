"""`tsa`: the command line of the time-stamping authority (click), one module per
command group: `root` (the group, `init`, `serve`), `keys`, `accounts`, `fees`,
`evidence`, `names`, `verify`, `audit`. Each command parses, calls the use case and prints.
"""

from tsa_server.cli.root import cli, main

__all__ = ["cli", "main"]

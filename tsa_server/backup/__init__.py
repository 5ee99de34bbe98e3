"""Backups and restore of a SQLite installation (issue 17 item 7): `tsa backup DEST`
takes an online, consistent, audited snapshot of every store while the server runs
(take.py, the copy order and why), `tsa restore SRC` puts one back with the server
stopped, refusing a snapshot behind what was published unless the loss is accepted and
then recording it in the operations log (restore.py, live.py). A PostgreSQL
installation is backed up with PostgreSQL's own tools (docs/operations.md) and its
files with `tsa backup --files-only`.
"""

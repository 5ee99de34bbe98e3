"""The evidence layer: accounts and API keys, the evidence store (items and credit
entries on SQLite) and the content-addressed blob store for stored originals.

Pure where possible: `accounts` holds the key format and the role/scope rules and reaches
the database only through the store it is given; `store` and `blobs` are the I/O edges.
Nothing here imports aiohttp (web/ adapts it to HTTP).

The layer that joins the pure fee rules (tsa_server.fees) to these edges:
`service` (EvidenceService: credit lots, deposits through the issuer, the storage
lifecycle, reminders, forecast), `fee_items` (rows <-> fee values, the atomic credit
check), `renewal_runner` (the scheduler applying `fees.renewals.tick`), `views` (JSON
forms shared by the API and the CLI) and `client` (the API client of `tsa evidence
deposit`).
"""

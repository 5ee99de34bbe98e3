"""The evidence layer: accounts and API keys, the evidence store (items and credit
entries on SQLite) and the content-addressed blob store for stored originals.

Pure where possible: `accounts` holds the key format and the role/scope rules and reaches
the database only through the store it is given; `store` and `blobs` are the I/O edges.
Nothing here imports aiohttp (web/ adapts it to HTTP).
"""

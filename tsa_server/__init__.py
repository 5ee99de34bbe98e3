"""RFC 3161 time-stamping authority with an evidence ledger."""

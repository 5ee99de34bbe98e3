"""The ledger's HTTP face: the published logs, checkpoints, tiles and proofs
(`logs.py`), paged lookups (`lookup.py`) and the pool of read threads that serves them
off the event loop (`reads.py`)."""

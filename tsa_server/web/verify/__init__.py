"""`POST /verify`: the handler (`handler.py`), the bounded reading of its input
(`input.py`), the ledger section for this TSA's tokens (`ledger.py`) and the verifier's
worker processes (`pool.py`)."""

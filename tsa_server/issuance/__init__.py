"""The time-stamping unit's pipeline: requests in, tokens out, every token durable in
the ledger before its reply (`issuer`, `commit`); the signed checkpoints of the log
(`publisher`); the operations log of events time-stamped by this TSA (`opslog`); and the
key ceremony that gives the unit its key and certificate (`ceremony`)."""

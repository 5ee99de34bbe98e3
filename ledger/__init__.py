"""The evidence ledger: hashing, Merkle proofs, checkpoints, tiles and stores."""

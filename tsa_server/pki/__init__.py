"""Neutral X.509 and DER pieces that both the RFC 3161 code (`rfc3161/`) and the signer
(`signing/`) use, so that neither imports the other's internals: the DER primitives of
the issuance hot path and the rule a TSA certificate's purpose must meet."""

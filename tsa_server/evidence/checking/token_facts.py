"""What a document's time-stamp token says about itself, read before the verifier runs:
the TimeStampToken's DER (the ledger's leaf is exactly these bytes) and its facts (the
imprint it certifies, its serial: `ers.build.token_facts`, the one reader of them). A
token that cannot be read gives None: the verifier then says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsa_server.evidence.ers.build import TokenFacts, token_facts
from tsa_server.rfc3161.verify_load import load_token


@dataclass(frozen=True)
class DocumentToken:
    der: bytes  # the TimeStampToken (CMS ContentInfo) as found
    facts: TokenFacts


def document_token(tsr: bytes) -> DocumentToken | None:
    try:
        token = load_token(tsr)
        if token.content_info is None:
            return None
        der = token.content_info.dump()  # before any walk: the bytes as found
        return DocumentToken(der, token_facts(der))
    except Exception:  # asn1crypto and the loader raise many types on malformed DER
        return None

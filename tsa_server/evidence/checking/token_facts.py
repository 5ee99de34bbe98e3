"""What a document's time-stamp token says about itself, read before the verifier runs:
the TimeStampToken's DER (the ledger's leaf is exactly these bytes) and the imprint
(hash algorithm and digest) it certifies. A token that cannot be read gives None: the
verifier then says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, tsp

from tsa_server.rfc3161.verify_load import TokenDecodeError, load_token


@dataclass(frozen=True)
class TokenFacts:
    der: bytes  # the TimeStampToken (CMS ContentInfo) as found
    algorithm: str  # asn1crypto's name of the imprint's hash algorithm
    digest: bytes
    serial: int


def token_facts(tsr: bytes) -> TokenFacts | None:
    try:
        token = load_token(tsr)
        if token.content_info is None:
            return None
        der = token.content_info.dump()  # before any walk: the bytes as found
        encap = token.content_info["content"]["encap_content_info"]
        if isinstance(encap["content"], core.Void):
            return None
        tst = tsp.TSTInfo.load(bytes(encap["content"]), strict=True)
        imprint = tst["message_imprint"]
        return TokenFacts(
            der,
            str(imprint["hash_algorithm"]["algorithm"].native),
            bytes(imprint["hashed_message"].native),
            int(tst["serial_number"].native),
        )
    except TokenDecodeError:
        return None
    except Exception:  # asn1crypto raises many types on malformed DER
        return None

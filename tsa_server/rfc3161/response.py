"""TimeStampResp encoding: granted replies around a token, and rejections (RFC 3161 §2.4.2)."""

from __future__ import annotations

from functools import lru_cache

from asn1crypto import tsp

from tsa_server.errors import FailureInfo
from tsa_server.pki import der

_GRANTED_STATUS = bytes.fromhex("3003020100")  # PKIStatusInfo { status granted(0) }


def granted(token: bytes) -> bytes:
    """TimeStampResp { status granted, timeStampToken }."""
    return der.tlv(der.SEQUENCE, _GRANTED_STATUS + token)


@lru_cache(maxsize=256)
def rejection(failure: FailureInfo, text: str) -> bytes:
    """TimeStampResp { status rejection, statusString, failInfo } without a token."""
    status = tsp.PKIStatusInfo(
        {"status": "rejection", "status_string": [text], "fail_info": {failure.value}}
    )
    # Built around the status by hand: asn1crypto insists on a timeStampToken field.
    return der.tlv(der.SEQUENCE, status.dump())

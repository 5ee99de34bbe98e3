"""The one error taxonomy of the server.

`RequestRejected` carries the RFC 3161 PKIFailureInfo bit a client gets in a
`rejection` response; every other TSAError that reaches the issuance path becomes
`systemFailure`. Messages are client-safe: no PINs, paths to secrets or tracebacks.
"""

from __future__ import annotations

import enum


class FailureInfo(enum.Enum):
    """PKIFailureInfo bits used by RFC 3161 (§2.4.2), named as asn1crypto names them."""

    BAD_ALG = "bad_alg"
    BAD_REQUEST = "bad_request"
    BAD_DATA_FORMAT = "bad_data_format"
    TIME_NOT_AVAILABLE = "time_not_available"
    UNACCEPTED_POLICY = "unaccepted_policy"
    UNACCEPTED_EXTENSION = "unaccepted_extensions"
    ADD_INFO_NOT_AVAILABLE = "add_info_not_available"
    SYSTEM_FAILURE = "system_failure"


class TSAError(Exception):
    """Root of every error the server raises on purpose."""


class ConfigError(TSAError):
    """The configuration is missing, malformed or inconsistent; the server must not start."""


class SignerUnavailable(TSAError):
    """The PKCS#11 token or key cannot be used right now."""


class CertificateError(TSAError):
    """The TSA certificate is unusable: wrong key, wrong EKU, outside its validity."""


class RequestRejected(TSAError):
    """A request the TSA answers with status `rejection` and one PKIFailureInfo bit."""

    def __init__(self, failure: FailureInfo, text: str):
        super().__init__(text)
        self.failure = failure
        self.text = text

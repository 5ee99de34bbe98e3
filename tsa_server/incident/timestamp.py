"""The report's time-stamp, issued by this TSA's running server through `POST /tsr`
like any client's: the token is sequenced, signed with the key in service and logged
in the token ledger like every other. (While the server is stopped nothing may write
the ledger, so a report waits for it: the server is also what publishes the report.)

The reply is checked before it is kept: granted, over the report's SHA-256 with our
nonce, and valid under the configured trust roots.
"""

from __future__ import annotations

import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from asn1crypto import algos, tsp
from asn1crypto import x509 as asn1_x509

from tsa_server.incident import IncidentError
from tsa_server.rfc3161.verify import VerifyOptions, verify_token

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 64 * 1024


def make_query(digest: bytes, nonce: int) -> bytes:
    """A TimeStampReq over a SHA-256 digest, asking for the certificate."""
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": digest,
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return bytes(request.dump())


def _context(url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    if not url.startswith("https:"):
        return None
    if ca_file is not None and ca_file.exists():
        return ssl.create_default_context(cafile=str(ca_file))
    return ssl.create_default_context()


def request_timestamp(
    url: str,
    digest: bytes,
    *,
    trust_roots: Sequence[asn1_x509.Certificate],
    extra_certs: Sequence[asn1_x509.Certificate] = (),
    ca_file: Path | None = None,
    timeout: float = 30.0,
) -> bytes:
    """The TimeStampResp DER from the server at `url` (its root, ending in /)."""
    nonce = secrets.randbits(63) | 1
    query = make_query(digest, nonce)
    target = url.rstrip("/") + "/tsr"
    request = urllib.request.Request(
        target, data=query, method="POST", headers={"Content-Type": QUERY_TYPE}
    )
    try:
        with urllib.request.urlopen(
            request, timeout=timeout, context=_context(url, ca_file)
        ) as got:
            reply: bytes = got.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise IncidentError(
            f"the server at {target} refused the time-stamp request: HTTP {exc.code}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise IncidentError(
            f"no time-stamp: the server at {target} is not reachable ({why}); the report is "
            "time-stamped and published by the running server: start it, or give --url"
        ) from None
    if len(reply) > MAX_REPLY_BYTES:
        raise IncidentError(f"the reply of {target} is larger than {MAX_REPLY_BYTES} bytes")
    check_reply(reply, digest, nonce, trust_roots, extra_certs)
    return reply


def check_reply(
    reply: bytes,
    digest: bytes,
    nonce: int | None,
    trust_roots: Sequence[asn1_x509.Certificate],
    extra_certs: Sequence[asn1_x509.Certificate] = (),
) -> None:
    """IncidentError unless `reply` grants a valid token over `digest`."""
    try:
        status = tsp.TimeStampResp.load(reply)["status"]["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise IncidentError(f"the time-stamp reply is not a TimeStampResp: {exc}") from None
    if status not in ("granted", "granted_with_mods"):
        raise IncidentError(f"the time-stamp request was not granted: {status}")
    report = verify_token(
        reply,
        VerifyOptions(
            trust_roots=trust_roots,
            extra_certs=extra_certs,
            digest=digest,
            digest_algorithm="sha256",
            nonce=nonce,
        ),
    )
    if not report.valid:
        failure = report.failures[0]
        raise IncidentError(f"the time-stamp does not verify: {failure.name}: {failure.reason}")

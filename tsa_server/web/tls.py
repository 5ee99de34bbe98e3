"""TLS for the HTTPS listener ([server] tls_certificate, tls_key): TLS 1.2 and 1.3 only,
forward-secret AEAD cipher suites only, and a certificate that can be replaced while the
server runs (SIGHUP) without dropping a connection.

Reloading never touches the context a live connection uses. Each reload builds a new
`ssl.SSLContext` from the files, checks it completely (the key matches the certificate,
the certificate is valid now), and only then becomes the one new handshakes use: the
listener's own context hands every incoming handshake over to the current one from its
server-name callback, which OpenSSL calls for every ClientHello, with or without SNI.
A reload that fails keeps the certificate in service and says why.

The key file is a secret: it must not be readable or writable by others (mode 0600 or
0640 for a group such as ssl-cert), like the PIN file.
"""

from __future__ import annotations

import logging
import ssl
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from tsa_server.errors import ConfigError

log = logging.getLogger("tsa.tls")

#: TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only (the
#: Mozilla "intermediate" profile less its finite-field DHE). TLS 1.3 suites are all
#: AEAD and stay OpenSSL's defaults.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


@dataclass(frozen=True)
class LoadedCertificate:
    """What was put in service: for the log line and `tsa serve`'s banner."""

    subject: str
    serial: int
    not_after: datetime

    def describe(self) -> str:
        return (
            f"{self.subject} (serial {self.serial:x}, valid until "
            f"{self.not_after.strftime('%Y-%m-%d %H:%M UTC')})"
        )


def _base_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


def check_key_file(path: Path) -> None:
    """The TLS key must be private to its owner (and group): never readable by others."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"[server] tls_key: cannot read {path}: {exc.strerror}") from None
    if mode & 0o007:
        raise ConfigError(
            f"[server] tls_key: {path} is accessible to others (mode {mode:04o}): "
            f"chmod 600 {path} (or 640 with a group of the service user)"
        )


def load_context(
    certificate: Path, key: Path, now: datetime | None = None
) -> tuple[ssl.SSLContext, LoadedCertificate]:
    """A server context holding `certificate` (PEM, leaf first, then intermediates) and
    its `key` (PEM), after checking the pair; ConfigError says what is wrong."""
    check_key_file(key)
    try:
        pem = certificate.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"[server] tls_certificate: cannot read {certificate}: {exc.strerror}"
        ) from None
    try:
        leaf = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError(
            f"[server] tls_certificate: {certificate} does not start with a PEM certificate"
        ) from None
    when = now or datetime.now(UTC)
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise ConfigError(
            f"[server] tls_certificate: {certificate} is not valid now (valid "
            f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
        )
    context = _base_context()
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"[server] tls_key: {key} does not fit {certificate} or is not a PEM key "
            f"without a passphrase ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"[server] tls_key: cannot read {key}: {exc.strerror}") from None
    loaded = LoadedCertificate(
        leaf.subject.rfc4514_string(), leaf.serial_number, leaf.not_valid_after_utc
    )
    return context, loaded


class ReloadableTls:
    """The HTTPS listener's context; `reload()` swaps the certificate for new handshakes."""

    def __init__(self, certificate: Path, key: Path) -> None:
        self._certificate = certificate
        self._key = key
        self._current, self.loaded = load_context(certificate, key)
        self.context = _base_context()
        # The listener's context only dispatches: each handshake continues on the
        # context in service when its ClientHello arrives.
        self.context.sni_callback = self._dispatch
        # Without a certificate of its own OpenSSL would refuse before the callback;
        # the one in service serves (and is replaced per handshake anyway).
        self.context.load_cert_chain(certificate, key)

    def _dispatch(
        self,
        connection: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        _: ssl.SSLContext,
    ) -> None:
        connection.context = self._current
        return None

    def reload(self) -> bool:
        """Load the files again; True when the new certificate is in service. On any
        problem the previous certificate stays in service and the reason is logged."""
        try:
            context, loaded = load_context(self._certificate, self._key)
        except ConfigError as exc:
            log.error("TLS certificate not reloaded, the previous one stays: %s", exc)
            return False
        self._current, self.loaded = context, loaded
        log.warning("TLS certificate reloaded: %s", loaded.describe())
        return True

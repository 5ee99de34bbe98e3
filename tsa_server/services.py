"""Build the server's parts from the configuration: the one place that wires them.

The app factory receives what this module builds and reads no globals. Start-up checks
fail closed with a message that says what is wrong: the token, the key, the
certificate (match, EKU, validity), the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from ledger.store.sqlite import SqliteStore
from tsa_server.clock.base import Clock
from tsa_server.clock.ntp import NtpMonitor
from tsa_server.config import Config
from tsa_server.errors import CertificateError, ConfigError
from tsa_server.issuance import IssuanceSettings, Issuer
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.signing.certs import check_tsa_certificate, load_certificates, to_pem
from tsa_server.signing.pkcs11 import Pkcs11Signer, TokenLocation


@dataclass
class Services:
    config: Config
    signer: Pkcs11Signer
    store: SqliteStore
    clock: Clock
    issuer: Issuer
    chain: list[asn1_x509.Certificate]

    @property
    def chain_pem(self) -> bytes:
        return b"".join(to_pem(c.dump()) for c in self.chain)

    def close(self) -> None:
        self.store.close()
        self.signer.close()


def token_location(config: Config) -> TokenLocation:
    conf = config.pkcs11
    softhsm = conf.softhsm_conf if conf.softhsm_conf and Path(conf.softhsm_conf).exists() else None
    return TokenLocation(conf.module, conf.token_label, config.pin(), softhsm)


def load_chain(config: Config) -> list[asn1_x509.Certificate]:
    path = Path(config.certificates.chain)
    try:
        chain = load_certificates(path.read_bytes())
    except OSError:
        raise ConfigError(
            f"no TSA certificate chain at {path}: run `tsa init` or `tsa keys import-chain`"
        ) from None
    except ValueError:
        raise CertificateError(f"{path} does not hold PEM or DER certificates") from None
    if not chain:
        raise CertificateError(f"{path} holds no certificate")
    return chain


def build_template(
    config: Config, signer: Pkcs11Signer, chain: list[asn1_x509.Certificate]
) -> TokenTemplate:
    tsa_name = None
    if config.tsa.tsa_name:
        from tsa_server.signing.certs import name_from_text

        tsa_name = name_from_text(config.tsa.tsa_name)
    return TokenTemplate(
        signer.key_spec,
        chain,
        rsa_pss=signer.rsa_pss,
        tsa_name=tsa_name,
        include_chain=config.tsa.include_chain,
    )


def build_services(
    config: Config, *, clock: Clock | None = None, now: datetime | None = None
) -> Services:
    """Open the token, check the certificate against it, open the ledger, make the issuer."""
    signer = Pkcs11Signer(
        token_location(config), config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss
    )
    try:
        chain = load_chain(config)
        check_tsa_certificate(chain[0], signer.public_key_info(), now or datetime.now(UTC))
        template = build_template(config, signer, chain)
        store = SqliteStore(config.ledger.path)
    except BaseException:
        signer.close()
        raise
    clock = clock or NtpMonitor(config.clock)
    profile = Profile(frozenset(config.tsa.accepted_hashes), config.tsa.policies)
    settings = IssuanceSettings(
        max_batch=config.tsa.max_batch,
        max_accuracy=_ms(config.tsa.max_accuracy_ms),
    )
    issuer = Issuer(
        template=template,
        signer=signer,
        clock=clock,
        store=store,
        profile=profile,
        settings=settings,
    )
    return Services(config, signer, store, clock, issuer, chain)


def _ms(value: float):
    from datetime import timedelta

    return timedelta(milliseconds=value)

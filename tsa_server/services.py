"""Build the server's parts from the configuration: the one place that wires them.

The app factory receives what this module builds and reads no globals. Start-up checks
fail closed with a message that says what is wrong: the token, the key, the
certificate (match, EKU, validity), the ledger.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from ledger.store.sqlite import SqliteStore
from tsa_server.clock.base import Clock
from tsa_server.clock.ntp import NtpMonitor
from tsa_server.config import Config
from tsa_server.errors import CertificateError, ConfigError
from tsa_server.evidence.blobs import FileBlobStore
from tsa_server.evidence.store import EvidenceStore
from tsa_server.issuance import IssuanceSettings, Issuer
from tsa_server.publisher import CheckpointPublisher
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import BindingEncoder, TokenTemplate
from tsa_server.rfc3161.verify_load import CertificateDecodeError
from tsa_server.rfc3161.verify_load import load_certificates as load_any_certificates
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
    trust_roots: list[asn1_x509.Certificate] = field(default_factory=list)
    publisher: CheckpointPublisher | None = None
    checkpoint_signer: Pkcs11Signer | None = None
    evidence: EvidenceStore | None = None
    blobs: FileBlobStore | None = None

    @property
    def chain_pem(self) -> bytes:
        return b"".join(to_pem(c.dump()) for c in self.chain)

    def close(self) -> None:
        if self.evidence is not None:
            self.evidence.close()
        self.store.close()
        self.signer.close()
        if self.checkpoint_signer is not None:
            self.checkpoint_signer.close()


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


def load_trust_roots(config: Config) -> list[asn1_x509.Certificate]:
    """The verification trust roots: every certificate in [verify] trust_roots (a
    directory of PEM/DER files), or, when it is missing or holds no file, the
    [certificates] ca file. An unreadable or undecodable file is a ConfigError naming it;
    an absent CA file gives no roots (every verification then fails its chain check)."""
    directory = Path(config.verify.trust_roots)
    files: list[Path] = []
    if directory.exists():
        if not directory.is_dir():
            raise ConfigError(f"[verify] trust_roots: {directory} is not a directory")
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.name[:1] != ".")
    if not files:
        ca = Path(config.certificates.ca)
        if not ca.exists():
            return []
        files = [ca]
    roots: list[asn1_x509.Certificate] = []
    for path in files:
        try:
            found = load_any_certificates(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read trust root {path}: {exc.strerror}") from None
        except CertificateDecodeError as exc:
            raise ConfigError(f"trust root {path} is not PEM or DER certificates: {exc}") from None
        if not found:
            raise ConfigError(f"trust root {path} holds no certificate")
        roots.extend(found)
    return roots


def build_template(
    config: Config, signer: Pkcs11Signer, chain: list[asn1_x509.Certificate]
) -> TokenTemplate:
    return TokenTemplate(
        signer.key_spec,
        chain,
        rsa_pss=signer.rsa_pss,
        include_tsa_name=config.tsa.include_tsa_name,
        include_chain=config.tsa.include_chain,
    )


def build_services(
    config: Config, *, clock: Clock | None = None, now: datetime | None = None
) -> Services:
    """Open the token, check the certificate against it, open the ledger, make the issuer."""
    trust_roots = load_trust_roots(config)
    if not trust_roots:
        logging.getLogger("tsa.services").warning(
            "no verification trust roots (%s is empty and %s is missing): "
            "POST /verify will find no token valid",
            config.verify.trust_roots,
            config.certificates.ca,
        )
    signer = Pkcs11Signer(
        token_location(config), config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss
    )
    try:
        chain = load_chain(config)
        check_tsa_certificate(chain[0], signer.public_key_info(), now or datetime.now(UTC))
        template = build_template(config, signer, chain)
        checkpoint_signer = Pkcs11Signer(token_location(config), config.ledger.checkpoint_key_label)
    except BaseException:
        signer.close()
        raise
    try:
        store = SqliteStore(config.ledger.path)
    except BaseException:
        signer.close()
        checkpoint_signer.close()
        raise
    binding = BindingEncoder(config.ledger.origin) if config.ledger.ledger_binding else None
    publisher = CheckpointPublisher(
        store,
        checkpoint_signer,
        config.ledger.origin,
        Path(config.ledger.checkpoint_dir),
        on_publish=(lambda c: binding.set_anchor(c.size, c.root)) if binding else None,
    )
    try:
        publisher.check_rollback()
    except BaseException:
        store.close()
        signer.close()
        checkpoint_signer.close()
        raise
    latest = store.latest_checkpoint()
    if binding is not None and latest is not None:
        binding.set_anchor(latest.size, latest.root)
    clock = clock or NtpMonitor(config.clock)
    profile = Profile(frozenset(config.tsa.accepted_hashes), config.tsa.policies)
    settings = IssuanceSettings(
        max_batch=config.tsa.max_batch,
        max_accuracy=_ms(config.tsa.max_accuracy_ms),
        certificate_not_after=chain[0]["tbs_certificate"]["validity"]["not_after"].native,
    )
    issuer = Issuer(
        template=template,
        signer=signer,
        clock=clock,
        store=store,
        profile=profile,
        settings=settings,
        binding=binding,
    )
    services = Services(
        config, signer, store, clock, issuer, chain, trust_roots, publisher, checkpoint_signer
    )
    try:
        services.evidence, services.blobs = open_evidence(config)
    except BaseException:
        services.close()
        raise
    return services


def open_evidence(config: Config) -> tuple[EvidenceStore, FileBlobStore]:
    """The evidence database and the blob store of [evidence]."""
    conf = config.evidence
    try:
        blobs = FileBlobStore(conf.blobs, max_bytes=conf.max_upload_bytes)
        blobs.sweep_temp()
    except OSError as exc:
        raise ConfigError(f"[evidence] blobs: cannot use {conf.blobs}: {exc.strerror}") from None
    try:
        evidence = EvidenceStore(conf.path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"[evidence] path: cannot open {conf.path}: {exc}") from None
    return evidence, blobs


def _ms(value: float):
    from datetime import timedelta

    return timedelta(milliseconds=value)

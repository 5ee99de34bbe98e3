"""Build the server's parts from the configuration: the one place that wires them.

The app factory receives what this module builds and reads no globals. Start-up checks
fail closed with a message that says what is wrong: the token, the key, the
certificate (match, EKU, validity), the ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from ledger.store.base import Reader, SignedCheckpoint, Store
from tsa_server.clock.base import Clock
from tsa_server.clock.ntp import NtpMonitor
from tsa_server.config import Config
from tsa_server.errors import CertificateError, ConfigError
from tsa_server.evidence.blobs import BlobStore
from tsa_server.evidence.served import open_evidence_service
from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.store import EvidenceStore
from tsa_server.issuance import ops_inbox, rotation
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.issuance.opslog import OpsLog, canonical
from tsa_server.issuance.publisher import CheckpointPublisher
from tsa_server.issuance.rotation import KeyRotation
from tsa_server.names.timestamping import NamesService, open_names
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import BindingEncoder, TokenTemplate
from tsa_server.rfc3161.verify_load import CertificateDecodeError, load_certificates
from tsa_server.signing.base import Signer
from tsa_server.signing.certs import check_tsa_certificate, to_pem
from tsa_server.signing.pkcs11 import Pkcs11Signer, TokenLocation
from tsa_server.signing.pool import batch_signer_for
from tsa_server.wiring.databases import (
    names_database,
    open_blobs,
    open_evidence_store,
    open_ledger,
    publish_logs,
)


@dataclass
class LedgerLog:
    """One published log: its store, checkpoint publisher and origin, and how to open
    another reader of it (the web layer's read threads each open their own)."""

    store: Store
    publisher: CheckpointPublisher
    open_reader: Callable[[], Reader]

    @property
    def origin(self) -> str:
        return self.publisher.origin


@dataclass
class Services:
    """Everything the server runs on, built from the configuration by build_services;
    consumers see the interfaces (Signer, Store, Clock...), not the classes chosen here."""

    config: Config
    signer: Signer
    store: Store
    clock: Clock
    issuer: Issuer
    chain: list[asn1_x509.Certificate]
    trust_roots: list[asn1_x509.Certificate] = field(default_factory=list)
    logs: dict[str, LedgerLog] = field(default_factory=dict)  # "tokens", "ops"
    ops: OpsLog | None = None
    evidence: EvidenceStore | None = None
    blobs: BlobStore | None = None
    names: NamesService | None = None
    evidence_service: EvidenceService | None = None  # deposits, credits, renewals
    resources: ExitStack = field(default_factory=ExitStack)  # closed by close()
    rotation: KeyRotation | None = None  # applies the key schedule (tsa keys activate)

    @property
    def publisher(self) -> CheckpointPublisher | None:
        log = self.logs.get("tokens")
        return log.publisher if log else None

    @property
    def chain_pem(self) -> bytes:
        return b"".join(to_pem(c.dump()) for c in self.chain)

    def close(self) -> None:
        self.resources.close()


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
            found = load_certificates(path.read_bytes())
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
    config: Config,
    *,
    clock: Clock | None = None,
    now: datetime | None = None,
    new_ledger: bool = False,
) -> Services:
    """Open the token, check the certificate against it, open the ledgers (refusing a
    rolled-back one), and make the issuer. Whatever was opened is closed on failure."""
    with ExitStack() as stack:
        services = _build(config, stack, clock, now, new_ledger)
        services.resources = stack.pop_all()
        return services


def _build(
    config: Config,
    stack: ExitStack,
    clock: Clock | None,
    now: datetime | None,
    new_ledger: bool,
) -> Services:
    trust_roots = load_trust_roots(config)
    if not trust_roots:
        logging.getLogger("tsa.services").warning(
            "no verification trust roots (%s is empty and %s is missing): "
            "POST /verify will find no token valid",
            config.verify.trust_roots,
            config.certificates.ca,
        )
    location = token_location(config)
    # The key schedule decides once a key was activated (issuance/rotation.py).
    key_label, chain = rotation.active_source(
        config, now or datetime.now(UTC), lambda: load_chain(config)
    )
    signer = Pkcs11Signer(location, key_label, rsa_pss=config.pkcs11.rsa_pss)
    stack.callback(signer.close)
    check_tsa_certificate(chain[0], signer.public_key_info(), now or datetime.now(UTC))
    template = build_template(config, signer, chain)
    checkpoint_signer = Pkcs11Signer(location, config.ledger.checkpoint_key_label)
    stack.callback(checkpoint_signer.close)

    ledger = config.ledger
    store, open_tokens = open_ledger(config, "tokens")
    stack.callback(store.close)
    ops_store, open_ops = open_ledger(config, "ops")
    stack.callback(ops_store.close)
    tokens_log = LedgerLog(
        store,
        CheckpointPublisher(store, checkpoint_signer, ledger.origin, Path(ledger.checkpoint_dir)),
        open_tokens,
    )
    ops_log = LedgerLog(
        ops_store,
        CheckpointPublisher(
            ops_store, checkpoint_signer, ledger.ops_origin, Path(ledger.ops_checkpoint_dir)
        ),
        open_ops,
    )
    ops_log.publisher.check_rollback(new_ledger=new_ledger)
    ops = OpsLog(ops_store)
    if config.database.url:
        vkeys = {"tokens": tokens_log.publisher.vkey, "ops": ops_log.publisher.vkey}
        publish_logs(config, vkeys, b"".join(to_pem(c.dump()) for c in chain), ops)
    witness = ops.last_checkpoint(ledger.origin)
    tokens_log.publisher.check_rollback(witness, new_ledger=new_ledger)
    for log in (tokens_log, ops_log):
        log.publisher.sweep_temporary_files()
    ops.record(
        "start",
        tsa_certificate_sha256=hashlib.sha256(chain[0].dump()).hexdigest(),
        tsa_key_label=key_label,
        checkpoint_vkey=tokens_log.publisher.vkey,
        policies=list(config.tsa.policies),
        # The whole configuration (it holds no secret), so any change shows between starts.
        config_sha256=hashlib.sha256(canonical(dataclasses.asdict(config))).hexdigest(),
        ledger_size=store.size(),
    )
    ops_inbox.drain(ledger.ops_inbox_dir, ops)  # what the tools left while it was stopped

    binding = BindingEncoder(ledger.origin) if ledger.ledger_binding else None
    latest = store.latest_checkpoint()
    if binding is not None and latest is not None:
        binding.set_anchor(latest.size, latest.root)

    def on_checkpoint(checkpoint: SignedCheckpoint) -> None:
        if binding is not None:
            binding.set_anchor(checkpoint.size, checkpoint.root)
        ops.record_safely(
            "checkpoint",
            origin=ledger.origin,
            size=checkpoint.size,
            root=checkpoint.root.hex(),
            chain_head=checkpoint.chain_head.hex(),
        )

    tokens_log.publisher.on_publish = on_checkpoint
    clock = clock or NtpMonitor(
        config.clock,
        # Every loss and regain of sync, step, falseticker...: status.details() says which.
        on_change=lambda status: ops.record_safely("clock", **status.details()),
    )
    batch_signer = batch_signer_for(
        signer,
        location,
        key_label,
        rsa_pss=config.pkcs11.rsa_pss,
        workers=config.tsa.signing_workers,
    )
    stack.callback(batch_signer.close)
    issuer = Issuer(
        template=template,
        signer=signer,
        clock=clock,
        store=store,
        profile=Profile(frozenset(config.tsa.accepted_hashes), config.tsa.policies),
        settings=IssuanceSettings(
            max_batch=config.tsa.max_batch,
            max_accuracy=_ms(config.tsa.max_accuracy_ms),
            certificate_not_after=chain[0]["tbs_certificate"]["validity"]["not_after"].native,
            max_in_flight=config.tsa.max_in_flight,
            key_expiry_warning=timedelta(days=config.tsa.key_expiry_warning_days),
        ),
        binding=binding,
        batch_signer=batch_signer,
        key=rotation.make_key(config, key_label, signer, batch_signer, chain),
    )
    stack.callback(issuer.close)
    issuer.keys.earlier = rotation.earlier_chains(config, lambda: load_chain(config))
    key_rotation = rotation.KeyRotation(config, location, issuer, ops, clock)
    stack.callback(key_rotation.close)
    evidence, blobs = open_evidence(config)
    stack.callback(blobs.close)
    stack.callback(evidence.close)
    names = open_names(config.names, issuer, ops, names_database(config))
    if names is not None:
        stack.callback(names.store.close)
    return Services(
        config,
        signer,
        store,
        clock,
        issuer,
        chain,
        trust_roots,
        logs={"tokens": tokens_log, "ops": ops_log},
        ops=ops,
        evidence=evidence,
        blobs=blobs,
        names=names,
        evidence_service=open_evidence_service(config.evidence, evidence, blobs, issuer, ops),
        rotation=key_rotation,
    )


def open_evidence(config: Config) -> tuple[EvidenceStore, BlobStore]:
    """The evidence database and the store of originals (databases.open_blobs)."""
    blobs = open_blobs(config)
    try:
        return open_evidence_store(config), blobs
    except BaseException:
        blobs.close()
        raise


def _ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)

"""Key ceremony: the token, the keys in it, and the certificates that describe them.

`initialise` makes the embedded development setup (SoftHSM token under var/, a
non-extractable signing key, a development root CA whose key also lives in the token,
a TSA certificate, and the document-signing key that signs evidence certificate PDFs with
its certificate from the development CA) and reuses whatever already exists, so it is
idempotent.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tsa_server.config import Config
from tsa_server.errors import CertificateError
from tsa_server.rfc3161.verify_load import load_certificates
from tsa_server.signing.base import KeySpec
from tsa_server.signing.certs import (
    check_tsa_certificate,
    issue_certificate,
    make_csr,
    name_from_text,
    to_pem,
)
from tsa_server.signing.document_cert import issue_document_certificate
from tsa_server.signing.pkcs11 import (
    Pkcs11Signer,
    TokenLocation,
    generate_key,
    init_softhsm_token,
    open_session,
    softhsm_token_exists,
)
from tsa_server.wiring import load_chain, token_location

DEV_CA_NAME = ("TSA Development Root CA", "Development only - not trusted")
DEV_TSA_NAME = ("TSA Development Signer", "Development only - not trusted")
DEV_DOCUMENT_NAME = ("TSA Development Document Signer", "Development only - not trusted")


@dataclass(frozen=True)
class InitReport:
    created: tuple[str, ...]
    ca_file: Path


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def ensure_softhsm_token(config: Config, created: list[str]) -> None:
    """Create the SoftHSM config, PIN files and token when they do not exist yet."""
    conf = config.pkcs11
    if "softhsm" not in conf.module or not conf.softhsm_conf:
        return
    softhsm_conf = Path(conf.softhsm_conf).resolve()
    if softhsm_token_exists(softhsm_conf, conf.token_label):
        return
    if not os.environ.get(conf.pin_env) and not Path(conf.pin_file).exists():
        _write_secret(Path(conf.pin_file), secrets.token_hex(16))
        created.append(f"token PIN file {conf.pin_file} (mode 0600)")
    so_pin_file = Path(conf.pin_file).with_name("so-pin")
    if not so_pin_file.exists():
        _write_secret(so_pin_file, secrets.token_hex(16))
    init_softhsm_token(
        softhsm_conf,
        softhsm_conf.parent / "softhsm" / "tokens",
        conf.token_label,
        config.pin(),
        so_pin_file.read_text().strip(),
    )
    created.append(f"SoftHSM token {conf.token_label!r} ({softhsm_conf})")


def ensure_key(location: TokenLocation, label: str, spec: KeySpec, created: list[str]) -> None:
    session = open_session(location, rw=True)
    try:
        try:
            generate_key(session, spec, label)
        except ValueError:
            return  # already there: reuse it
        created.append(f"{spec.value} key {label!r} in the token (non-extractable)")
    finally:
        session.close()


def make_dev_certificates(config: Config, location: TokenLocation, now: datetime) -> None:
    """A development root CA (key in the token) and a TSA certificate for the signing key."""
    ca_signer = Pkcs11Signer(location, config.certificates.ca_key_label)
    tsa_signer = Pkcs11Signer(location, config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss)
    try:
        ca_cert = issue_certificate(
            ca_signer,
            None,
            name_from_text(*DEV_CA_NAME),
            ca_signer.public_key_info(),
            now=now,
            days=3650,
            ca=True,
        )
        tsa_cert = issue_certificate(
            ca_signer,
            ca_cert,
            name_from_text(*DEV_TSA_NAME),
            tsa_signer.public_key_info(),
            now=now,
            days=825,
            ca=False,
        )
    finally:
        ca_signer.close()
        tsa_signer.close()
    ca_path, chain_path = Path(config.certificates.ca), Path(config.certificates.chain)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    chain_path.parent.mkdir(parents=True, exist_ok=True)
    ca_path.write_bytes(to_pem(ca_cert.dump()))
    chain_path.write_bytes(to_pem(tsa_cert.dump()) + to_pem(ca_cert.dump()))


def initialise(
    config: Config,
    now: datetime | None = None,
    *,
    migrate_database: Callable[[str], int] | None = None,
) -> InitReport:
    """Idempotent first-run setup of the embedded development configuration;
    `migrate_database(url)` brings a [database] PostgreSQL schema up to date."""
    now = now or datetime.now(UTC)
    created: list[str] = []
    ensure_softhsm_token(config, created)
    location = token_location(config)
    ensure_key(location, config.pkcs11.key_label, KeySpec(config.pkcs11.key_type), created)
    ensure_key(location, config.ledger.checkpoint_key_label, KeySpec.ED25519, created)
    if not Path(config.certificates.chain).exists():
        ensure_key(location, config.certificates.ca_key_label, KeySpec.EC_P256, created)
        make_dev_certificates(config, location, now)
        created.append(
            f"development CA {config.certificates.ca} and TSA chain {config.certificates.chain}"
        )
    check_chain(config, location, now)
    ensure_document_key(config, location, now, created)
    if config.database.url and migrate_database is not None:
        applied = migrate_database(config.database.url)
        if applied:
            created.append(f"database schema ({applied} migration(s))")
    else:
        for path in (config.ledger.path, config.ledger.ops_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return InitReport(tuple(created), Path(config.certificates.ca))


def ensure_document_key(
    config: Config, location: TokenLocation, now: datetime, created: list[str]
) -> None:
    """The document-signing key (EC P-256, in the token) and, while the development CA's
    key is in the token, its certificate from that CA (a production CA certifies
    `tsa keys csr --label <document_key_label>` instead)."""
    conf = config.certificates
    ensure_key(location, conf.document_key_label, KeySpec.EC_P256, created)
    chain_path = conf.document_chain_path
    if chain_path.exists() or not Path(conf.ca).exists():
        return
    try:
        ca_signer = Pkcs11Signer(location, conf.ca_key_label)
    except Exception:  # noqa: BLE001 - no development CA in this token: nothing to issue
        return
    doc_signer = Pkcs11Signer(location, conf.document_key_label)
    try:
        (ca_cert,) = load_certificates(Path(conf.ca).read_bytes())[:1]
        cert = issue_document_certificate(
            ca_signer,
            ca_cert,
            name_from_text(*DEV_DOCUMENT_NAME),
            doc_signer.public_key_info(),
            now=now,
        )
    finally:
        ca_signer.close()
        doc_signer.close()
    chain_path.parent.mkdir(parents=True, exist_ok=True)
    chain_path.write_bytes(to_pem(cert.dump()) + to_pem(ca_cert.dump()))
    created.append(f"document-signing certificate {chain_path} (development CA)")


def check_chain(config: Config, location: TokenLocation, now: datetime) -> None:
    signer = Pkcs11Signer(location, config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss)
    try:
        check_tsa_certificate(load_chain(config)[0], signer.public_key_info(), now)
    finally:
        signer.close()


def write_csr(
    config: Config, subject: str, organization: str | None, label: str | None = None
) -> bytes:
    """A CSR signed by key `label` (default: the configuration's key_label)."""
    signer = Pkcs11Signer(
        token_location(config), label or config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss
    )
    try:
        return to_pem(
            make_csr(signer, name_from_text(subject, organization)).dump(), "CERTIFICATE REQUEST"
        )
    finally:
        signer.close()


def import_chain(config: Config, data: bytes, now: datetime | None = None) -> int:
    """Install a CA-issued chain (TSA certificate first) after checking it fits the key."""
    try:
        chain = load_certificates(data)
    except ValueError:
        raise CertificateError("the file does not hold PEM or DER certificates") from None
    if not chain:
        raise CertificateError("the file holds no certificate")
    signer = Pkcs11Signer(
        token_location(config), config.pkcs11.key_label, rsa_pss=config.pkcs11.rsa_pss
    )
    try:
        check_tsa_certificate(chain[0], signer.public_key_info(), now or datetime.now(UTC))
    finally:
        signer.close()
    path = Path(config.certificates.chain)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(to_pem(c.dump()) for c in chain))
    os.replace(tmp, path)
    return len(chain)

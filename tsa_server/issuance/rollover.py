"""The key rollover steps of `tsa keys`: import a CA-issued chain for a key that is not
the active one, schedule its activation, list the schedule, and (development only)
have the development CA sign a CSR.

Every step checks before it changes anything and refuses with one line that says what
is wrong; the schedule is changed under its lock and replaced atomically
(signing/schedule.py). The running server applies the schedule (issuance/rotation.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tsa_server.config import Config
from tsa_server.errors import CertificateError
from tsa_server.issuance.rotation import certificate_retirement, scheduled_chain
from tsa_server.rfc3161.verify_load import load_certificates
from tsa_server.signing import schedule
from tsa_server.signing.certs import check_tsa_certificate, to_pem
from tsa_server.signing.pkcs11 import Pkcs11Signer
from tsa_server.signing.schedule import ScheduledKey, ScheduleError, text_of
from tsa_server.wiring import load_chain, token_location

#: How far in the past `--at` may be (the time it takes to type the command).
PAST_TOLERANCE = timedelta(seconds=5)


def key_public_info(config: Config, label: str) -> bytes:
    """The SubjectPublicKeyInfo of key `label` in the token (SignerUnavailable if none)."""
    signer = Pkcs11Signer(token_location(config), label, rsa_pss=config.pkcs11.rsa_pss)
    try:
        return signer.public_key_info()
    finally:
        signer.close()


def parse_chain(data: bytes) -> list[asn1_x509.Certificate]:
    try:
        chain = load_certificates(data)
    except ValueError:
        raise CertificateError("the file does not hold PEM or DER certificates") from None
    if not chain:
        raise CertificateError("the file holds no certificate")
    return chain


def check_links(chain: list[asn1_x509.Certificate]) -> None:
    """Each certificate of the file is signed by the next one (the TSA certificate
    first, its CA after it), so verifiers can build the path the file promises."""
    loaded = [x509.load_der_x509_certificate(cert.dump()) for cert in chain]
    for position, (cert, issuer) in enumerate(itertools.pairwise(loaded), start=1):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError(
                f"certificate {position} of the file is not issued by certificate "
                f"{position + 1}: give the chain in order, the TSA certificate first"
            ) from None


def validity(cert: asn1_x509.Certificate) -> tuple[datetime, datetime]:
    period = cert["tbs_certificate"]["validity"]
    return period["not_before"].native, period["not_after"].native


def import_key_chain(config: Config, label: str, data: bytes, now: datetime) -> ScheduledKey:
    """Check the chain fits key `label` (its public key, the critical timeStamping EKU
    only, not expired, usage period not over), copy it beside the schedule and add the
    key to the schedule, not yet activated."""
    schedule.check_label(label)
    chain = parse_chain(data)
    check_links(chain)
    leaf = chain[0]
    not_before, not_after = validity(leaf)
    check_tsa_certificate(leaf, key_public_info(config, label), max(now, not_before))
    retirement = certificate_retirement(leaf, config.tsa.key_usage_months)
    if now >= retirement.at:
        raise CertificateError(f"refused: {retirement.text}")
    path = config.certificates.key_schedule_path
    with schedule.locked(path):
        plan = schedule.load(path)
        known = plan.get(label)
        if known is not None and known.activate_at is not None and known.activate_at <= now:
            raise ScheduleError(
                f"key {label!r} was activated at {text_of(known.activate_at)}: its chain "
                "stays; give a new certificate to a new key"
            )
        name = schedule.chain_file_name(label)
        schedule.write_private(path.parent / name, b"".join(to_pem(c.dump()) for c in chain))
        entry = ScheduledKey(
            label, name, hashlib.sha256(leaf.dump()).hexdigest(), not_before, not_after
        )
        schedule.save(path, plan.with_key(entry))
    return entry


@dataclass(frozen=True)
class Activation:
    key: ScheduledKey
    at: datetime
    retires_at: datetime
    replaces: str


def activate(config: Config, label: str, at: datetime | None, now: datetime) -> Activation:
    """Schedule key `label` to become the signing key at `at` (None: now)."""
    at = schedule.to_ms(at or now)
    if at < now - PAST_TOLERANCE:
        raise ScheduleError(f"{text_of(at)} is in the past: give a later instant or 'now'")
    path = config.certificates.key_schedule_path
    with schedule.locked(path):
        plan = schedule.load(path)
        key = plan.get(label)
        if key is None:
            raise ScheduleError(
                f"key {label!r} has no imported chain: run `tsa keys import-chain --label "
                f"{label} CHAIN_FILE` first"
            )
        if key.activate_at is not None and key.activate_at <= now:
            when = text_of(key.activate_at)
            raise ScheduleError(f"key {label!r} was already activated at {when}")
        chain = scheduled_chain(path, key)
        try:
            check_tsa_certificate(chain[0], key_public_info(config, label), at)
        except CertificateError as exc:
            raise CertificateError(f"key {label!r} cannot sign at {text_of(at)}: {exc}") from None
        retirement = certificate_retirement(chain[0], config.tsa.key_usage_months)
        if at >= retirement.at:
            raise ScheduleError(f"key {label!r} cannot sign at {text_of(at)}: {retirement.text}")
        current = plan.active_at(at - timedelta(milliseconds=1))
        replaces = current.label if current is not None else config.pkcs11.key_label
        schedule.save(path, plan.activated(label, at))
    return Activation(key, at, retirement.at, replaces)


def key_rows(config: Config, now: datetime) -> list[dict[str, Any]]:
    """Every key the schedule knows, and the initial one: its state at `now` (active,
    scheduled, retired, imported), activation, certificate and retirement."""
    path = config.certificates.key_schedule_path
    plan = schedule.load(path)
    active = plan.active_at(now)
    rows: list[dict[str, Any]] = []
    initial = config.pkcs11.key_label
    if plan.get(initial) is None:
        try:
            leaf: asn1_x509.Certificate | None = load_chain(config)[0]
        except CertificateError:
            leaf = None
        except Exception:  # noqa: BLE001 - a missing chain is shown as such
            leaf = None
        rows.append(_row(config, initial, leaf, None, "active" if active is None else "retired"))
    for key in plan.keys:
        if key.activate_at is None:
            state = "imported"
        elif key.activate_at > now:
            state = "scheduled"
        else:
            state = "active" if active is not None and active.label == key.label else "retired"
        try:
            cert: asn1_x509.Certificate | None = scheduled_chain(path, key)[0]
        except CertificateError:
            cert = None
        rows.append(_row(config, key.label, cert, key.activate_at, state))
    return rows


def _row(
    config: Config,
    label: str,
    cert: asn1_x509.Certificate | None,
    activate_at: datetime | None,
    state: str,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "label": label,
        "state": state,
        "activate_at": text_of(activate_at) if activate_at else None,
    }
    if cert is None:
        row["problem"] = "certificate chain missing or altered"
        return row
    retirement = certificate_retirement(cert, config.tsa.key_usage_months)
    row.update(
        certificate_sha256=hashlib.sha256(cert.dump()).hexdigest(),
        not_before=text_of(validity(cert)[0]),
        not_after=text_of(retirement.not_after),
        usage_ends=text_of(retirement.usage_end),
        retires_at=text_of(retirement.at),
    )
    return row


def dev_sign(config: Config, csr_pem: bytes, days: int, now: datetime) -> bytes:
    """Development only: the development CA ([certificates] ca and its key in the token)
    issues a TSA certificate for a CSR; returns the chain (TSA certificate, CA) in PEM."""
    from cryptography import x509 as crypto_x509
    from cryptography.hazmat.primitives import serialization

    from tsa_server.signing.certs import issue_certificate

    try:
        request = crypto_x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CertificateError("the file is not a PEM certificate request") from None
    if not request.is_signature_valid:
        raise CertificateError("the certificate request's signature does not verify")
    spki = request.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ca_cert = parse_chain(Path(config.certificates.ca).read_bytes())[0]
    subject = asn1_x509.Name.load(request.subject.public_bytes())
    ca_signer = Pkcs11Signer(token_location(config), config.certificates.ca_key_label)
    try:
        cert = issue_certificate(ca_signer, ca_cert, subject, spki, now=now, days=days, ca=False)
    finally:
        ca_signer.close()
    return to_pem(cert.dump()) + to_pem(ca_cert.dump())


def nudge_server(config: Config) -> int | None:
    """SIGHUP to the server holding `[server] pid_file` (it then reads the schedule at
    once rather than at its next poll); its PID, or None when no server holds the file."""
    try:
        fd = os.open(config.server.pid_file, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it: no server runs on this state directory
        except BlockingIOError:
            pass
        with contextlib.suppress(ValueError, OSError):
            pid = int(os.read(fd, 32).decode().strip())
            os.kill(pid, signal.SIGHUP)
            return pid
        return None
    finally:
        os.close(fd)

"""Configuration: frozen dataclasses read from conf/tsa.toml, failing closed.

Unknown sections or keys, wrong types and values outside their constraints are
`ConfigError`s that name the key. Relative paths are relative to the working directory.
Secrets never live here: the PIN comes from an environment variable or a file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from tsa_server.clock.ntp import NtpSettings
from tsa_server.errors import ConfigError
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY, IMPRINT_HASH_BY_NAME
from tsa_server.signing.base import KeySpec

DEFAULT_CONFIG = "conf/tsa.toml"  # every command's --config default


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 3161
    max_body_bytes: int = 8192
    max_connections: int = 1024
    idle_timeout_s: float = 15.0
    # Every request body (all endpoints): after body_grace_s it must have arrived at
    # body_min_rate_bytes_s on average, and it must be complete within body_timeout_s.
    body_grace_s: float = 10.0
    body_min_rate_bytes_s: int = 16384
    body_timeout_s: float = 900.0
    # Origin printed on certificates and in their QR codes (https://tsa.example.org);
    # empty: http://host:port. Never taken from a request's Host header.
    public_url: str = ""

    @property
    def origin(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class TsaConfig:
    policies: tuple[str, ...] = (DEFAULT_POLICY,)
    accepted_hashes: tuple[str, ...] = DEFAULT_ACCEPTED_HASHES
    include_tsa_name: bool = True
    include_chain: bool = False
    max_accuracy_ms: int = 1000
    max_batch: int = 256
    signing_workers: int = 1  # processes signing off the event loop; 0 signs inline
    max_in_flight: int = 3  # batches being signed at once


@dataclass(frozen=True)
class Pkcs11Config:
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "tsa"
    key_label: str = "tsa-signing"
    key_type: str = "ec-p256"
    rsa_pss: bool = False
    pin_env: str = "TSA_PIN"
    pin_file: str = "var/secrets/pin"
    softhsm_conf: str = "var/softhsm2.conf"


@dataclass(frozen=True)
class CertificatesConfig:
    chain: str = "var/certs/tsa-chain.pem"
    ca: str = "var/certs/ca.pem"
    ca_key_label: str = "dev-ca"


@dataclass(frozen=True)
class LedgerConfig:
    path: str = "var/ledger.sqlite"
    origin: str = "localhost/tsa/ledger/tokens"
    checkpoint_dir: str = "var/ledger/tokens"
    checkpoint_key_label: str = "checkpoint"
    checkpoint_interval_s: float = 5.0
    ledger_binding: bool = True
    public_entries: bool = True
    ops_path: str = "var/ops.sqlite"
    ops_origin: str = "localhost/tsa/ledger/ops"
    ops_checkpoint_dir: str = "var/ledger/ops"
    max_lookup_results: int = 100  # entries (with proofs) one lookup answer holds at most


@dataclass(frozen=True)
class VerifyConfig:
    """Token verification (POST /verify, `tsa verify`)."""

    trust_roots: str = "var/certs/trust"  # directory; empty or missing: [certificates] ca
    time_zone: str = "UTC"  # IANA name, for genTime shown in local time
    max_data_bytes: int = 1 << 30  # largest data file POST /verify hashes
    max_token_bytes: int = 256 * 1024  # largest token POST /verify reads


@dataclass(frozen=True)
class EvidenceConfig:
    """Accounts, API keys, evidence items and stored originals."""

    path: str = "var/evidence.sqlite"  # SQLite file (WAL, synchronous=FULL)
    blobs: str = "var/blobs"  # directory of the content-addressed originals
    max_upload_bytes: int = 1 << 30  # largest original a deposit may upload
    pricing: str = "conf/pricing.toml"  # fee policy (tsa_server.fees.policy); missing: defaults
    renewal_interval_s: float = 60.0  # renewal scheduler period (REC-3: every minute)
    max_batch_items: int = 100  # most items one deposit request may certify
    operators: tuple[str, ...] = ()  # organisation ids whose admin keys grant credit lots
    monthly_item_quota: int = 0  # items certified per organisation per Beijing month; 0: none
    rate_per_second: float = 20.0  # per-API-key token bucket refill (REC-10); 0: no limits
    rate_burst: int = 40  # per-API-key bucket size (requests at once)
    account_rate_factor: int = 4  # organisation bucket = key bucket x this; 0: none
    webhook_timeout_s: float = 5.0  # REC-10 webhook request timeout
    webhook_backoff_min_s: float = 10.0  # wait after a failed delivery; doubles each time
    webhook_backoff_max_s: float = 3600.0  # longest wait between two attempts
    webhook_give_up_s: float = 86400.0  # no attempt later than this after the first
    webhook_concurrency: int = 4  # webhook requests in flight at once
    webhook_poll_s: float = 5.0  # how often due deliveries are looked for
    webhook_per_org_concurrency: int = 2  # requests in flight to one organisation's URL
    webhook_allow_http: bool = False  # plain-http webhook URLs (https only by default)
    # Networks (CIDR) webhooks may reach although they are loopback, private, link-local
    # or reserved; empty: none (only public addresses).
    webhook_allowed_networks: tuple[str, ...] = ()
    max_upload_request_bytes: int = 2 << 30  # total bytes of one upload request


@dataclass(frozen=True)
class LimitsConfig:
    """Per-client token buckets for endpoints anyone may call (docs/security.md).

    Clients are told apart by address (IPv6 by /64), or by the last X-Forwarded-For
    hop when the connection comes from one of trusted_proxies. per_second 0: no limit.
    """

    tsr_per_second: float = 0.0  # POST / and /tsr: off by default
    tsr_burst: int = 200
    verify_per_second: float = 2.0  # POST /verify
    verify_burst: int = 10
    lookup_per_second: float = 10.0  # ledger lookups, proofs, /tokens/{serial}, names check
    lookup_burst: int = 50
    ledger_per_second: float = 200.0  # other public ledger reads (tiles, checkpoints)
    ledger_burst: int = 1000
    trusted_proxies: tuple[str, ...] = ()  # addresses or CIDRs of reverse proxies


@dataclass(frozen=True)
class NamesConfig:
    """The trade-name (字号 / handle) registry: its database, policy and operators."""

    path: str = "var/names.sqlite"  # SQLite file (WAL, synchronous=FULL)
    policy: str = "conf/names.toml"  # registry policy (tsa_server.names.config)
    operators: tuple[str, ...] = ()  # organisation ids whose admin keys decide disputes


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tsa: TsaConfig = field(default_factory=TsaConfig)
    pkcs11: Pkcs11Config = field(default_factory=Pkcs11Config)
    certificates: CertificatesConfig = field(default_factory=CertificatesConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    clock: NtpSettings = field(default_factory=NtpSettings)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    names: NamesConfig = field(default_factory=NamesConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def pin(self) -> str:
        """The token PIN: the environment variable first, then the PIN file."""
        value = os.environ.get(self.pkcs11.pin_env)
        if value:
            return value
        path = Path(self.pkcs11.pin_file)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigError(
                    f"the PIN file {path} is readable or writable by others (mode "
                    f"{mode:04o}): make it private to the service user (chmod 600 {path})"
                )
            value = path.read_text().strip()
        except OSError:
            raise ConfigError(
                f"no token PIN: set ${self.pkcs11.pin_env} or create {self.pkcs11.pin_file}"
            ) from None
        if not value:
            raise ConfigError(f"the PIN file {self.pkcs11.pin_file} is empty")
        return value


def _coerce(section: str, key: str, expected: Any, value: Any) -> Any:
    where = f"[{section}] {key}"
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _section(cls: type, name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)}")
    values = {}
    for key, value in raw.items():
        hint = hints[key]
        expected = tuple if getattr(hint, "__origin__", None) is tuple else hint
        values[key] = _coerce(name, key, expected, value)
    try:
        return cls(**values)
    except ValueError as exc:  # a section's own constraints (e.g. NtpSettings)
        raise ConfigError(f"[{name}] {exc}") from None


def parse_config(data: dict[str, Any]) -> Config:
    sections = {f.name: get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)}")
    config = Config(
        **{name: _section(cls, name, data.get(name, {})) for name, cls in sections.items()}
    )
    validate(config)
    return config


def load_config(path: Path | str) -> Config:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_oid(text: str) -> bool:
    """X.660: first arc 0, 1 or 2; second arc below 40 unless the first is 2."""
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() and (p == "0" or p[0] != "0") for p in parts):
        return False
    return parts[0] in ("0", "1", "2") and (parts[0] == "2" or int(parts[1]) < 40)


def validate(config: Config) -> None:
    """Constraints across keys; each message names the key and the rule."""
    server, tsa = config.server, config.tsa
    _require(0 < server.port < 65536, "[server] port must be 1-65535")
    _require(
        256 <= server.max_body_bytes <= 1 << 20, "[server] max_body_bytes must be 256..1048576"
    )
    _require(server.max_connections >= 1, "[server] max_connections must be at least 1")
    _require(
        not server.public_url
        or re.fullmatch(r"https?://[^\s/?#]+/?", server.public_url) is not None,
        "[server] public_url must be an http(s) origin such as https://tsa.example.org",
    )
    _require(0.5 <= server.idle_timeout_s <= 3600, "[server] idle_timeout_s must be 0.5..3600")
    _require(0.5 <= server.body_grace_s <= 3600, "[server] body_grace_s must be 0.5..3600")
    _require(
        1 <= server.body_min_rate_bytes_s <= 1 << 30,
        "[server] body_min_rate_bytes_s must be 1..1073741824",
    )
    _require(
        server.body_grace_s <= server.body_timeout_s <= 86400,
        "[server] body_timeout_s must be body_grace_s..86400",
    )
    _require(len(tsa.policies) >= 1, "[tsa] policies must list at least the default policy")
    for oid in tsa.policies:
        _require(_is_oid(oid), f"[tsa] policies: {oid!r} is not a dotted OID")
    for name in tsa.accepted_hashes:
        _require(name in IMPRINT_HASH_BY_NAME, f"[tsa] accepted_hashes: unknown hash {name!r}")
    _require(len(tsa.accepted_hashes) >= 1, "[tsa] accepted_hashes must not be empty")
    _require(1 <= tsa.max_accuracy_ms <= 60_000, "[tsa] max_accuracy_ms must be 1..60000")
    _require(1 <= tsa.max_batch <= 4096, "[tsa] max_batch must be 1..4096")
    _require(0 <= tsa.signing_workers <= 64, "[tsa] signing_workers must be 0..64")
    _require(1 <= tsa.max_in_flight <= 64, "[tsa] max_in_flight must be 1..64")
    for key in ("origin", "ops_origin"):
        origin = getattr(config.ledger, key)
        _require(
            bool(origin) and origin.isprintable() and not any(c in origin for c in " +\u2014"),
            f"[ledger] {key} must be non-empty, printable, without spaces or '+'",
        )
    _require(config.ledger.origin != config.ledger.ops_origin, "[ledger] the two origins differ")
    _require(
        0.1 <= config.ledger.checkpoint_interval_s <= 3600,
        "[ledger] checkpoint_interval_s must be 0.1..3600",
    )
    _require(
        config.pkcs11.key_type in {k.value for k in KeySpec},
        f"[pkcs11] key_type must be one of {', '.join(k.value for k in KeySpec)}",
    )
    verify = config.verify
    _require(bool(verify.trust_roots), "[verify] trust_roots must name a directory")
    _require(_is_time_zone(verify.time_zone), "[verify] time_zone must be an IANA time zone name")
    _require(
        1 <= verify.max_data_bytes <= 1 << 40, "[verify] max_data_bytes must be 1..1099511627776"
    )
    _require(
        1024 <= verify.max_token_bytes <= 16 << 20,
        "[verify] max_token_bytes must be 1024..16777216",
    )
    evidence = config.evidence
    _require(bool(evidence.path), "[evidence] path must name a file")
    _require(bool(evidence.blobs), "[evidence] blobs must name a directory")
    _require(
        1 <= evidence.max_upload_bytes <= 1 << 40,
        "[evidence] max_upload_bytes must be 1..1099511627776",
    )
    _require(
        0.05 <= evidence.renewal_interval_s <= 86400,
        "[evidence] renewal_interval_s must be 0.05..86400",
    )
    _require(1 <= evidence.max_batch_items <= 10000, "[evidence] max_batch_items must be 1..10000")
    _require(
        0 <= evidence.monthly_item_quota <= 10**9,
        "[evidence] monthly_item_quota must be 0..1000000000 (0: unlimited)",
    )
    _require(
        0 <= evidence.rate_per_second <= 100000,
        "[evidence] rate_per_second must be 0..100000 (0: no rate limits)",
    )
    _require(1 <= evidence.rate_burst <= 1000000, "[evidence] rate_burst must be 1..1000000")
    _require(
        0 <= evidence.account_rate_factor <= 1000,
        "[evidence] account_rate_factor must be 0..1000 (0: no organisation-wide limit)",
    )
    _require(
        0.1 <= evidence.webhook_timeout_s <= 60, "[evidence] webhook_timeout_s must be 0.1..60"
    )
    _require(
        0.01 <= evidence.webhook_backoff_min_s <= evidence.webhook_backoff_max_s <= 86400,
        "[evidence] webhook_backoff_min_s..webhook_backoff_max_s must be within 0.01..86400",
    )
    _require(
        1 <= evidence.webhook_give_up_s <= 30 * 86400,
        "[evidence] webhook_give_up_s must be 1..2592000",
    )
    _require(
        1 <= evidence.webhook_concurrency <= 64, "[evidence] webhook_concurrency must be 1..64"
    )
    _require(
        0.05 <= evidence.webhook_poll_s <= 3600, "[evidence] webhook_poll_s must be 0.05..3600"
    )
    _require(
        1 <= evidence.webhook_per_org_concurrency <= 16,
        "[evidence] webhook_per_org_concurrency must be 1..16",
    )
    for cidr in evidence.webhook_allowed_networks:
        _require(_is_network(cidr), f"[evidence] webhook_allowed_networks: {cidr!r} is not a CIDR")
    _require(
        evidence.max_upload_bytes <= evidence.max_upload_request_bytes <= 1 << 42,
        "[evidence] max_upload_request_bytes must be max_upload_bytes..4398046511104",
    )
    _require(
        1 <= config.ledger.max_lookup_results <= 1000,
        "[ledger] max_lookup_results must be 1..1000",
    )
    _validate_limits(config.limits)
    _require(bool(config.names.path), "[names] path must name a file")
    _require(bool(config.names.policy), "[names] policy must name a file")
    _require(
        config.logging.level in {"DEBUG", "INFO", "WARNING", "ERROR"},
        "[logging] level must be DEBUG, INFO, WARNING or ERROR",
    )


def _validate_limits(limits: LimitsConfig) -> None:
    for name in ("tsr", "verify", "lookup", "ledger"):
        rate, burst = getattr(limits, f"{name}_per_second"), getattr(limits, f"{name}_burst")
        _require(0 <= rate <= 1_000_000, f"[limits] {name}_per_second must be 0..1000000")
        _require(1 <= burst <= 1_000_000, f"[limits] {name}_burst must be 1..1000000")
    for proxy in limits.trusted_proxies:
        _require(_is_network(proxy), f"[limits] trusted_proxies: {proxy!r} is not an address")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True

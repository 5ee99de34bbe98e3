"""The configuration's sections as frozen dataclasses, with their defaults: what
conf/tsa.toml may say, key by key. Reading the file is `config.py`; the rules across
keys are `config_validate.py`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tsa_server.clock.ntp import NtpSettings
from tsa_server.errors import ConfigError
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY


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
    # HTTPS (issue 17): a PEM certificate chain and its PEM key (mode 0600, no passphrase)
    # turn on a TLS 1.2/1.3 listener on tls_host (empty: host) and tls_port; the plain
    # listener above then stays on loopback. SIGHUP reloads both files.
    tls_certificate: str = ""
    tls_key: str = ""
    tls_host: str = ""
    tls_port: int = 3443
    # One server per state directory: its PID, held locked while it runs.
    pid_file: str = "var/tsa.pid"
    # While this file exists (or after SIGUSR1, until the next one) /readyz answers 503
    # so that load balancers drain the node; requests keep being served.
    maintenance_file: str = "var/maintenance"
    # On SIGTERM or Ctrl-C: how long requests in progress get to finish.
    drain_timeout_s: float = 30.0
    # "production" or "development": production refuses the development defaults
    # ([clock] accept_local_reference = true; config/validate.py).
    environment: str = "development"

    @property
    def tls(self) -> bool:
        return bool(self.tls_certificate)

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
    # How long a signing key may sign, counted from its certificate's notBefore
    # (code-signing requirements: 15 months); issuance stops at the end of it or at the
    # certificate's expiry, whichever comes first (tsa_server/issuance/keyring.py).
    key_usage_months: int = 15
    # Warn (/readyz body, metrics, a daily log line) this many days before that end.
    key_expiry_warning_days: int = 30


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
    # The key in the token that signs evidence certificate PDFs (PAdES), and its chain
    # (its certificate first; empty: "document-chain.pem" beside the chain). `tsa init`
    # makes both with the development CA.
    document_key_label: str = "document-signing"
    document_chain: str = ""
    # The key schedule (`tsa keys activate`; tsa_server/signing/schedule.py): which key
    # signs from when. Empty: "key-schedule.json" beside the chain.
    key_schedule: str = ""

    @property
    def document_chain_path(self) -> Path:
        if self.document_chain:
            return Path(self.document_chain)
        return Path(self.chain).parent / "document-chain.pem"

    @property
    def key_schedule_path(self) -> Path:
        if self.key_schedule:
            return Path(self.key_schedule)
        return Path(self.chain).parent / "key-schedule.json"


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
    # This node's time-stamping unit when several nodes share a [database]: its logs are
    # stored and served as "<unit>" and "<unit>-ops"; empty: "tokens" and "ops".
    unit: str = ""
    # Where command-line tools leave events for the server to record in the operations
    # log (tsa_server/issuance/ops_inbox.py); empty: "ops-inbox" beside ops_path.
    ops_inbox: str = ""
    # Where `tsa incident` writes the incident reports the server publishes at
    # /incidents/ (tsa_server/incident/); empty: "incidents" beside ops_path.
    incidents: str = ""

    @property
    def ops_inbox_dir(self) -> Path:
        return Path(self.ops_inbox) if self.ops_inbox else Path(self.ops_path).parent / "ops-inbox"

    @property
    def incidents_dir(self) -> Path:
        return Path(self.incidents) if self.incidents else Path(self.ops_path).parent / "incidents"

    @property
    def log_names(self) -> dict[str, str]:
        """ "tokens" and "ops" -> the names of this node's logs."""
        if not self.unit:
            return {"tokens": "tokens", "ops": "ops"}
        return {"tokens": self.unit, "ops": f"{self.unit}-ops"}


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the server keeps its state: SQLite files beside it (the default, url empty)
    or a PostgreSQL database shared by several nodes (a libpq URL, multi-host form
    accepted). The password never goes in the URL: libpq reads PGPASSFILE or PGPASSWORD."""

    url: str = ""
    # How long a log's writer lease lasts (renewed every third of it): a paused or cut-off
    # node's log can be taken over after this long.
    lease_seconds: float = 10.0


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
    # Where originals are kept: "files" (the blobs directory), "database" (chunks in
    # [database] url, which every node reaches) or "auto" (database when url is set).
    blob_backend: str = "auto"
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
    # RFC 4998 evidence records: timestamp renewal this long before the last archive
    # timestamp's TSA certificate ends; weakening hash algorithms (re-hashed to SHA-512).
    ers_renew_before_days: int = 90
    ers_weak_hashes: tuple[str, ...] = ()
    # GET|POST /signup: anyone may make an organisation and become its owner (the web
    # pages, web/pages/signup.py); off: the operator makes them (tsa accounts).
    signup: bool = False


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
    format: str = "text"  # "text" for people, "json" for one JSON object per line
    access: bool = False  # a line per request; otherwise one per answer of 400 or more


@dataclass(frozen=True)
class DisclosureConfig:
    """What GET /policy (the TSA disclosure statement) says beyond the configuration."""

    name: str = "RFC 3161 time-stamping authority"
    contact: str = ""  # e.g. "tsa@example.org, +49 ..."; empty: "not configured"
    organisation: str = ""  # the operator's legal name (printed on evidence certificates)
    address: str = ""  # the operator's postal address
    policy_url: str = ""  # the disclosure statement's URL; empty: [server] public_url + /policy
    retention: str = (
        "Every token issued is kept in the append-only ledger for the life of the service; "
        "the operations log and the signed checkpoints likewise."
    )


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics: GET /metrics on the main listeners for the operators' admin
    keys, and without a key on a listener of their own when host is set."""

    host: str = ""  # e.g. 127.0.0.1; empty: no listener of their own
    port: int = 9161


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tsa: TsaConfig = field(default_factory=TsaConfig)
    pkcs11: Pkcs11Config = field(default_factory=Pkcs11Config)
    certificates: CertificatesConfig = field(default_factory=CertificatesConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    clock: NtpSettings = field(default_factory=NtpSettings)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    names: NamesConfig = field(default_factory=NamesConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    disclosure: DisclosureConfig = field(default_factory=DisclosureConfig)

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

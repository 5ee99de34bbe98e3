"""The configuration's constraints across keys (`validate`): each refusal is a
ConfigError whose message names the key and the rule.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo

from tsa_server.config.sections import Config, LimitsConfig
from tsa_server.errors import ConfigError
from tsa_server.rfc3161.oids import IMPRINT_HASH_BY_NAME
from tsa_server.signing.base import KeySpec


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
    _validate_listeners(config)
    _validate_environment(config)
    _check_database(config.database.url)
    _require(
        1.0 <= config.database.lease_seconds <= 300.0,
        "[database] lease_seconds must be between 1 and 300",
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
    _require(1 <= tsa.key_usage_months <= 120, "[tsa] key_usage_months must be 1..120")
    _require(
        0 <= tsa.key_expiry_warning_days <= 365, "[tsa] key_expiry_warning_days must be 0..365"
    )
    for key in ("origin", "ops_origin"):
        origin = getattr(config.ledger, key)
        _require(
            bool(origin) and origin.isprintable() and not any(c in origin for c in " +\u2014"),
            f"[ledger] {key} must be non-empty, printable, without spaces or '+'",
        )
    _require(config.ledger.origin != config.ledger.ops_origin, "[ledger] the two origins differ")
    _require(
        not config.ledger.unit
        or (
            re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", config.ledger.unit) is not None
            and config.ledger.unit not in ("tokens", "ops")
            and not config.ledger.unit.endswith("-ops")
        ),
        "[ledger] unit must be 1-32 lowercase letters, digits or '-', not 'tokens', 'ops' "
        "or ending in '-ops'",
    )
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
        evidence.blob_backend in {"auto", "files", "database"},
        '[evidence] blob_backend must be "auto", "files" or "database"',
    )
    _require(
        evidence.blob_backend != "database" or bool(config.database.url),
        '[evidence] blob_backend = "database" needs [database] url',
    )
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
        1 <= evidence.ers_renew_before_days <= 3650,
        "[evidence] ers_renew_before_days must be 1..3650",
    )
    for name in evidence.ers_weak_hashes:
        _require(
            name in {"sha1", "sha256", "sha384", "sha3_256", "sha3_384"},
            f"[evidence] ers_weak_hashes: {name!r} is not one of sha1, sha256, sha384, "
            "sha3_256, sha3_384 (records are re-hashed with sha512, never weak here)",
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
    _require(config.logging.format in {"text", "json"}, "[logging] format must be text or json")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_listeners(config: Config) -> None:
    """HTTPS, the plain listener beside it, the metrics listener, draining."""
    server, metrics = config.server, config.metrics
    _require(
        bool(server.tls_certificate) == bool(server.tls_key),
        "[server] tls_certificate and tls_key go together (both PEM files) or not at all",
    )
    _require(0 < server.tls_port < 65536, "[server] tls_port must be 1-65535")
    if server.tls:
        _require(
            _is_loopback(server.host),
            "[server] host must be a loopback address when TLS is on (tls_certificate): "
            "plain HTTP stays for local clients only; clients elsewhere use tls_host",
        )
        same_host = (server.tls_host or server.host) == server.host
        _require(
            not (same_host and server.tls_port == server.port),
            "[server] tls_port must differ from port on the same address",
        )
    _require(0.0 <= server.drain_timeout_s <= 3600, "[server] drain_timeout_s must be 0..3600")
    _require(bool(server.pid_file), "[server] pid_file must name a file")
    _require(0 < metrics.port < 65536, "[metrics] port must be 1-65535")
    if metrics.host:
        taken = {(server.host, server.port)}
        if server.tls:
            taken.add((server.tls_host or server.host, server.tls_port))
        _require(
            (metrics.host, metrics.port) not in taken,
            "[metrics] host and port must not be a listener of [server]",
        )


def _validate_environment(config: Config) -> None:
    """Production refuses the development defaults (EN 319 421: time traceable to UTC)."""
    environment = config.server.environment
    _require(
        environment in ("production", "development"),
        '[server] environment must be "production" or "development"',
    )
    _require(
        environment != "production" or not config.clock.accept_local_reference,
        "[clock] accept_local_reference = true is refused with [server] environment = "
        '"production": a server that serves its own local clock is not traceable to UTC; '
        "set it to false and point [clock] servers at synchronised NTP servers",
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


def _check_database(url: str) -> None:
    """[database] url: empty (SQLite files), or a PostgreSQL URL without a password."""
    if not url:
        return
    import psycopg  # only when a database is configured
    from psycopg.conninfo import conninfo_to_dict

    _require(
        url.startswith(("postgresql://", "postgres://")),
        "[database] url must be a postgresql:// URL (or empty for the SQLite files)",
    )
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"[database] url is not a valid libpq URL: {exc}") from None
    _require(
        "password" not in params,
        "[database] url must not hold a password: give it in a PGPASSFILE (mode 600) or "
        "$PGPASSWORD",
    )

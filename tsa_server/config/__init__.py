"""Configuration: frozen dataclasses read from conf/tsa.toml, failing closed.

Unknown sections or keys, wrong types and values outside their constraints are
`ConfigError`s that name the key. Relative paths are relative to the working directory.
Secrets never live here: the PIN comes from an environment variable or a file.

The sections are defined in `config/sections.py` and the rules across keys in
`config/validate.py`; every name is re-exported here, where callers import it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, get_type_hints

from tsa_server.config.sections import (
    CertificatesConfig,
    Config,
    DatabaseConfig,
    DisclosureConfig,
    EvidenceConfig,
    LedgerConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    NamesConfig,
    Pkcs11Config,
    ServerConfig,
    TsaConfig,
    VerifyConfig,
)
from tsa_server.config.validate import validate
from tsa_server.errors import ConfigError

__all__ = [
    "CertificatesConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DEFAULT_CONFIG",
    "DisclosureConfig",
    "EvidenceConfig",
    "LedgerConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NamesConfig",
    "Pkcs11Config",
    "ServerConfig",
    "TsaConfig",
    "VerifyConfig",
    "load_config",
    "parse_config",
    "validate",
]

DEFAULT_CONFIG = "conf/tsa.toml"  # every command's --config default


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

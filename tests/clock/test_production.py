"""[server] environment = "production" refuses the development default of the clock
([clock] accept_local_reference = true) when the configuration is loaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.tsa import TSA_BIN, write_config
from tsa_server.config import ConfigError, load_config, parse_config

REFUSAL = (
    '[clock] accept_local_reference = true is refused with [server] environment = "production"'
)


def test_production_refuses_accept_local_reference(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "tsa.toml",
        {"server": {"environment": "production"}, "clock": {"accept_local_reference": True}},
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).startswith(REFUSAL)


def test_production_without_it_and_development_with_it_load() -> None:
    production = parse_config({"server": {"environment": "production"}})
    assert production.server.environment == "production"
    assert not production.clock.accept_local_reference
    development = parse_config({"clock": {"accept_local_reference": True}})
    assert development.server.environment == "development"  # the default


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r'\[server\] environment must be "production"'):
        parse_config({"server": {"environment": "staging"}})


def test_tsa_serve_refuses_it_with_one_clear_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "tsa.toml",
        {"server": {"environment": "production"}, "clock": {"accept_local_reference": True}},
    )
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert REFUSAL in result.stderr and "Traceback" not in result.stderr

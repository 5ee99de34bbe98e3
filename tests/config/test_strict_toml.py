"""The one strict reader of policy TOML (names and pricing share it)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tsa_server.config.strict_toml import StrictTable, beijing_instant, load_toml
from tsa_server.errors import ConfigError


class Oops(ConfigError):
    pass


def test_types_unknown_keys_and_nested_tables() -> None:
    table = StrictTable({"n": 3, "flag": True, "sub": {"x": 1}, "extra": 0}, "t", Oops)
    assert table.take("n", int, 0) == 3
    assert table.take("missing", int, 7) == 7
    with pytest.raises(Oops, match=r"t\.flag: wrong type bool"):
        table.take("flag", int, 0)  # a TOML boolean is not an integer
    assert table.table("sub").take("x", int, 0) == 1
    with pytest.raises(Oops, match=r"unknown keys \['extra'\]"):
        table.done()
    with pytest.raises(Oops, match="expected a table"):
        StrictTable([1], "u", Oops)
    with pytest.raises(Oops, match="list of integers"):
        StrictTable({"d": [1, True]}, "v", Oops).integers("d", ())


def test_local_times_are_beijing(tmp_path) -> None:
    assert beijing_instant(date(2022, 12, 1), "w", Oops) == datetime(2022, 11, 30, 16, tzinfo=UTC)
    aware = datetime(2022, 12, 1, tzinfo=UTC)
    assert beijing_instant(aware, "w", Oops) == aware
    with pytest.raises(Oops, match="expected a date-time"):
        beijing_instant("tomorrow", "w", Oops)
    bad = tmp_path / "bad.toml"
    bad.write_text("[x\n")
    with pytest.raises(Oops, match="bad.toml"):
        load_toml(bad, Oops)

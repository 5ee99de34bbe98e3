"""conf/pricing.toml and the versioned pricing policy (REC-1, S-4, S-5, A-1, part F)."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fees.conftest import MB, bj
from tsa_server.fees import CURRENT, DEFAULT_POLICY, LEGACY, PricingError, SizeClass, load_policy
from tsa_server.fees.policy import (
    LEGACY_SMALL_DEFAULT_MONTHS,
    LEGACY_SMALL_LITERAL_MONTHS,
    PolicyVersion,
    PricingPolicy,
    policy_from_mapping,
)
from tsa_server.fees.terms import initial_term

CONF = Path(__file__).resolve().parents[2] / "conf" / "pricing.toml"


def conf() -> dict:
    return tomllib.loads(CONF.read_text(encoding="utf-8"))


def test_conf_equals_the_built_in_default() -> None:
    assert load_policy(CONF) == DEFAULT_POLICY


def test_a1_default_and_literal_are_documented() -> None:
    text = CONF.read_text(encoding="utf-8")
    assert "A-1" in text and "51" in text and "39" in text
    legacy = DEFAULT_POLICY.version(LEGACY)
    assert legacy.small_free_months == LEGACY_SMALL_DEFAULT_MONTHS == 39
    assert LEGACY_SMALL_LITERAL_MONTHS == 51
    assert (
        legacy.large_free_months,
        DEFAULT_POLICY.version(CURRENT).small_free_months,
        DEFAULT_POLICY.version(CURRENT).large_free_months,
    ) == (15, 36, 12)


def test_every_conf_key_is_commented() -> None:
    """Each key has an inline comment or is described in the [[versions]] key list."""
    text = CONF.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key = line.split("=")[0].strip()
            assert "#" in line or f"#   {key} " in text, line


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ((), "surprise"),
        (("credits",), "lot_validity_days"),
        (("storage",), "grace"),
        (("reminders",), "expiry"),
        (("versions", 0), "free_months"),
    ],
)
def test_unknown_keys_are_errors(path: tuple, key: str) -> None:
    data = conf()
    node = data
    for p in path:
        node = node[p]
    node[key] = 1
    with pytest.raises(PricingError, match="unknown keys"):
        policy_from_mapping(data)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["credits"].__setitem__("lot_validity_months", 0),
        lambda d: d["credits"].__setitem__("lot_validity_months", "12"),
        lambda d: d["storage"].__setitem__("grace_days", True),
        lambda d: d["reminders"].__setitem__("expiry_days", [30, 30]),
        lambda d: d["reminders"].__setitem__("expiry_days", [30, -1]),
        lambda d: d["reminders"].__setitem__("lot_lapse_days", ["30"]),
        lambda d: d["versions"][1].pop("effective_from"),
        lambda d: d["versions"][0].__setitem__("effective_from", bj(2000, 1, 1)),
        lambda d: d["versions"][1].__setitem__("epoch", "LEGACY"),
        lambda d: d["versions"][1].__setitem__("small_free_months", -1),
        lambda d: d["versions"][1].pop("large_free_months"),
        lambda d: d["versions"][1].__setitem__("period_months", 0),
        lambda d: d["versions"][1].__setitem__("fee_formula", "flat"),
        lambda d: d["versions"][1].__setitem__("block_bytes", 0),
        lambda d: d.pop("versions"),
        lambda d: d.__setitem__("versions", []),
        lambda d: d.__setitem__("versions", [1]),
        lambda d: d["versions"].append(copy.deepcopy(d["versions"][1]) | {"epoch": "X"}),
    ],
)
def test_bad_values_are_errors(mutate) -> None:
    data = conf()
    mutate(data)
    with pytest.raises(PricingError):
        policy_from_mapping(data)


def test_bad_file(tmp_path: Path) -> None:
    with pytest.raises(PricingError):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[credits\n", encoding="utf-8")
    with pytest.raises(PricingError):
        load_policy(bad)


def test_local_times_in_toml_are_beijing() -> None:
    data = conf()
    data["versions"][1]["effective_from"] = datetime(2022, 12, 1)  # no offset
    assert policy_from_mapping(data).version(CURRENT).effective_from == bj(2022, 12, 1)
    data["versions"][1]["effective_from"] = datetime(2022, 12, 1).date()
    assert policy_from_mapping(data).version(CURRENT).effective_from == bj(2022, 12, 1)


def test_a_price_change_is_a_new_version() -> None:
    """REC-1: adding a row changes prices for items certified from then on, only."""
    v3 = PolicyVersion("V2026", bj(2026, 1, 1), 24, 6, period_months=12)
    policy = PricingPolicy(versions=(*DEFAULT_POLICY.versions, v3))
    assert policy.version_for(bj(2025, 12, 31, 23, 59, 59)).epoch == CURRENT
    assert policy.version_for(bj(2026, 1, 1)).epoch == "V2026"
    assert initial_term(150 * MB, bj(2026, 3, 1), policy=policy).expiry(0) == bj(2028, 3, 1)
    assert initial_term(150 * MB, bj(2025, 3, 1), policy=policy).expiry(0) == bj(2028, 3, 1)
    assert policy.version("V2026").free_months(SizeClass.LARGE) == 6
    with pytest.raises(KeyError):
        policy.version("nope")


def test_reminder_days_are_sorted_descending() -> None:
    assert PricingPolicy(expiry_reminder_days=(1, 30, 7)).expiry_reminder_days == (30, 7, 1)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        DEFAULT_POLICY.version_for(datetime(2023, 1, 1))
    assert DEFAULT_POLICY.version_for(datetime(2023, 1, 1, tzinfo=UTC)).epoch == CURRENT

"""conf/names.toml: the shipped file, strict parsing, the beta as data (A-13 .. A-16)."""

from __future__ import annotations

import tomllib
from fractions import Fraction
from pathlib import Path

import pytest

from tsa_server.errors import ConfigError
from tsa_server.names import Policy, PolicyError, beijing, load_policy
from tsa_server.names.config import HoldReclaim, policy_from_mapping

ROOT = Path(__file__).resolve().parents[2]
BETA = """
[beta]
name = "phase-1"
shop_opened_before = 2013-07-31T00:00:00
applications_open = 2013-09-25
applications_close = 2013-10-08T00:00:00+08:00
publish_at = 2013-10-14T00:00:00
ends_at = 2013-10-20T16:00:00Z
"""


def test_shipped_conf_matches_the_defaults_and_decisions():
    policy = load_policy(ROOT / "conf" / "names.toml")
    defaults = Policy()
    for name in (
        "handle_min_bytes",
        "handle_max_bytes",
        "shop_name_min_bytes",
        "shop_name_max_bytes",
        "change_quota",
        "change_interval_hours",
        "hold_months",
        "hold_reclaim_by",
        "case_insensitive",
        "brand_match",
        "mark_min_age_months",
        "disputes",
    ):
        assert getattr(policy, name) == getattr(defaults, name), name
    assert policy.change_interval_hours == 30 * 24
    assert policy.case_insensitive
    assert policy.disputes.tie_breaks == ("usage_duration", "search_rate", "wangwang")
    assert policy.hold_reclaim_by is HoldReclaim.FORMER_OWNER
    assert policy.beta is None
    assert policy.word_lists.banned == ROOT / "conf" / "names" / "banned.txt"


def test_beta_dates_are_data_and_local_times_are_beijing():
    beta = policy_from_mapping(tomllib.loads(BETA)).beta
    assert beta.shop_opened_before == beijing(2013, 7, 31)
    assert beta.applications_open == beijing(2013, 9, 25)
    assert beta.applications_close == beijing(2013, 10, 8)
    assert beta.ends_at == beijing(2013, 10, 21)


@pytest.mark.parametrize(
    "text",
    [
        "colour = 1",
        "[lengths]\nhandle_max = 14",
        "[disputes.weights]\nfame = 3",
        "[beta]\nname = 'x'",
        "[lengths]\nhandle_min_bytes = '4'",
        "[lengths]\nhandle_min_bytes = true",
        "[lengths]\nhandle_min_bytes = 0",
        "[lengths]\nhandle_max_bytes = 22",
        "[changes]\nquota = -1",
        "[hold]\nreclaim_by = 'anyone'",
        "[matching]\nbrand_match = 'fuzzy'",
        "[disputes]\ntie_breaks = ['search_rate', 'usage_duration']",
        "[disputes]\ntie_breaks = ['usage_duration', 'submission_order']",
        "[disputes]\nintermittent_factor = 1.5",
        "[disputes.weights]\nsearch_rate = -1",
        "[disputes.weights]\nsearch_rate = 'x/y'",
        "[words]\nother = 'x.txt'",
        BETA.replace("2013-10-08T00:00:00+08:00", "2013-09-01T00:00:00"),
    ],
)
def test_bad_config_is_an_error(text):
    with pytest.raises(PolicyError) as info:
        policy_from_mapping(tomllib.loads(text))
    assert isinstance(info.value, ConfigError)


def test_fractions_from_strings_and_floats():
    p = policy_from_mapping(
        tomllib.loads(
            "[disputes]\nintermittent_factor = '1/3'\n[disputes.weights]\nsearch_rate = 0.1"
        )
    )
    assert p.disputes.intermittent_factor == Fraction(1, 3)
    assert p.disputes.weights.search_rate == Fraction(1, 10)


def test_unreadable_file(tmp_path):
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[lengths\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        load_policy(bad)

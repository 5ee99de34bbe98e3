"""Numbers from outside (tsa_server.names.numbers): the plain syntax is read exactly,
anything that would make `Fraction` or `int` hang or overflow is refused at once, in
the API's weights and metrics and in conf/names.toml alike."""

from __future__ import annotations

import time
import tomllib
from fractions import Fraction

import pytest

from tsa_server.names import PolicyError
from tsa_server.names.config import policy_from_mapping
from tsa_server.names.numbers import NumberError, rational, whole
from tsa_server.names.policy_edits import EditError, weights_edit

HANGS = ["1e999999999", "1e-999999999", "1E+999999999", ".1e99999999"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Fraction(0)),
        (45, Fraction(45)),
        (0.1, Fraction(1, 10)),  # the decimal written, not the binary float
        (1e-07, Fraction(1, 10**7)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("-0.25", Fraction(-1, 4)),
        ("5/2", Fraction(5, 2)),
        ("1e-5", Fraction(1, 100000)),
        ("1.5E+20", Fraction(15 * 10**19)),
        (" 3 ", Fraction(3)),
    ],
)
def test_plain_numbers_are_exact(value, expected) -> None:
    assert rational(value, "x") == expected


@pytest.mark.parametrize(
    "value",
    [
        *HANGS,
        "1e100",  # three exponent digits
        1e100,
        "9" * 19,
        10**19,
        "١٢",  # Fraction reads Arabic-Indic digits
        "1_0",
        "inf",
        float("inf"),
        float("nan"),
        "1/0",
        "1/2/3",
        "",
        True,
        None,
        [1],
    ],
)
def test_everything_else_is_refused_at_once(value) -> None:
    started = time.monotonic()
    with pytest.raises(NumberError):
        rational(value, "x")
    assert time.monotonic() - started < 0.1


def test_whole_numbers() -> None:
    assert whole(3, "n") == 3 and whole(3.0, "n") == 3
    for bad in (1e999, float("nan"), 2.5, "3", True, None, -1, 10**19):
        with pytest.raises(NumberError):
            whole(bad, "n")
    assert whole(7, "n", 0, 7) == 7
    with pytest.raises(NumberError, match=r"within \[0, 6\]"):
        whole(7, "n", 0, 6)


@pytest.mark.parametrize("value", HANGS)
def test_weights_and_the_policy_file_refuse_them_too(value) -> None:
    started = time.monotonic()
    with pytest.raises(EditError, match="search_rate"):
        weights_edit({"search_rate": value})
    with pytest.raises(PolicyError, match="search_rate"):
        policy_from_mapping(tomllib.loads(f"[disputes.weights]\nsearch_rate = '{value}'"))
    assert time.monotonic() - started < 0.5


def test_operator_metrics_are_read_field_by_field() -> None:
    from tsa_server.names.disputes import metrics_from_json

    got = metrics_from_json({"s": {"search_rate": "9/10", "usage_days": 900, "wangwang": True}})
    assert got["s"].search_rate == Fraction(9, 10) and got["s"].usage_days == 900
    for raw, reason in (
        ([], "metrics must be an object"),
        ({"s": 1}, "metrics.s must be an object"),
        ({"s": {"luck": 1}}, "unknown field(s): luck"),
        ({"s": {"wangwang": "false"}}, "metrics.s.wangwang must be true or false"),
        ({"s": {"search_rate": "1e999999999"}}, "metrics.s.search_rate: not a number"),
        ({"s": {"usage_days": float("inf")}}, "metrics.s.usage_days must be an integer"),
        ({"s": {"search_rate": 2}}, "metrics.s: rates must lie within [0, 1]"),
    ):
        with pytest.raises(NumberError) as refused:
            metrics_from_json(raw)
        assert reason in str(refused.value), (raw, refused.value)

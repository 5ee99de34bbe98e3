"""Every named request vector of tests/vectors/requests gives its documented outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.queries import failure_of
from tests.support.tsa import TsaServer

VECTORS = Path(__file__).parent / "vectors" / "requests"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_request_vector(tsa: TsaServer, name: str) -> None:
    expect = MANIFEST[name]["expect"]
    status, _, body = tsa.post_query((VECTORS / name).read_bytes())
    assert status == 200
    if expect == "granted":
        assert failure_of(body) == ("granted", frozenset())
    else:
        assert failure_of(body) == ("rejection", frozenset({expect}))
    base = (VECTORS / "base-sha256-cert.tsq").read_bytes()
    assert failure_of(tsa.post_query(base)[2])[0] == "granted"

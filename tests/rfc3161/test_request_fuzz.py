"""Hypothesis: whatever the bytes, the request parser answers with a validated request
or a RequestRejected, never another exception; the live server answers every body with
a well-formed TimeStampResp, granted only for a request it accepts."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.queries import HASH_OIDS, extension, failure_of, make_request, parse_response
from tests.support.tsa import TsaServer
from tsa_server.errors import RequestRejected
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile, TimeStampRequest, parse_request

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
VALID = make_request(b"fuzz base", nonce=0x0102030405060708)


def outcome(body: bytes) -> TimeStampRequest | RequestRejected:
    try:
        return parse_request(body, PROFILE)
    except RequestRejected as exc:
        return exc


@st.composite
def mutated(draw) -> bytes:
    body = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(0, len(body) - 1)))
        if kind == "flip" and body:
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and body:
            body[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and body:
            del body[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del body[at:]
    return bytes(body)


structured = st.builds(
    make_request,
    st.binary(max_size=32),
    hash_name=st.sampled_from(sorted(HASH_OIDS)),
    nonce=st.one_of(st.none(), st.integers(-(1 << 300), 1 << 300)),
    cert_req=st.booleans(),
    policy=st.one_of(st.none(), st.just(DEFAULT_POLICY), st.just("1.2.3.4")),
    extensions=st.one_of(st.none(), st.just(b""), st.just(extension("1.2.3", False))),
    version=st.integers(0, 3),
)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    result = outcome(body)
    assert isinstance(result, TimeStampRequest | RequestRejected)


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_mutated_valid_requests(body: bytes) -> None:
    result = outcome(body)
    if isinstance(result, TimeStampRequest):
        assert len(result.digest) == result.hash.size
        assert result.hash.name in PROFILE.accepted_hashes


@settings(max_examples=600, deadline=None)
@given(structured)
def test_structured_requests(body: bytes) -> None:
    result = outcome(body)
    if isinstance(result, TimeStampRequest):
        assert result.policy == DEFAULT_POLICY


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(mutated(), structured, st.binary(max_size=200)))
def test_live_server_answers_everything(tsa: TsaServer, body: bytes) -> None:
    status, _, reply = tsa.post_query(body)
    assert status == 200
    state, failures = failure_of(reply)
    expected = outcome(body)
    if isinstance(expected, RequestRejected):
        assert (state, failures) == ("rejection", frozenset({expected.failure.value}))
    else:
        assert state == "granted"
        token = parse_response(reply)["time_stamp_token"]
        tst = token["content"]["encap_content_info"]["content"].parsed
        assert tst["message_imprint"]["hashed_message"].native == expected.digest
        assert tst["nonce"].native == expected.nonce
        assert hashlib.sha256(token.dump()).digest()  # a complete, re-encodable token

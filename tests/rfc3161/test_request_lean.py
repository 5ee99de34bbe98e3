"""The lean request parser against the strict one: whenever the fast path answers, the
strict asn1crypto parser gives the same request; the common shapes take the fast path."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.queries import make_request
from tsa_server.errors import RequestRejected
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile, parse_request, parse_strict
from tsa_server.rfc3161.request_lean import parse_lean

OTHER_POLICY = "1.2.3.4.5"
PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY, OTHER_POLICY))
HASHES = ["sha1", "sha256", "sha384", "sha512", "sha3_256", "md5", "1.2.3.99"]


def strict_or_rejection(body: bytes):
    try:
        return parse_strict(body, PROFILE)
    except RequestRejected as exc:
        return exc.failure


def test_common_shapes_take_the_fast_path() -> None:
    for hash_name in ("sha256", "sha384", "sha512"):
        for nonce in (None, 0, 1, 2**63, 2**256 - 1):
            for cert_req in (False, True):
                for policy in (None, DEFAULT_POLICY, OTHER_POLICY):
                    body = make_request(
                        hash_name=hash_name, nonce=nonce, cert_req=cert_req, policy=policy
                    )
                    lean = parse_lean(body, PROFILE)
                    assert lean is not None, (hash_name, nonce, cert_req, policy)
                    assert lean == parse_strict(body, PROFILE)


def test_the_strict_parser_decides_everything_unusual() -> None:
    unusual = [
        b"",
        make_request(version=2),
        make_request(hash_name="md5"),
        make_request(params=b"\x04\x00"),
        make_request(digest=b"\x00" * 31),
        make_request(policy="1.2.3.999"),
        make_request(nonce=2**256),
        make_request(extensions=b"\x30\x00"),
        make_request() + b"\x00",
        make_request()[:-1],
    ]
    for body in unusual:
        assert parse_lean(body, PROFILE) is None
        try:
            parse_request(body, PROFILE)
        except RequestRejected:
            continue
        raise AssertionError(f"accepted {body.hex()}")
    # A negative nonce is unusual but valid: the strict parser takes it, not the lean one.
    negative = make_request(nonce=-5)
    assert parse_lean(negative, PROFILE) is None
    assert parse_request(negative, PROFILE).nonce == -5


requests = st.builds(
    make_request,
    hash_name=st.sampled_from(HASHES),
    digest=st.sampled_from([20, 31, 32, 48, 64]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
    nonce=st.one_of(st.none(), st.integers(min_value=-(2**300), max_value=2**300), st.just(0)),
    cert_req=st.booleans(),
    policy=st.sampled_from([None, DEFAULT_POLICY, OTHER_POLICY, "1.2.3.999"]),
    extensions=st.sampled_from([None, b"\x30\x00"]),
    version=st.sampled_from([1, 1, 1, 0, 2]),
    params=st.sampled_from([None, None, b"\x05\x00", b"\x05\x01\x00", b"\x04\x00"]),
)


@settings(max_examples=600, deadline=None)
@given(requests)
def test_lean_agrees_with_strict_on_generated_requests(body: bytes) -> None:
    lean = parse_lean(body, PROFILE)
    if lean is not None:
        assert lean == strict_or_rejection(body)


@settings(max_examples=1500, deadline=None)
@given(requests, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4))
def test_lean_agrees_with_strict_on_mutated_requests(body: bytes, flips) -> None:
    mutated = bytearray(body)
    for position, value in flips:
        if position < len(mutated):
            mutated[position] = value
    lean = parse_lean(bytes(mutated), PROFILE)
    if lean is not None:
        assert lean == strict_or_rejection(bytes(mutated))


def test_digest_is_bytes_not_a_view() -> None:
    data = b"x"
    body = make_request(data, nonce=None)
    lean = parse_lean(body, PROFILE)
    assert lean is not None and lean.digest == hashlib.sha256(data).digest()
    assert type(lean.digest) is bytes


def test_a_refused_algorithm_says_why() -> None:
    """MD5 is refused on purpose, and the rejection says so (not "unsupported"); SHA-1
    is refused by configuration, and the rejection names the setting."""
    reasons = {}
    for name in ("md5", "sha1", "1.2.3.99"):
        try:
            parse_request(make_request(hash_name=name, digest=b"\0" * 16), PROFILE)
        except RequestRejected as exc:
            reasons[name] = exc.text
    assert "refused on purpose" in reasons["md5"] and "SHA-256" in reasons["md5"]
    assert "[tsa] accepted_hashes" in reasons["sha1"]
    assert "1.2.3.99 not accepted" in reasons["1.2.3.99"]

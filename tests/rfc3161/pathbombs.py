"""Test-only builders of certification path bombs: tokens whose certificates offer
exponentially many candidate paths to a naive path builder, and a clock to bound how
long a verification may take without hanging the suite when it explodes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509

from .tokenfactory import CertSpec, Pki, PrivateKey, TokenSpec, build_token, make_cert, make_key

T = TypeVar("T")


def ca_copies(
    cn: str,
    key: PrivateKey,
    count: int,
    issuer_cn: str | None = None,
    issuer_key: PrivateKey | None = None,
    first_serial: int = 10_000,
) -> tuple[x509.Certificate, ...]:
    """``count`` CA certificates of one name and key that differ only in their serial:
    self-issued copies (no issuer given) or re-issues by one issuer."""
    return tuple(
        make_cert(CertSpec(cn, key, issuer_cn, issuer_key, serial=first_serial + i, ca=True))
        for i in range(count)
    )


def inter_cn(pki: Pki) -> str:
    return pki.inter.subject.rfc4514_string().split(",")[0].removeprefix("CN=")


def copies_bomb(pki: Pki, count: int) -> bytes:
    """``pki``'s token with ``count`` self-issued copies of its intermediate embedded
    ahead of the real chain (same name, same key, other serials): the issue's bomb."""
    copies = ca_copies(inter_cn(pki), pki.inter_key, count)
    return build_token(pki, TokenSpec(extra_embedded=copies, extra_embedded_first=True))


def mesh_bomb(keys: int, index: int = 0) -> tuple[bytes, x509.Certificate]:
    """A token whose TSA certificate is issued by one of ``keys`` CA keys that all bear
    the name "Mesh CA" and certify each other (keys * (keys - 1) certificates); the last
    key is also certified by a root that expired before genTime. Every path reaches the
    root and fails there, and there are about keys! of them. Returns (token, root)."""
    mesh = [make_key("ec", 700 + 10 * index + i) for i in range(keys)]
    root_key, tsa_key = make_key("ec", 690 + index), make_key("ec", 680 + index)
    old, ended = datetime(2010, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)
    root = make_cert(
        CertSpec("Mesh Root", root_key, serial=1, not_before=old, not_after=ended, ca=True)
    )
    certs = [
        make_cert(CertSpec("Mesh CA", mesh[i], "Mesh CA", mesh[j], serial=100 * i + j, ca=True))
        for i in range(keys)
        for j in range(keys)
        if i != j
    ]
    certs.append(make_cert(CertSpec("Mesh CA", mesh[-1], "Mesh Root", root_key, 7, ca=True)))
    tsa = make_cert(CertSpec("Mesh TSA", tsa_key, "Mesh CA", mesh[0], serial=0x7A5A))
    pki = Pki(root_key, root, mesh[0], certs[0], tsa_key, tsa)
    return build_token(pki, TokenSpec(embed=("tsa",), extra_embedded=tuple(certs))), root


class Runaway(BaseException):
    """Raised by `deadline`; a BaseException so that the verifier's fail-closed
    ``except Exception`` around each check cannot swallow it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test (AssertionError) when the block runs longer than ``seconds``,
    instead of hanging the suite on a runaway verification. Main thread only."""

    def expire(signum: int, frame: object) -> None:
        raise Runaway(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Runaway as exc:
        raise AssertionError(str(exc)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def best_time(work: Callable[[], T], runs: int = 3) -> tuple[T, float]:
    """The result of ``work`` and its fastest wall time over ``runs`` runs."""
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return result, best  # type: ignore[return-value]

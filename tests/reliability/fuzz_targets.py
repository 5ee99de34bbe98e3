"""Coverage-guided fuzz targets (atheris/libFuzzer) for the parsers that read hostile
bytes: the TimeStampReq parser, the token/response parser and verifier, checkpoint
and signed-note parsing, and tlog-proof files.

A crash is any exception other than the parser's documented rejection. Run one target:

    python -m tests.reliability.fuzz_targets <target> <corpus_dir> [libFuzzer flags]

scripts/fuzz runs them all for a bounded time; tests/reliability/test_fuzz.py runs a
short deterministic pass (fixed seed, fixed number of runs).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
_KEY = bytes(range(32))  # a fixed Ed25519 seed: the fuzz seeds carry valid signatures
ORIGIN = "fuzz.example/log"


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], Iterator[bytes]]


# --- the TimeStampReq parser ------------------------------------------------------------


def _request(data: bytes) -> None:
    from tsa_server.errors import RequestRejected
    from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
    from tsa_server.rfc3161.request import Profile, parse_request

    profile = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
    try:
        parse_request(data, profile)
    except RequestRejected:
        pass


def _request_seeds() -> Iterator[bytes]:
    from tests.support.queries import extension, make_request

    for path in sorted((VECTORS / "requests").glob("*.tsq")):
        yield path.read_bytes()
    yield make_request(b"seed", nonce=12345)
    yield make_request(b"seed", hash_name="sha512", nonce=None, cert_req=False)
    yield make_request(b"seed", policy="1.2.3.4", params=b"\x05\x00")
    yield make_request(b"seed", extensions=extension("1.2.3.4", False))
    yield make_request(b"seed", hash_name="sha1", version=2)


# --- the token parser and verifier ------------------------------------------------------


def _token(data: bytes) -> None:
    from tsa_server.rfc3161.verify import verify_token
    from tsa_server.rfc3161.verify_load import TokenDecodeError, load_token

    try:
        load_token(data)
    except TokenDecodeError:
        pass
    verify_token(data)  # documented: a malformed token gives a report, never an exception


def _token_seeds() -> Iterator[bytes]:
    third_party = VECTORS / "third_party"
    for pattern in ("*.tst", "*.tsr"):
        for path in sorted(third_party.rglob(pattern)):
            yield path.read_bytes()


# --- checkpoints and signed notes -------------------------------------------------------


def _verifier():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.checkpoint import Ed25519Verifier

    key = Ed25519PrivateKey.from_private_bytes(_KEY)
    public = key.public_key().public_bytes_raw()
    return key, Ed25519Verifier(ORIGIN, public)


def _checkpoint(data: bytes) -> None:
    from ledger.checkpoint import Checkpoint, open_checkpoint, parse_note, parse_vkey
    from ledger.errors import LedgerError

    for parse in (Checkpoint.parse, parse_note):
        try:
            parse(data)
        except LedgerError:
            pass
    try:
        open_checkpoint(data, _verifier()[1], origin=ORIGIN)
    except LedgerError:
        pass
    try:
        parse_vkey(data.decode("utf-8", "replace"))
    except LedgerError:
        pass


def _signed_checkpoint(size: int) -> str:
    from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint

    key, verifier = _verifier()
    root = hashlib.sha256(b"root %d" % size).digest()
    signer = NoteSigner(ORIGIN, verifier.public_key, key.sign)
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), [signer]).decode()


def _checkpoint_seeds() -> Iterator[bytes]:
    yield _signed_checkpoint(7).encode()
    yield _signed_checkpoint(0).encode()
    yield _verifier()[1].vkey.encode()
    yield b"fuzz.example/log\n12\n" + b"A" * 43 + b"=\n"


# --- tlog-proof files -------------------------------------------------------------------


def _proof(data: bytes) -> None:
    from ledger.errors import LedgerError
    from ledger.proof_file import ProofFile

    text = data.decode("utf-8", "replace")
    try:
        proof = ProofFile.parse(text)
    except LedgerError:
        return
    try:
        proof.verify(b"entry", _verifier()[1], origin=ORIGIN)
    except LedgerError:
        pass


def _proof_seeds() -> Iterator[bytes]:
    from ledger.proof_file import ProofFile

    path = tuple(hashlib.sha256(b"%d" % i).digest() for i in range(3))
    yield ProofFile(5, path, _signed_checkpoint(7)).encode().encode()
    yield ProofFile(0, (), _signed_checkpoint(1), extra=b"extra data").encode().encode()


PARSERS = (
    Target("request", _request, _request_seeds),
    Target("token", _token, _token_seeds),
    Target("checkpoint", _checkpoint, _checkpoint_seeds),
    Target("tlog-proof", _proof, _proof_seeds),
)


def _all(data: bytes) -> None:
    if data:
        PARSERS[data[0] % len(PARSERS)].run(data[1:])


def _all_seeds() -> Iterator[bytes]:
    for number, target in enumerate(PARSERS):
        for seed in target.seeds():
            yield bytes((number,)) + seed


# "all": the first byte picks the parser; one process for the bounded run in the suite.
TARGETS = {target.name: target for target in (*PARSERS, Target("all", _all, _all_seeds))}


def write_seeds(target: Target, corpus: Path) -> int:
    """Put the target's seed inputs in `corpus` (named by hash); returns how many."""
    corpus.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        count += 1
    return count


@dataclass(frozen=True)
class FuzzResult:
    target: str
    runs: int  # executions libFuzzer reported (0 when it stopped on a crash)
    crashed: bool
    crash_report: str  # the uncaught exception's traceback, when crashed
    artifacts: tuple[str, ...]  # files libFuzzer wrote holding the crashing inputs
    seconds: float


def run_target(
    name: str, corpus: Path, artifacts: Path, flags: list[str], timeout: float = 3600
) -> FuzzResult:
    """Run one target in a subprocess (atheris exits the process when done)."""
    import time

    artifacts.mkdir(parents=True, exist_ok=True)
    prefix = f"{artifacts}/{name}-"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.fuzz_targets",
            name,
            str(corpus),
            f"-artifact_prefix={prefix}",
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    done = re.search(r"Done (\d+) runs", output)
    runs = int(done.group(1)) if done else _last_count(output)
    crashed = result.returncode != 0
    report = ""
    if crashed:
        start = output.find("=== Uncaught Python exception")
        report = output[start : start + 4000] if start >= 0 else output[-4000:]
    found = tuple(sorted(str(p) for p in artifacts.glob(f"{name}-*")))
    return FuzzResult(name, runs, crashed, report, found, time.monotonic() - started)


def _last_count(output: str) -> int:
    counts = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def main(argv: list[str]) -> None:
    import atheris

    name, corpus = argv[1], Path(argv[2])
    target = TARGETS[name]
    with atheris.instrument_imports():
        import asn1crypto.cms  # noqa: F401 - the DER parser the request and token use
        import asn1crypto.core  # noqa: F401
        import asn1crypto.tsp  # noqa: F401

        import ledger.checkpoint  # noqa: F401
        import ledger.proof_file  # noqa: F401
        import tsa_server.rfc3161.request  # noqa: F401
        import tsa_server.rfc3161.verify  # noqa: F401
        import tsa_server.rfc3161.verify_load  # noqa: F401
    write_seeds(target, corpus)
    atheris.Setup([argv[0], str(corpus), *argv[3:]], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""Fixtures of the evidence-record tests: the session token's TSA as a real in-process
Issuer (its tokens land in a real ledger), a clock the tests move, and the independent
checker: ErsCheck.java compiled against Debian's BouncyCastle jars."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.store.sqlite import SqliteStore
from tsa_server.clock.base import ManualClock
from tsa_server.issuance.issuer import IssuanceSettings, Issuer
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile
from tsa_server.rfc3161.token import TokenTemplate
from tsa_server.wiring import load_chain

BC_JARS = [Path(f"/usr/share/java/{name}.jar") for name in ("bcpkix", "bcprov", "bcutil")]
JAVA_SOURCE = Path(__file__).with_name("ErsCheck.java")


@dataclass
class Tsa:
    """The TSA in-process: `stamp` is what an evidence record's tokens come from."""

    issuer: Issuer
    clock: ManualClock
    ledger: SqliteStore
    ca_file: Path

    def stamp(self, value: bytes, algorithm: str) -> bytes:
        issued = asyncio.run(self.issuer.timestamp(value, algorithm))
        assert issued.token is not None
        return issued.token


@pytest.fixture
def tsa(tmp_path: Path, hsm, hsm_config, signer) -> Iterator[Tsa]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))  # the dev CA starts now
    ledger = SqliteStore(tmp_path / "ledger.sqlite")
    issuer = Issuer(
        template=TokenTemplate(signer.key_spec, load_chain(hsm_config)),
        signer=signer,
        clock=clock,
        store=ledger,
        profile=Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,)),
        settings=IssuanceSettings(),
    )
    yield Tsa(issuer, clock, ledger, hsm.ca_file)
    ledger.close()


@dataclass(frozen=True)
class BouncyCastle:
    """`check(record, data, tmp, at)`: (exit status, BouncyCastle's one-line verdict)."""

    classes: Path
    ca_file: Path

    def check(self, record: bytes, data: bytes, tmp: Path, at: datetime) -> tuple[int, str]:
        (tmp / "r.ers").write_bytes(record)
        (tmp / "d.bin").write_bytes(data)
        cp = ":".join(str(p) for p in [self.classes, *BC_JARS])
        run = subprocess.run(
            [
                "java",
                "-cp",
                cp,
                "ErsCheck",
                str(tmp / "r.ers"),
                str(tmp / "d.bin"),
                str(self.ca_file),
                str(int(at.timestamp() * 1000)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return run.returncode, (run.stdout + run.stderr).strip()


@pytest.fixture(scope="session")
def bouncycastle(hsm, tmp_path_factory: pytest.TempPathFactory) -> BouncyCastle:
    """ErsCheck compiled now; missing java or jars FAIL (scripts/bootstrap --test installs
    default-jdk-headless, libbcpkix-java and libbcprov-java): never a silent skip."""
    missing = [str(p) for p in BC_JARS if not p.is_file()]
    if missing:
        pytest.fail(
            f"BouncyCastle jars missing ({', '.join(missing)}): run scripts/bootstrap "
            "--test (libbcpkix-java, libbcprov-java)",
            pytrace=False,
        )
    classes = tmp_path_factory.mktemp("ers-java")
    try:
        subprocess.run(
            ["javac", "-d", str(classes), "-cp", ":".join(map(str, BC_JARS)), str(JAVA_SOURCE)],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except FileNotFoundError:
        pytest.fail(
            "javac missing: run scripts/bootstrap --test (default-jdk-headless)", pytrace=False
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"ErsCheck.java did not compile: {exc.stderr}", pytrace=False)
    return BouncyCastle(classes, hsm.ca_file)

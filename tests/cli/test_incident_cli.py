"""`tsa incident` refuses bad input with one clear line (exit 1), before opening the
token, the ledgers or the incidents directory: nothing is created, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tsa import write_config

TSA = str(Path(sys.executable).with_name("tsa"))
FP = "ab" * 32


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "tsa.toml",
        {"ledger": {"path": str(tmp_path / "l.sqlite"), "ops_path": str(tmp_path / "o.sqlite")}},
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--reason", "x"], "say which tokens: --key FINGERPRINT, or --from T1 --to T2"),
        (["--from", "2026-01-02T00:00:00Z", "--reason", "x"], "needs both --from and --to"),
        (
            ["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T23:59:59Z", "--reason", "x"],
            "--to (2026-01-01T23:59:59.000Z) is before --from (2026-01-02T00:00:00.000Z)",
        ),
        (["--from", "yesterday", "--to", "2026-01-01T00:00:00Z", "--reason", "x"], "ISO 8601"),
        (
            ["--from", "2026-01-01T00:00:00", "--to", "2026-01-02T00:00:00Z", "--reason", "x"],
            "has no time zone",
        ),
        (["--key", "abc", "--reason", "x"], "--key: not a SHA-256 fingerprint"),
        (["--key", "g" * 64, "--reason", "x"], "--key: not a SHA-256 fingerprint"),
        (["--key", FP], "--reason: say what happened"),
        (["--key", FP, "--reason", "   "], "--reason: say what happened"),
        (["--key", FP, "--reason", "x" * 1001], "1 to 1000 characters"),
        (["--key", FP, "--reason", "x", "--max-tokens", "0"], "--max-tokens must be"),
    ],
)
def test_bad_input_is_refused_clearly(
    config: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    done = subprocess.run(
        [TSA, "incident", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsa.toml"]  # nothing made


def test_verify_refuses_what_is_not_a_report(config: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "r.json"
    bogus.write_text('{"hello": 1}')
    base = [TSA, "incident", "verify", str(bogus), "--config", str(config)]
    done = subprocess.run([*base, "--vkey", "nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--vkey: not a verifier key" in done.stderr
    vkey = "example.com/log+ac8b2b04+AZEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEj"
    done = subprocess.run(
        [*base, "--vkey", vkey, "--no-timestamp"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_verify_with_a_selection_is_refused(config: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [TSA, "incident", "--key", FP, "verify", str(tmp_path / "r.json"), "--vkey", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "takes no selection" in done.stderr

"""Secrets and state files (issue 13, item 15): everything the server and `tsa init`
create is private to the service user, a PIN file others can read stops the server,
and PINs never appear on a command line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, TsaServer, make_hsm


def _modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode)
        for path in [root, *root.rglob("*")]
        if not path.is_symlink()
    }


def test_every_state_file_is_private(make_server) -> None:
    server = make_server(
        evidence={"path": "var/evidence.sqlite", "blobs": "var/blobs"},
        names={"path": "var/names.sqlite"},
    ).start()
    for i in range(3):
        server.post_query(make_request(b"%d" % i))
    server.stop()
    modes = _modes(server.workdir / "var") | {
        name: stat.S_IMODE((server.workdir / name).stat().st_mode)
        for name in ("ledger.sqlite", "ops.sqlite", "ledger.sqlite.lock")
    }
    assert "ledger/tokens/checkpoint" in modes and "evidence.sqlite" in modes
    loose = {name: f"{mode:04o}" for name, mode in modes.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"


def test_an_earlier_0644_ledger_is_made_private(make_server) -> None:
    server = make_server().start()
    server.stop()
    os.chmod(server.ledger_path, 0o644)
    server.start()
    assert stat.S_IMODE(server.ledger_path.stat().st_mode) == 0o600


def test_a_pin_file_others_can_read_stops_the_server(make_server) -> None:
    server = make_server()
    pin_file = Path(server.workdir / "pin")
    pin_file.write_text(Path(_pin_path(server)).read_text())
    os.chmod(pin_file, 0o640)
    config = server.config_path.read_text().replace(_pin_path(server), str(pin_file))
    server.config_path.write_text(config)
    result = subprocess.run(
        [TSA_BIN, "serve", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )
    assert result.returncode != 0
    assert "chmod 600" in result.stderr and "Traceback" not in result.stderr
    assert pin_file.read_text().strip() not in result.stderr


def _pin_path(server: TsaServer) -> str:
    text = server.config_path.read_text()
    return text.split('pin_file = "', 1)[1].split('"', 1)[0]


def test_tsa_init_never_puts_a_pin_on_a_command_line(tmp_path: Path, softhsm_conf) -> None:
    # A softhsm2-util first on PATH records its arguments, then runs the real one.
    spy = tmp_path / "bin" / "softhsm2-util"
    spy.parent.mkdir()
    argv_log = tmp_path / "argv.log"
    spy.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"open({str(argv_log)!r}, 'a').write(repr(sys.argv) + '\\n')\n"
        "os.execv('/usr/bin/softhsm2-util', ['softhsm2-util', *sys.argv[1:]])\n"
    )
    spy.chmod(0o755)
    root = tmp_path / "hsm"
    hsm = make_hsm(root, softhsm_conf, env={"PATH": f"{spy.parent}:{os.environ['PATH']}"})
    pins = [(root / "secrets" / name).read_text().strip() for name in ("pin", "so-pin")]
    calls = argv_log.read_text()
    assert "--init-token" in calls
    assert not any(pin in calls for pin in pins), "a PIN was passed as an argument"
    for name in ("pin", "so-pin"):
        assert stat.S_IMODE((root / "secrets" / name).stat().st_mode) == 0o600
    assert hsm.pkcs11["token_label"] in calls

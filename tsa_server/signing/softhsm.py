"""SoftHSM2 tokens for development and tests: does a token exist, and initialising one.

Runs `softhsm2-util` with the configuration given in its own environment (`env=`), never
through this process's environment; PINs are typed at its prompts through a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path


def _softhsm_env(softhsm_conf: Path) -> dict[str, str]:
    return dict(os.environ, SOFTHSM2_CONF=str(softhsm_conf))


def _softhsm_util(softhsm_conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["softhsm2-util", *args],
        check=True,
        env=_softhsm_env(softhsm_conf),
        capture_output=True,
        text=True,
    )


def softhsm_token_exists(softhsm_conf: Path, label: str) -> bool:
    """Whether the SoftHSM2 configuration exists and holds an initialised token `label`."""
    if not softhsm_conf.exists():
        return False
    slots = _softhsm_util(softhsm_conf, "--show-slots").stdout
    return any(
        line.split(":", 1)[1].strip() == label
        for line in slots.splitlines()
        if line.strip().startswith("Label:")
    )


def init_softhsm_token(
    softhsm_conf: Path, token_dir: Path, label: str, pin: str, so_pin: str
) -> None:
    """Initialise a SoftHSM2 token (development and tests only), writing the config first
    if it does not exist. Several tokens may share one config and token directory."""
    if not softhsm_conf.exists():
        token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        softhsm_conf.write_text(
            f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
    # The PINs are typed at softhsm2-util's prompts through a pseudo-terminal: given as
    # --pin/--so-pin they would be visible to every local user in /proc/<pid>/cmdline.
    _softhsm_util_prompted(
        softhsm_conf, ["--init-token", "--free", "--label", label], [so_pin, so_pin, pin, pin]
    )


def _softhsm_util_prompted(softhsm_conf: Path, args: list[str], answers: list[str]) -> None:
    """Run softhsm2-util, answering its prompts (lines ending in ':') in order."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["softhsm2-util", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_softhsm_env(softhsm_conf),
        start_new_session=True,
    )
    os.close(slave)
    output, pending = b"", [a.encode() + b"\n" for a in answers]
    try:
        while select.select([master], [], [], 30)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.rstrip().endswith(b":"):
                os.write(master, pending.pop(0))
                output = b""
        status = process.wait(30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    if status != 0:
        # The output holds prompts and softhsm2-util's message, never a PIN (no echo).
        last = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise subprocess.CalledProcessError(status, ["softhsm2-util", *args], last[0])

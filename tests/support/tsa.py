"""Run the real TSA for tests: write a config, initialise a SoftHSM token, start
`tsa serve` as a subprocess on a free loopback port, and talk HTTP to it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.store.base import Reader

REPO = Path(__file__).resolve().parents[2]
TSA_BIN = str(Path(sys.executable).with_name("tsa"))
QUERY_TYPE = "application/timestamp-query"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def evidence_settings(root: Path, **settings) -> dict:
    """An [evidence] section with its database and blobs under ``root``."""
    return {"path": str(root / "evidence.sqlite"), "blobs": str(root / "blobs"), **settings}


@dataclass
class Hsm:
    """A SoftHSM token with a TSA key and a development CA, made once per test session."""

    root: Path
    pkcs11: dict
    certificates: dict

    @property
    def ca_file(self) -> Path:
        return Path(self.certificates["ca"])

    @property
    def chain_file(self) -> Path:
        return Path(self.certificates["chain"])


def make_hsm(
    root: Path, softhsm_conf: Path, key_type: str = "ec-p256", env: dict | None = None
) -> Hsm:
    """A token of its own (randomly labelled) in the shared SoftHSM configuration.

    One configuration per test session: the PKCS#11 library reads SOFTHSM2_CONF once per
    process, so every token a session makes must live in the same token directory. The
    token is made by `tsa init` in a subprocess because a process that has loaded SoftHSM
    does not see tokens created after that: in-process tests use the session's token."""
    root.mkdir(parents=True, exist_ok=True)
    pkcs11 = {
        "token_label": f"t-{secrets.token_hex(8)}",
        "key_label": "tsa-signing",
        "key_type": key_type,
        "pin_env": "TSA_TEST_PIN_UNSET",
        "pin_file": str(root / "secrets" / "pin"),
        "softhsm_conf": str(softhsm_conf),
    }
    certificates = {
        "chain": str(root / "certs" / "chain.pem"),
        "ca": str(root / "certs" / "ca.pem"),
    }
    config_path = write_config(root / "init.toml", {"pkcs11": pkcs11, "certificates": certificates})
    subprocess.run(
        [TSA_BIN, "init", "--config", str(config_path)],
        check=True,
        capture_output=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )
    return Hsm(root, pkcs11, certificates)


class TsaServer:
    """`tsa serve` in a subprocess; stopped with SIGTERM (or killed) by the test."""

    def __init__(self, workdir: Path, hsm: Hsm, ntp_address: str, **overrides: dict):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ledger_path = workdir / "ledger.sqlite"
        sections = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "pkcs11": dict(hsm.pkcs11),
            "certificates": dict(hsm.certificates),
            "ledger": {
                "path": str(self.ledger_path),
                "ops_path": str(workdir / "ops.sqlite"),
                "checkpoint_interval_s": 0.3,
            },
            "clock": {
                "servers": [ntp_address],
                "interval_s": 0.5,
                "max_age_s": 6.0,  # generous: a loaded CI machine delays polls
                "timeout_s": 0.5,
            },
            "logging": {"level": "INFO"},
            # The per-client limits of public endpoints would throttle suites that send
            # many requests from 127.0.0.1; tests of the limits set them.
            "limits": {f"{kind}_per_second": 0.0 for kind in ("verify", "lookup", "ledger")},
        }
        for name, values in overrides.items():
            sections.setdefault(name, {}).update(values)
        self.sections = sections
        self.config_path = write_config(workdir / "tsa.toml", sections)
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def reconfigure(self, section: str, **values: object) -> None:
        """Change keys of one section of the configuration (before a (re)start)."""
        self.sections.setdefault(section, {}).update(values)
        write_config(self.config_path, self.sections)

    @property
    def backend(self) -> str:
        """Where this server keeps its state: "postgresql" or "sqlite"."""
        return "postgresql" if self.config().database.url else "sqlite"

    def config(self):
        from tsa_server.config import load_config

        return load_config(self.config_path)

    @contextmanager
    def ledger(self, log: str = "tokens") -> Iterator[Reader]:
        """A reader of this server's ledger log ("tokens" or "ops"), on its backend."""
        from tsa_server.wiring.databases import open_reader

        reader = open_reader(self.config(), log)
        try:
            yield reader
        finally:
            reader.close()

    def ledger_tokens(self) -> list[bytes]:
        """Every token in the ledger, in index order."""
        with self.ledger() as reader:
            return [entry.token for entry in reader.entries()]

    def blob_size(self, sha256: str) -> int | None:
        """The size of the stored original with this digest, wherever this server keeps
        originals (its blobs directory or the database); None when it holds none."""
        from tsa_server.wiring.databases import open_blobs

        blobs = open_blobs(self.config(), sweep=False)
        try:
            if not blobs.exists(sha256):
                return None
            with blobs.open(sha256) as original:
                return sum(len(chunk) for chunk in iter(lambda: original.read(1 << 20), b""))
        finally:
            blobs.close()

    def ops_events(self) -> list[dict]:
        """Every event of the operations log, in index order."""
        with self.ledger("ops") as reader:
            return [json.loads(entry.token) for entry in reader.entries()]

    def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> TsaServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [TSA_BIN, "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        deadline = time.monotonic() + timeout
        path = "readyz" if wait_ready else "healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                status, _, _ = self.get(path)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not {path} within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(
        self, method: str, path: str = "", body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(
            self.url + path.lstrip("/"), data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def get(self, path: str) -> tuple[int, dict, bytes]:
        return self.request("GET", path)

    def post_query(
        self, der: bytes, path: str = "/", content_type: str = QUERY_TYPE
    ) -> tuple[int, dict, bytes]:
        return self.request("POST", path, der, {"Content-Type": content_type})

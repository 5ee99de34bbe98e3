"""TSA nodes for scripts/cluster: each a `tsa serve` process with its own time-stamping
unit (`[ledger] unit`), signing key, checkpoint key, certificate and configuration file,
all on one PostgreSQL database.

Keys: one SoftHSM token (`<root>/hsm/`) holds every unit's keys under labels of their
own (`node1-signing`, `node1-checkpoint`, ...) and the development CA's key (`dev-ca`);
its PIN is in `<root>/secrets/pin` (0600, made by `tsa init`), never in an argument, the
environment or a log. `tsa init` on the first node's configuration makes the token, the
CA (`<root>/certs/ca.pem`) and that node's certificate; every other unit's keys are
generated in the token and its certificate issued by the same CA, in a subprocess of
its own (`cluster.py unit-cert`: a process that has loaded SoftHSM does not see tokens
made after that), then `tsa init` checks it and brings the schema up to date.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TSA = str(Path(sys.executable).with_name("tsa"))
TOKEN_LABEL = "tsa-cluster"


def units_supported() -> bool:
    """Whether this server has `[ledger] unit` (several nodes on one database)."""
    from tsa_server.config.sections import LedgerConfig

    return "unit" in {f.name for f in dataclasses.fields(LedgerConfig)}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass
class Node:
    """One `tsa serve` of the cluster: its unit, port, directory and process."""

    unit: str
    port: int
    root: Path  # the cluster's directory
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def dir(self) -> Path:
        return self.root / self.unit

    @property
    def config(self) -> Path:
        return self.dir / "tsa.toml"

    @property
    def log(self) -> Path:
        return self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def settings(self, database_url: str, ntp: str, lease_seconds: float) -> dict[str, dict]:
        root, here = self.root, self.dir
        ledger: dict[str, object] = {
            "path": str(here / "ledger.sqlite"),
            "ops_path": str(here / "ops.sqlite"),
            "origin": f"localhost/tsa/ledger/{self.unit}",
            "ops_origin": f"localhost/tsa/ledger/{self.unit}-ops",
            "checkpoint_dir": str(here / "ledger" / self.unit),
            "ops_checkpoint_dir": str(here / "ledger" / f"{self.unit}-ops"),
            "checkpoint_key_label": f"{self.unit}-checkpoint",
            "checkpoint_interval_s": 1.0,
        }
        if units_supported():
            ledger["unit"] = self.unit
        return {
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "public_url": self.url.rstrip("/"),
                "pid_file": str(here / "tsa.pid"),
                "maintenance_file": str(here / "maintenance"),
                "drain_timeout_s": 5.0,
            },
            "pkcs11": {
                "token_label": TOKEN_LABEL,
                "key_label": f"{self.unit}-signing",
                "key_type": "ec-p256",
                "pin_env": "TSA_CLUSTER_PIN",
                "pin_file": str(root / "secrets" / "pin"),
                "softhsm_conf": str(root / "hsm" / "softhsm2.conf"),
            },
            "certificates": {
                "chain": str(root / "certs" / f"{self.unit}-chain.pem"),
                "ca": str(root / "certs" / "ca.pem"),
                "ca_key_label": "dev-ca",
            },
            "ledger": ledger,
            "database": {"url": database_url, "lease_seconds": lease_seconds},
            "clock": {"servers": [ntp], "accept_local_reference": True},
            "verify": {"trust_roots": str(root / "certs" / "trust")},
            "evidence": {
                "path": str(here / "evidence.sqlite"),
                "blobs": str(root / "blobs"),  # one directory every node reaches
                "pricing": str(REPO / "conf" / "pricing.toml"),
            },
            "names": {
                "path": str(here / "names.sqlite"),
                "policy": str(REPO / "conf" / "names.toml"),
            },
        }

    def write_config(self, sections: dict[str, dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lines: list[str] = ["# Written by scripts/cluster; edits are overwritten."]
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        self.config.write_text("\n".join(lines) + "\n")

    # The process

    def start(self) -> None:
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [TSA, "serve", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops us
        )
        log.close()

    def exited(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "readyz", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.exited() is not None:
                raise RuntimeError(f"{self.unit} exited during start-up: see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.unit} did not become ready: see {self.log}")
            time.sleep(0.2)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (drain, last checkpoints), SIGKILL if it does not end in time."""
        if self.process is None:
            return
        self.signal(signal.SIGCONT)  # a paused node cannot stop
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def init_units(nodes: list[Node]) -> list[str]:
    """The token, the CA and every unit's keys and certificate, and the schema
    (idempotent). Returns what `tsa init` made, one line each."""
    made: list[str] = []
    for i, node in enumerate(nodes):
        if i and not Path(node.settings("", "", 1)["certificates"]["chain"]).exists():
            subprocess.run(
                [sys.executable, str(Path(__file__).with_name("cluster.py")), "unit-cert",
                 "--config", str(node.config)],
                check=True, cwd=REPO,
            )  # fmt: skip
            made.append(f"keys and certificate of {node.unit} (CA {node.root / 'certs/ca.pem'})")
        out = subprocess.run(
            [TSA, "init", "--config", str(node.config)], capture_output=True, text=True, cwd=REPO
        )
        if out.returncode != 0:
            raise RuntimeError(f"tsa init for {node.unit} failed: {out.stderr.strip()}")
        made += [line for line in out.stdout.splitlines() if line.strip()]
    return made


def issue_unit_certificate(config_path: Path) -> None:
    """In a fresh process: the unit's signing and checkpoint keys in the shared token,
    and its TSA certificate from the development CA already there."""
    from tsa_server.config import load_config
    from tsa_server.issuance.ceremony import DEV_TSA_NAME, check_chain, ensure_key
    from tsa_server.rfc3161.verify_load import load_certificates
    from tsa_server.signing.base import KeySpec
    from tsa_server.signing.certs import issue_certificate, name_from_text, to_pem
    from tsa_server.signing.pkcs11 import Pkcs11Signer
    from tsa_server.wiring import token_location

    config = load_config(str(config_path))
    location = token_location(config)
    made: list[str] = []
    ensure_key(location, config.pkcs11.key_label, KeySpec(config.pkcs11.key_type), made)
    ensure_key(location, config.ledger.checkpoint_key_label, KeySpec.ED25519, made)
    ca_cert = load_certificates(Path(config.certificates.ca).read_bytes())[0]
    ca_signer = Pkcs11Signer(location, config.certificates.ca_key_label)
    signer = Pkcs11Signer(location, config.pkcs11.key_label)
    now = datetime.now(UTC)
    unit = config_path.parent.name
    try:
        cert = issue_certificate(
            ca_signer,
            ca_cert,
            name_from_text(f"{DEV_TSA_NAME[0]} {unit}", DEV_TSA_NAME[1]),
            signer.public_key_info(),
            now=now,
            days=825,
            ca=False,
        )
    finally:
        ca_signer.close()
        signer.close()
    chain = Path(config.certificates.chain)
    chain.write_bytes(to_pem(cert.dump()) + to_pem(ca_cert.dump()))
    check_chain(config, location, now)

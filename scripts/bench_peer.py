"""`scripts/bench --peer`: the C server kakwa/uts-server (../shared/peers/uts-server) on
the same machine, under the same load (wrk, pairwise distinct queries, the same levels and
duration), run level by level right after this project's own run of that level (ours,
peer, ours, peer...), so every ratio comes from one run. Its config keeps keep-alive and
tcp_nodelay on (the peer's README: with Nagle on the comparison is void), and the run
refuses a config without them.

The peer is built once, from the tarball beside its build.sh, into var/peer/ (or
--peer-dir); nothing is downloaded at run time: a missing tarball or build dependency
is named, with the command that installs it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_SOURCE = REPO.parent / "shared" / "peers" / "uts-server"
BUILD_PACKAGES = ("cmake", "libssl-dev", "libcivetweb-dev")


def _missing_packages() -> list[str]:
    missing = []
    for package in BUILD_PACKAGES:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in out.stdout:
            missing.append(package)
    return missing + [tool for tool in ("make", "cc", "openssl") if not shutil.which(tool)]


def build(directory: Path, port: int) -> Path:
    """The peer's binary in `directory`, built there with its build.sh on first use.
    Returns the config file, listening on 127.0.0.1:port."""
    binary, config = directory / "build" / "uts-server", directory / "uts.cnf"
    if not (binary.exists() and config.exists()):
        script, tarball = PEER_SOURCE / "build.sh", PEER_SOURCE / "uts-server-src.tar.gz"
        for needed in (script, tarball):
            if not needed.exists():
                sys.exit(f"bench --peer: {needed} is missing (the peer's source and build script)")
        missing = _missing_packages()
        if missing:
            sys.exit(
                f"bench --peer: missing build dependencies: {' '.join(missing)} "
                f"(install them: apt-get install {' '.join(missing)})"
            )
        print(f"bench --peer: building uts-server into {directory} ...", file=sys.stderr)
        directory.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["bash", script, directory, str(port)], capture_output=True, text=True
        )
        if done.returncode != 0 or not binary.exists():
            sys.exit(f"bench --peer: build.sh failed:\n{done.stdout}{done.stderr}")
    text = config.read_text()
    for setting in ("enable_keep_alive = yes", "tcp_nodelay = 1"):
        if not re.search(rf"^{re.escape(setting)}$", text, flags=re.M):
            sys.exit(f"bench --peer: {config} lacks `{setting}`: the comparison would be void")
    listen = f"listening_ports = 127.0.0.1:{port}"
    text = re.sub(r"^listening_ports = .*$", listen, text, flags=re.M)
    text = re.sub(r"^dir = .*$", f"dir = {directory.resolve() / 'pki'}", text, flags=re.M)
    config.write_text(text)
    return config


class Peer:
    """uts-server running in the foreground of its own process."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.ca = directory / "pki" / "cacert.pem"
        self.urls = [f"http://127.0.0.1:{port}/"]
        self.process: subprocess.Popen | None = None

    @property
    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None else []

    def start(self) -> None:
        config = build(self.directory, self.port)
        log = open(self.directory / "peer.log", "ab")
        self.process = subprocess.Popen(
            [self.directory / "build" / "uts-server", "-c", config],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"bench --peer: uts-server exited; see {self.directory / 'peer.log'}")
            try:
                urllib.request.urlopen(self.urls[0], timeout=1)
                return
            except urllib.error.HTTPError:
                return  # it answers (a GET is not a time-stamp query)
            except OSError:
                time.sleep(0.1)
        sys.exit("bench --peer: uts-server did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def _ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}" if peer else "-"


def print_comparison(result: dict) -> None:
    """Per level: ours, the peer's, and ours / peer (tokens/s: above 1 is faster;
    latency: below 1 is faster); CPU µs per token (ours: server and workers)."""
    peer = result["peer"]
    print(
        f"Side by side, one run (ours: {result['config']}; peer: uts-server, C/OpenSSL, key "
        "in memory, no ledger); each level ours then the peer"
    )
    head = ("tokens/s", "p50 ms", "p99 ms", "errors", "CPU µs/token")
    print(f"{'conns':>5} " + " ".join(f"{h + ' ours/peer/ratio':>31}" for h in head))
    for ours, theirs in zip(result["levels"], peer["levels"], strict=True):
        cells = []
        for key, fmt in (
            ("tokens_per_s", "{:>9}"),
            ("p50_ms", "{:>9.2f}"),
            ("p99_ms", "{:>9.2f}"),
            ("errors", "{:>9}"),
            ("node_cpu_us_per_token", "{:>9}"),
        ):
            a, b = ours[key], theirs[key]
            cells.append(f"{fmt.format(a)} {fmt.format(b)} {_ratio(a, b):>11}")
        print(f"{ours['connections']:>5} " + " ".join(cells))
    c1 = [(o, t) for o, t in zip(result["levels"], peer["levels"], strict=True)
          if o["connections"] == 1]  # fmt: skip
    if c1:
        o, t = c1[0]
        print(f"c1 p50: ours {o['p50_ms']:.2f} ms, peer {t['p50_ms']:.2f} ms")
    print(
        f"openssl ts -verify of samples: ours {result['openssl_verified']}, "
        f"peer {peer['openssl_verified']} OK",
        flush=True,
    )

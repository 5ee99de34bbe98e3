"""A real `tsa serve` with an evidence database (package-scoped: one for every page test
module; a module that changes data makes its own organisation), two organisations with
one signed-in member each and a certified item each, and Debian's chromium driven by
Playwright (package-scoped; never Playwright's own browser download)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certified import issue, put_item
from tests.support.tsa import TSA_BIN, TsaServer
from tsa_server.evidence.store import EvidenceStore

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[3]
PASSWORD_A = "correct horse battery A"
PASSWORD_B = "correct horse battery B"
CONTENT_A = b"the shop's product photo, protected\n" * 8000  # 288 kB
CONTENT_B = b"another organisation's design\n" * 100


def accounts_cli(server: TsaServer, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [TSA_BIN, "accounts", args[0], "--config", str(server.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def add_person(
    server: TsaServer, org: str, name: str, login: str, password: str, role: str = "member"
) -> str:
    """A member of `org` who signs in with `login` and `password`; their member id."""
    member = accounts_cli(server, "add-member", "--org", org, "--role", role, name)
    accounts_cli(
        server, "set-password", "--org", org, "--member", member, "--login", login,
        stdin=password + "\n",
    )  # fmt: skip
    return member


@dataclass
class Site:
    server: TsaServer
    root: Path
    org_a: str
    org_b: str
    item_a: str
    item_b: str
    token_a: bytes

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory, hsm, session_ntp) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("pages")
    evidence = {"path": str(root / "evidence.sqlite"), "blobs": str(root / "blobs")}
    names = {"path": str(root / "names.sqlite"), "policy": str(REPO / "conf/names.toml")}
    server = TsaServer(root / "tsa", hsm, session_ntp.address, evidence=evidence, names=names)
    server.start()
    try:
        org_a = accounts_cli(server, "create-org", "Shop A")
        org_b = accounts_cli(server, "create-org", "Studio B")
        add_person(server, org_a, "Ann", "ann@shop.example", PASSWORD_A, role="owner")
        add_person(server, org_b, "Bo", "bo@studio.example", PASSWORD_B)
        store = EvidenceStore(root / "evidence.sqlite")
        issued_a, issued_b = issue(server, CONTENT_A), issue(server, CONTENT_B)
        item_a = put_item(
            store,
            org_a,
            CONTENT_A,
            issued_a,
            file_name="<img src=x onerror=alert(1)>.png",
            statement="<script>alert('statement')</script>",
        )
        item_b = put_item(store, org_b, CONTENT_B, issued_b, file_name="secret-b.png")
        store.close()
        yield Site(server, root, org_a, org_b, item_a.id, item_b.id, issued_a.reply)
    finally:
        server.stop()


@pytest.fixture(scope="package")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap --test installs chromium")
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(locale="en-US")
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A tab whose console errors are collected (`page.console_errors`)."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.console_errors = errors
    return tab

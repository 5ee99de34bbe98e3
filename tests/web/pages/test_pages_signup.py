"""Self sign-up in a real browser against real servers: off by default (the package's
server: /signup is 404 and no page links to it); on ([evidence] signup = true, a server
of this module's own): the form makes an organisation with the new person as its owner,
signs them in, and its page says so; the password rules of change-password; a taken
login; a POST without the form's CSRF token is refused; and every address gets only a
few sign-ups an hour (the sign-in lock-out's limiter), with a clear message."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.tsa import TsaServer
from tests.web.pages.conftest import Site, accounts_cli
from tests.web.pages.test_accessibility import _describe, _violations
from tsa_server.accounts.membership import SIGNUP_PER_ADDRESS as PER_ADDRESS

PASSWORD = "a good long password 7"
EN = {"Accept-Language": "en"}


@dataclass
class SignupSite:
    server: TsaServer

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")


@pytest.fixture(scope="module")
def signup_site(tmp_path_factory, hsm, session_ntp) -> Iterator[SignupSite]:
    root = tmp_path_factory.mktemp("signup")
    evidence = {
        "path": str(root / "evidence.sqlite"),
        "blobs": str(root / "blobs"),
        "signup": True,
    }
    server = TsaServer(root / "tsa", hsm, session_ntp.address, evidence=evidence)
    server.start()
    try:
        yield SignupSite(server)
    finally:
        server.stop()


def _fill(tab, organisation: str, name: str, login: str, password: str, again: str) -> None:
    tab.fill("#organisation", organisation)
    tab.fill("#name", name)
    tab.fill("#login", login)
    tab.fill("#password", password)
    tab.fill("#again", again)
    tab.click("#signup-form button[type=submit]")


def test_signup_is_off_by_default(page, site: Site) -> None:
    for path in ("/", "/signin"):
        page.goto(site.url + path)
        assert page.locator("a[href='/signup']").count() == 0
    assert page.goto(site.url + "/signup").status == 404
    page.goto(site.url + "/signin")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    form = {
        "csrf": token,
        "organisation": "Nope",
        "name": "N",
        "login": "nope@x.example",
        "password": PASSWORD,
        "again": PASSWORD,
    }
    assert page.request.post(site.url + "/signup", form=form).status == 404


def test_signup_makes_an_organisation_with_its_owner(browser, signup_site: SignupSite) -> None:
    for locale, welcome in (("en-US", "you are its owner"), ("zh-CN", "您是其所有者")):
        ctx = browser.new_context(locale=locale)
        try:
            tab = ctx.new_page()
            tab.goto(signup_site.url + "/signin")
            tab.click("a#signup-link")
            tab.wait_for_url(signup_site.url + "/signup")
            login = f"lin-{locale.lower()}@design.example"
            _fill(tab, "Lin <b>Design</b>", "Lin", login, PASSWORD, PASSWORD)
            tab.wait_for_url(signup_site.url + "/organisation?welcome=1")
            assert welcome in tab.inner_text("#org-message")
            assert "Lin <b>Design</b>" in tab.inner_text("h1")
            assert tab.locator("h1 b").count() == 0
            assert tab.locator("#add-person").count() == 1  # an owner's page
            assert login in tab.inner_text("#members")
        finally:
            ctx.close()
    listing = json.loads(accounts_cli(signup_site.server, "list", "--json"))
    owners = [
        (org["name"], m["role"])
        for org in listing
        for m in org["members"]
        if org["name"] == "Lin <b>Design</b>"
    ]
    assert owners == [("Lin <b>Design</b>", "owner")] * 2


def test_signup_refusals(browser, signup_site: SignupSite) -> None:
    ctx = browser.new_context(locale="en-US")
    try:
        tab = ctx.new_page()
        tab.goto(signup_site.url + "/signup")
        _fill(tab, "Mo Studio", "Mo", "mo@studio.example", PASSWORD, PASSWORD + "x")
        assert "The two passwords differ." in tab.inner_text("#signup-error")
        assert tab.input_value("#organisation") == "Mo Studio"
        tab.evaluate("document.querySelectorAll('input[minlength]').forEach(i => i.minLength = 0)")
        _fill(tab, "Mo Studio", "Mo", "mo@studio.example", "short", "short")
        assert "10 to 1024 characters" in tab.inner_text("#signup-error")
        _fill(tab, "Mo Studio", "Mo", "lin-en-US@design.example", PASSWORD, PASSWORD)
        assert "This login is already taken" in tab.inner_text("#signup-error")
        # without the form's token nothing is made
        form = {
            "organisation": "Forged",
            "name": "F",
            "login": "forged@x.example",
            "password": PASSWORD,
            "again": PASSWORD,
        }
        reply = tab.request.post(signup_site.url + "/signup", form=form, headers=EN)
        assert reply.status == 403
        assert "Forged" not in accounts_cli(signup_site.server, "list")
    finally:
        ctx.close()


def test_signup_page_accessibility(browser, signup_site: SignupSite) -> None:
    ctx = browser.new_context(locale="zh-CN", bypass_csp=True)  # only to load axe
    try:
        tab = ctx.new_page()
        tab.goto(signup_site.url + "/signup")
        found = {"signup": _violations(tab)}
        assert not found["signup"], _describe(found)
    finally:
        ctx.close()


class Client:
    """HTTP from another loopback address (127.0.0.2): a client of its own for the
    per-address limit, with the cookies the server gives it."""

    def __init__(self, site: SignupSite) -> None:
        self.port = site.server.port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None):
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=60, source_address=("127.0.0.2", 0)
        )
        headers = {"Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            text = reply.read().decode()
            for value in reply.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
            return reply.status, text
        finally:
            conn.close()


def test_signups_per_address_are_limited(signup_site: SignupSite) -> None:
    client = Client(signup_site)
    status, text = client.request("GET", "/signup")
    assert status == 200
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)
    statuses = []
    for n in range(PER_ADDRESS + 1):
        form = {
            "csrf": token,
            "organisation": f"Bulk {n}",
            "name": "Bulk",
            "login": f"bulk{n}@x.example",
            "password": "short",  # refused, but every attempt counts
            "again": "short",
        }
        status, text = client.request("POST", "/signup", form)
        statuses.append(status)
    assert statuses == [400] * PER_ADDRESS + [429], statuses
    assert "Too many sign-ups from here" in text
    good = {**form, "login": "late@x.example", "password": PASSWORD, "again": PASSWORD}
    status, text = client.request("POST", "/signup", {**good, "organisation": "Late"})
    assert status == 429
    assert "Late" not in accounts_cli(signup_site.server, "list")

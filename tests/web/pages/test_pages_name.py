"""The trade-name pages in a real browser against a real `tsa serve`:

- the live check counts GBK bytes as one types (星辰 is 4 bytes) and says why a handle
  is refused, in both languages; applying from the page; the organisation's handles and
  their history;
- the holder's actions, each a confirmation page that says the consequence and then the
  result: a handle change refused right after approval (too_soon, in the reader's
  language), a custom-part change, a release (held for the holder) and the reclaim;
- roles: an auditor sees no action and a direct POST by it is refused; another
  organisation never sees the handle and is refused its actions; no CSRF, no action;
- on a server of its own with an operator organisation: a brand application with its
  proof from the page (and one refused for a proof that is not the organisation's), the
  operator's review, then a contest: a contender sees its own metrics beside the
  leader's only, with the objection period's end in UTC and Beijing time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.accounts.test_http import Client
from tests.support.certified import issue, put_item
from tests.support.tsa import TsaServer
from tests.web.pages.conftest import REPO, Site, accounts_cli, add_person
from tests.web.pages.test_pages_browser import sign_in
from tsa_server.evidence.store import EvidenceStore

PASSWORD_E = "correct horse battery E"
PASSWORD = "correct horse battery N"


def person(server: TsaServer, org: str, name: str, login: str, role: str = "owner") -> str:
    add_person(server, org, name, login, PASSWORD, role=role)
    return login


def enter(page, site, login: str, password: str = PASSWORD) -> None:
    sign_in(page, site, login, password)
    page.wait_for_url(site.url + "/files")


@pytest.fixture(scope="module")
def shop_e(site: Site) -> str:
    org = accounts_cli(site.server, "create-org", "Shop E")
    add_person(site.server, org, "Eve", "eve@shop.example", PASSWORD_E, role="owner")
    return org


def test_live_check_counts_gbk_bytes_while_typing(page, site: Site, shop_e: str) -> None:
    sign_in(page, site, "eve@shop.example", PASSWORD_E)
    page.wait_for_url(site.url + "/files")
    page.goto(site.url + "/name")
    assert "no handle" in page.inner_text("#own-handle")
    page.locator("#handle").press_sequentially("星辰")
    expect(page.locator("#handle-bytes")).to_have_text(re.compile("^4 bytes"))
    expect(page.locator("#handle-verdict")).to_be_visible()
    page.locator("#handle").press_sequentially("<b>")
    expect(page.locator("#handle-bytes")).to_have_text(re.compile("^4 to 14 bytes"))
    expect(page.locator("#handle-verdict")).to_contain_text("character")
    assert page.locator("#handle-verdict b").count() == 0
    assert page.console_errors == []


def test_check_without_script_and_in_chinese(browser, site: Site, shop_e: str) -> None:
    ctx = browser.new_context(locale="zh-CN", java_script_enabled=False)
    try:
        tab = ctx.new_page()
        sign_in(tab, site, "eve@shop.example", PASSWORD_E)
        tab.wait_for_url(site.url + "/files")
        tab.goto(site.url + "/name?handle=%E6%98%9F")  # 星: 2 bytes, too short
        assert tab.inner_text("h1") == "字号"
        assert tab.inner_text("#handle-bytes").startswith("2 ")
        assert "太短" in tab.inner_text("#handle-verdict")
    finally:
        ctx.close()


def test_check_endpoint_refuses_bad_input(page, site: Site) -> None:
    assert page.request.get(site.url + "/name/check").status == 400
    reply = page.request.get(site.url + "/name/check?handle=" + "x" * 5000)
    assert reply.status == 400
    good = page.request.get(site.url + "/name/check?handle=%E6%98%9F%E8%BE%B0")
    assert good.status == 200 and good.json()["bytes"] == 4


def test_apply_on_the_page_then_own_handle_and_history(page, site: Site, shop_e: str) -> None:
    sign_in(page, site, "eve@shop.example", PASSWORD_E)
    page.wait_for_url(site.url + "/files")
    forged = page.request.post(
        site.url + "/name/apply", form={"handle": "星辰", "shop_name": "星辰设计工作室"}
    )
    assert forged.status == 403
    page.goto(site.url + "/name?handle=%E6%98%9F%E8%BE%B0")
    csrf = page.get_attribute("#name-apply-form input[name=csrf]", "value")
    for bad in ({"handle": "星", "shop_name": "星辰设计工作室"}, {"handle": "x" * 500}):
        refused = page.request.post(site.url + "/name/apply", form={**bad, "csrf": csrf})
        assert 400 <= refused.status < 500, refused.status
    page.fill("#apply-shop", "星辰设计工作室")
    page.click("#name-apply-form button[type=submit]")
    page.wait_for_url(site.url + "/name")
    assert "星辰" in page.inner_text("#handle-1-title")
    assert page.locator("#handle-1 .name-history tbody tr").count() >= 1
    assert page.locator("#name-apply-form").count() == 0


# ------------------------------------------------------------ the holder's actions
@dataclass
class Holder:
    org: str
    owner: str
    auditor: str
    handle: str = "月光"


@pytest.fixture(scope="module")
def holder(site: Site) -> Holder:
    org = accounts_cli(site.server, "create-org", "Moonlight")
    owner = person(site.server, org, "Fay", "fay@moon.example")
    auditor = person(site.server, org, "Aud", "aud@moon.example", role="auditor")
    return Holder(org, owner, auditor)


def _applied(page, site: Site, h: Holder) -> None:
    page.goto(site.url + "/name?handle=" + quote(h.handle))
    page.fill("#apply-shop", h.handle + "小店")
    page.click("#name-apply-form button[type=submit]")
    page.wait_for_url(site.url + "/name")


def _holding(page, site: Site, h: Holder) -> None:
    """The holder holds its handle (whichever test of this module runs first)."""
    page.goto(site.url + "/name")
    if page.locator("#name-apply-form").count():
        _applied(page, site, h)


def test_change_refused_with_its_reason_custom_change_release_and_reclaim(
    page, browser, site: Site, holder: Holder
) -> None:
    enter(page, site, holder.owner)
    _applied(page, site, holder)
    card = page.locator("#handle-1")
    assert "月光小店" in card.inner_text() and card.locator(".changes-left").inner_text() == "5"

    # a change to another handle: the form, the review with its consequences, refused
    card.locator(".change-link").click()
    expect(page.locator("h1")).to_contain_text("Change the handle")
    consequences = page.inner_text("#consequences")
    assert "5 changes: 5 left" in consequences and "30 days" in consequences
    assert "1 month(s)" in consequences and "No credits" in consequences
    assert "too soon" not in consequences and page.locator("#change-not-now").is_visible()
    page.fill("#new_handle", "月光宝")
    page.keyboard.press("Enter")  # the keyboard alone
    expect(page.locator("#change-review")).to_contain_text("月光 → 月光宝")
    assert "can be applied for" in page.inner_text("#change-check")
    page.click("#name-confirm-form button[type=submit]")
    expect(page.locator("#name-refusal")).to_have_text(
        "Too soon after the approval or the last change of the handle."
    )
    assert "too_soon" in page.inner_text("#name-refusal-code")

    # the custom part changes freely
    page.goto(site.url + "/name/" + quote(holder.handle) + "/change")
    page.check("#change_custom")
    page.fill("#custom", "二店")
    page.click("#name-change-form button[type=submit]")
    expect(page.locator("#change-review")).to_contain_text("月光小店 → 月光二店")
    page.click("#name-confirm-form button[type=submit]")
    expect(page.locator("#name-result")).to_contain_text("active")
    assert "custom" in page.inner_text("#name-event").lower()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.inner_text("#name-event"))
    page.click("#back-to-name")
    assert "月光二店" in page.inner_text("#handle-1")

    # release: the hold and its end, confirmed, then reclaim during the hold
    page.locator("#handle-1 .release-link").click()
    assert "held for 1 month(s)" in page.inner_text("#consequences")
    assert "UTC" in page.inner_text("#hold-until")
    page.click("#name-confirm-form button[type=submit]")
    expect(page.locator("#name-result")).to_contain_text("on hold")
    page.goto(site.url + "/name")
    card = page.locator("#handle-1")
    assert "on hold" in card.inner_text() and card.locator(".hold-until").count() == 1
    assert card.locator(".change-link").count() == 0
    assert page.locator("#name-apply-form").count() == 1  # free to apply again
    card.locator(".reclaim-link").click()
    page.fill("#reclaim-shop", "月光小店")
    page.click("#name-confirm-form button[type=submit]")
    expect(page.locator("#name-result")).to_contain_text("active")
    page.goto(site.url + "/name")
    kinds = page.locator("#handle-1 .name-history tbody td:first-child").all_inner_texts()
    assert [k.lower() for k in kinds[-4:]] == [
        "approved",
        "custom part changed",
        "released",
        "reclaimed",
    ], kinds
    # the refusal's page is a 409, which the browser notes; nothing else went wrong
    assert [e for e in page.console_errors if "status of 409" not in e] == []


def test_refusal_in_chinese(browser, site: Site, holder: Holder) -> None:
    ctx = browser.new_context(locale="zh-CN")
    try:
        tab = ctx.new_page()
        enter(tab, site, holder.owner)
        _holding(tab, site, holder)
        tab.goto(site.url + "/name/" + quote("无此字号") + "/release")
        assert tab.inner_text("#name-refusal") == "您的店铺不持有该字号。"
        tab.goto(site.url + "/name/" + quote(holder.handle) + "/change")
        assert "个月" in tab.inner_text("#consequences")
    finally:
        ctx.close()


def test_roles_csrf_and_other_organisations(page, browser, site: Site, holder: Holder) -> None:
    url = site.url + "/name/" + quote(holder.handle)
    enter(page, site, holder.owner)
    _holding(page, site, holder)
    # no CSRF token: refused before anything
    assert page.request.post(url + "/release", form={"confirmed": "yes"}).status == 403
    page.goto(site.url + "/name")
    assert "active" in page.inner_text("#handle-1")

    # the auditor sees the handle, never an action; its direct POST is refused
    ctx = browser.new_context(locale="en-US")
    try:
        tab = ctx.new_page()
        enter(tab, site, holder.auditor)
        tab.goto(site.url + "/name")
        assert holder.handle in tab.inner_text("#handle-1")
        assert tab.locator(".change-link, .release-link, #name-apply-form").count() == 0
        assert tab.goto(url + "/release").status == 403
        assert "role may not" in tab.inner_text("main")
        csrf = tab.get_attribute("header form input[name=csrf]", "value")
        for action in ("release", "change", "reclaim"):
            reply = tab.request.post(
                url + "/" + action,
                form={"csrf": csrf, "confirmed": "yes", "new_handle": "月光宝"},
            )
            assert reply.status == 403, (action, reply.status)
        brand = tab.request.post(site.url + "/name/brand", form={"csrf": csrf, "handle": "x"})
        assert brand.status == 403
    finally:
        ctx.close()

    # another organisation never sees it and may not act on it
    ctx = browser.new_context(locale="en-US")
    try:
        tab = ctx.new_page()
        enter(tab, site, "bo@studio.example", "correct horse battery B")
        tab.goto(site.url + "/name")
        assert holder.handle not in tab.inner_text("main")
        assert tab.goto(url + "/release").status == 403
        assert "another organisation" in tab.inner_text("#name-refusal")
        csrf = tab.get_attribute("header form input[name=csrf]", "value")
        reply = tab.request.post(url + "/release", form={"csrf": csrf, "confirmed": "yes"})
        assert reply.status == 403 and "月光小店" not in reply.text()
        reclaim = tab.request.post(url + "/reclaim", form={"csrf": csrf, "confirmed": "yes"})
        assert reclaim.status == 409 and "nothing_to_reclaim" in reclaim.text()
    finally:
        ctx.close()
    page.goto(site.url + "/name")
    assert "active" in page.inner_text("#handle-1")  # nothing happened


# ------------------------------------------- brand application and contest (operator)
@dataclass
class Registry:
    server: TsaServer
    orgs: dict[str, str]
    operator: Client
    clients: dict[str, Client]
    proof_item: str

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, hsm, session_ntp) -> Iterator[Registry]:
    """A server of its own whose [names] operators holds one organisation."""
    root = tmp_path_factory.mktemp("names-pages")
    evidence = {"path": str(root / "evidence.sqlite"), "blobs": str(root / "blobs")}
    names = {"path": str(root / "names.sqlite"), "policy": str(REPO / "conf/names.toml")}
    server = TsaServer(root / "tsa", hsm, session_ntp.address, evidence=evidence, names=names)
    orgs = {n: accounts_cli(server, "create-org", n) for n in ("X", "P", "Q", "R", "Op")}
    text = server.config_path.read_text()
    assert [line for line in text.splitlines() if line.startswith("[")][-1] == "[names]"
    server.config_path.write_text(text + f'operators = ["{orgs["Op"]}"]\n')
    server.start()
    try:
        person(server, orgs["X"], "Xia", "xia@x.example")
        person(server, orgs["Q"], "Qiu", "qiu@q.example")
        keys = {
            n: accounts_cli(
                server,
                "create-key",
                "--org",
                orgs[n],
                "--role",
                "owner",
                "--scope",
                "admin,read,deposit",
            )
            for n in ("P", "Q", "R", "Op")
        }
        clients = {n: Client(server, k) for n, k in keys.items()}
        proof = b"trademark registration certificate, scanned\n" * 50
        store = EvidenceStore(root / "evidence.sqlite")
        item = put_item(store, orgs["X"], proof, issue(server, proof), file_name="tm-cert.pdf")
        store.close()
        yield Registry(server, orgs, clients["Op"], clients, item.id)
    finally:
        server.stop()


def _brand_form(page, reg: Registry, **fields: str) -> None:
    page.goto(reg.url + "/name/brand")
    page.fill("#brand-handle", fields.get("handle", "云朵"))
    page.fill("#brand-shop", fields.get("shop", "云朵服饰"))
    page.fill("#brand-filed", "2020-03-01")
    page.fill("#brand-number", "20200301")
    if "sha256" in fields:
        page.fill("#brand-sha256", fields["sha256"])
    else:
        page.select_option("#brand-item", reg.proof_item)
    page.click("#brand-form button[type=submit]")


def test_brand_application_then_a_contest_seen_by_a_contender(page, registry: Registry) -> None:
    reg, h = registry, quote("云朵")
    enter(page, reg, "xia@x.example")
    # a proof that is not one of the organisation's files: refused with its reason
    _brand_form(page, reg, sha256=hashlib.sha256(b"not deposited").hexdigest())
    expect(page.locator("#name-refusal")).to_have_text(
        "The proof document is not one of your organisation's protected files."
    )
    _brand_form(page, reg)
    expect(page.locator("#name-result")).to_contain_text("pending")
    page.goto(reg.url + "/name/brand")
    status = page.inner_text("#brand-status")
    assert "云朵" in status and "20200301" in status and "review" in status
    page.goto(reg.url + "/name")
    assert "Brand application" in page.inner_text("#handle-1")

    shops = {"P": "云朵数码", "Q": "云朵家居", "R": "云朵文具"}
    for n, shop in shops.items():
        status_code, _, body = reg.clients[n].call(
            "POST", "/api/v1/names/applications", {"handle": "云朵", "shop_name": shop}
        )
        assert status_code == 202 and body["status"] == "pending", body
    x, p, q, r = (reg.orgs[n] for n in "XPQR")
    code, _, body = reg.operator.call(
        "POST", f"/api/v1/names/{h}/decision", {"brand": x, "verdict": "reject"}
    )
    assert code == 200 and body["status"] == "pending", body
    metrics = {
        p: {"search_rate": "9/10", "usage_days": 900, "wangwang": True, "star_level": 17},
        q: {"search_rate": "1/2", "usage_days": 300, "star_level": 11},
        r: {"search_rate": "1/10", "usage_days": 30, "star_level": 3},
    }
    code, _, body = reg.operator.call("POST", f"/api/v1/names/{h}/decision", {"metrics": metrics})
    assert code == 200 and body["status"] == "contested", body

    page.goto(reg.url + "/name/brand")  # the rejected application is gone
    assert "pending" not in page.inner_text("#brand-status")

    page.context.clear_cookies()
    enter(page, reg, "qiu@q.example")
    page.goto(reg.url + "/name")
    card = page.locator("#handle-1")
    assert "contested" in card.inner_text()
    assert card.locator(".own-rank").inner_text() == "2"
    assert card.locator(".leader-rank").inner_text() == "1"
    table = card.locator(".contest-table").inner_text()
    assert "50.0%" in table and "90.0%" in table and "900" in table and "17" in table
    html = page.content()
    assert "10.0%" not in table and r not in html and p not in html  # never R, no shop ids
    ends = card.locator(".contest-ends").inner_text()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ends) and "Beijing" in ends
    assert card.locator(".change-link, .release-link").count() == 0
    assert page.locator("#name-apply-form").count() == 0  # bound to its application


def test_name_pages_have_no_critical_or_serious_axe_violation(
    browser, site: Site, holder: Holder
) -> None:
    from tests.web.pages.test_accessibility import _describe, _violations

    ctx = browser.new_context(locale="zh-CN", bypass_csp=True)  # only to put axe in
    found: dict[str, list[dict]] = {}
    try:
        tab = ctx.new_page()
        enter(tab, site, holder.owner)
        _holding(tab, site, holder)
        handle = "/name/" + quote(holder.handle)
        for path in ("/name", handle + "/change", handle + "/release", "/name/brand"):
            tab.goto(site.url + path)
            if violations := _violations(tab):
                found[path] = violations
        tab.goto(site.url + handle + "/change")
        tab.fill("#new_handle", "月光宝")
        tab.click("#name-change-form button[type=submit]")
        tab.wait_for_selector("#change-review")
        if violations := _violations(tab):
            found["change review"] = violations
    finally:
        ctx.close()
    assert not found, _describe(found)

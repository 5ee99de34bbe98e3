"""The trade-name page in a real browser: the live check counts GBK bytes as one types
(星辰 is 4 bytes) and says why a handle is refused, in both languages; the
organisation's handle and its history once the registry approved it (applied through
the JSON API); the check endpoint refuses bad input with a 400."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.web.pages.conftest import Site, accounts_cli
from tests.web.pages.test_pages_browser import sign_in

PASSWORD_E = "correct horse battery E"


@pytest.fixture(scope="module")
def shop_e(site: Site) -> str:
    org = accounts_cli(site.server, "create-org", "Shop E")
    member = accounts_cli(site.server, "add-member", "--org", org, "--role", "owner", "Eve")
    accounts_cli(
        site.server,
        "set-password",
        "--org",
        org,
        "--member",
        member,
        "--login",
        "eve@shop.example",
        stdin=PASSWORD_E + "\n",
    )
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
    assert "星辰" in page.inner_text("#own-handle")
    assert page.locator("#name-history tbody tr").count() >= 1
    assert page.locator("#name-apply-form").count() == 0

"""The pages that change things, in a real browser against the package's `tsa serve`:
applying for hash-only time-stamps (a folder hashed in the browser, no file byte sent,
credits and balance before confirming, already-certified warnings, each item's result),
the refusal without credits, the wallet, the stored original's actions (auto-renew,
delete with the confirmation step, re-upload), the expiring filter, /check by serial,
and the attacks: CSRF-less posts, another organisation's item, hostile names shown as
text. This module's organisations (Shop C with credits, Studio D without) are its own."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.support.certified import openssl_verify
from tests.support.tsa import TSA_BIN
from tests.web.pages.conftest import Site, accounts_cli, add_person
from tests.web.pages.test_pages_browser import sign_in

PASSWORD_C = "correct horse battery C"
PASSWORD_D = "correct horse battery D"
STORED = b"the original design, stored\n" * 500
HOSTILE = "<img src=x onerror=alert(9)>.txt"


@dataclass
class Shop:
    org: str
    stored_item: str


def _person(site: Site, org_name: str, name: str, login: str, password: str) -> str:
    org = accounts_cli(site.server, "create-org", org_name)
    add_person(site.server, org, name, login, password, role="owner")
    return org


@pytest.fixture(scope="module")
def shop(site: Site, browser) -> Shop:
    org = _person(site, "Shop C", "Cai", "cai@shop.example", PASSWORD_C)
    _person(site, "Studio D", "Dan", "dan@studio.example", PASSWORD_D)
    _grant(site, org)
    key = accounts_cli(site.server, "create-key", "--org", org, "--scope", "deposit,read")
    ctx = browser.new_context()
    try:
        metadata = {
            "depositor": "Cai",
            "work_content": "a design",
            "statement": "I made it.",
        }
        reply = ctx.request.post(
            site.url + "/api/v1/deposits/upload",
            headers={"Authorization": f"Bearer {key}"},
            multipart={
                "metadata": json.dumps(metadata),
                "file": {"name": "design.png", "mimeType": "image/png", "buffer": STORED},
            },
        )
        assert reply.status == 201, reply.text()
        stored = reply.json()["items"][0]["id"]
    finally:
        ctx.close()
    return Shop(org, stored)


def _grant(site: Site, org: str) -> None:
    result = subprocess.run(
        [TSA_BIN, "fees", "grant", "--config", str(site.server.config_path), "--org", org]
        + ["--units", "20", "--key", "lot-c-1", "--note", "test lot"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def sign_in_c(page, site: Site) -> None:
    sign_in(page, site, "cai@shop.example", PASSWORD_C)
    page.wait_for_url(site.url + "/files")


def _fill_statement(page) -> None:
    page.fill("#depositor", "Cai <b>Design</b>")
    page.fill("#work_content", "three product photos")
    page.fill("#statement", "<script>alert('s')</script> I took these photos.")


def test_apply_for_a_folder_hash_only(page, site: Site, shop: Shop, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    contents = {"a.jpg": b"A" * 300_000, "b.jpg": b"B" * 1000, HOSTILE: b"hostile\n"}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    posted = []
    page.on("request", lambda r: posted.append(r) if r.method == "POST" else None)
    sign_in_c(page, site)
    posted.clear()
    page.goto(site.url + "/apply")
    assert "19" in page.inner_text("#balance")  # 20, less the stored deposit
    page.set_input_files("#folder", str(folder))
    _fill_statement(page)
    page.click("#apply-form button[type=submit]")
    page.wait_for_url(site.url + "/apply/review")
    assert page.inner_text("#units") == "3" and page.inner_text("#review-balance") == "19"
    assert HOSTILE in page.inner_text("table.items")  # text, never markup
    assert page.locator("table.items img").count() == 0
    page.click("#confirm-form button[type=submit]")
    page.wait_for_url(site.url + "/apply")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 3
    assert "16" in page.inner_text("#result-balance")
    assert page.locator("#results img").count() == 0
    # The browser's own network log: no file byte in any POST, only digests.
    assert len(posted) == 2
    for request in posted:
        body = request.post_data_buffer or b""
        assert b"A" * 64 not in body and b"hostile\n" not in body
        assert request.sizes()["requestBodySize"] < 4000
    digest = hashlib.sha256(contents["a.jpg"]).hexdigest()
    assert digest in (posted[1].post_data or "").replace("%22", '"')
    # The item's page, with the statement as text; its token verifies against the file.
    rows.first.locator("a").first.click()
    page.wait_for_selector("#serial")
    name = page.inner_text("h1").rsplit("/", 1)[-1]
    with page.expect_download() as done:
        page.click("a[href$='/token.tsr']")
    done.value.save_as(tmp_path / "item.tsr")
    (tmp_path / "ca.pem").write_bytes(page.request.get(site.url + "/certs").body())
    openssl_verify(folder / name, tmp_path / "item.tsr", tmp_path / "ca.pem")
    assert "<script>alert('s')</script>" in page.inner_text(".statement")
    assert page.console_errors == []


def test_already_certified_file_is_flagged(page, site: Site, shop: Shop, tmp_path) -> None:
    again = tmp_path / "b.jpg"
    again.write_bytes(b"B" * 1000)  # certified by the folder test (or now, first)
    sign_in_c(page, site)
    for _ in range(2):
        page.goto(site.url + "/apply")
        page.set_input_files("#files", str(again))
        _fill_statement(page)
        page.click("#apply-form button[type=submit]")
        page.wait_for_url(site.url + "/apply/review")
        if page.locator("#already").count():
            break
        page.click("#confirm-form button[type=submit]")
        page.wait_for_selector("#results")
    assert "already certified" in page.inner_text("#already")
    assert page.locator("table.items a[href^='/files/']").count() >= 1


def test_apply_without_credits_is_refused_with_a_message(page, site: Site, shop: Shop, tmp_path):
    data = tmp_path / "x.txt"
    data.write_bytes(b"x")
    sign_in(page, site, "dan@studio.example", PASSWORD_D)
    page.wait_for_url(site.url + "/files")
    page.goto(site.url + "/apply")
    page.set_input_files("#files", str(data))
    _fill_statement(page)
    page.click("#apply-form button[type=submit]")
    page.wait_for_url(site.url + "/apply/review")
    assert "Not enough credits" in page.inner_text("#no-credits")
    assert page.locator("#confirm-form").count() == 0
    csrf = page.get_attribute("input[name=csrf]", "value")
    items = json.dumps([{"sha256": "ab" * 32, "size": 1, "file_name": "x.txt"}])
    form = {"csrf": csrf, "key": "k-1", "items": items, "depositor": "D"}
    form |= {"work_content": "w", "statement": "s"}
    reply = page.request.post(site.url + "/apply", form=form, headers={"Accept-Language": "en"})
    assert reply.status == 402 and "Nothing was debited" in reply.text()


def test_missing_statement_is_a_422_page_naming_it(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    page.goto(site.url + "/apply")
    csrf = page.get_attribute("input[name=csrf]", "value")
    items = json.dumps([{"sha256": "cd" * 32, "size": 1, "file_name": "y"}])
    form = {"csrf": csrf, "items": items, "depositor": "C", "work_content": "w"}
    reply = page.request.post(site.url + "/apply/review", form=form)
    assert reply.status == 422 and "statement" in reply.text()
    reply = page.request.post(site.url + "/apply/review", form={**form, "items": "{not json"})
    assert reply.status == 400


def test_wallet_shows_balance_lots_history_forecast(browser, site: Site, shop: Shop) -> None:
    languages = (("en-US", ("Balance", "Credit history")), ("zh-CN", ("余额", "额度记录")))
    for locale, words in languages:
        ctx = browser.new_context(locale=locale)
        try:
            tab = ctx.new_page()
            sign_in_c(tab, site)
            tab.goto(site.url + "/wallet")
            assert words[0] in tab.inner_text("#wallet-balance")
            assert words[1] in tab.inner_text("main")
            assert tab.locator("#lots tbody tr").count() == 1
            assert tab.locator("#forecast tbody tr").count() >= 12
            assert tab.locator("#entries tbody tr").count() >= 2  # the purchase, a deposit
        finally:
            ctx.close()


def test_stored_original_actions(page, site: Site, shop: Shop, tmp_path) -> None:
    sign_in_c(page, site)
    item = f"{site.url}/files/{shop.stored_item}"
    page.goto(item)
    assert page.locator("#auto-renew-form").count() == 1, page.inner_text("main")
    before = page.inner_text("#auto-renew-form button")
    page.click("#auto-renew-form button")
    page.wait_for_url(item)
    assert page.inner_text("#auto-renew-form button") != before
    page.click("#delete-link")
    page.wait_for_url(item + "/delete-original")
    assert "Download the original before you delete it" in page.inner_text("#delete-warning")
    csrf = page.get_attribute("#delete-form input[name=csrf]", "value")
    unconfirmed = page.request.post(item + "/delete-original", form={"csrf": csrf})
    assert unconfirmed.status == 422  # the service wants the confirmation
    page.check("#downloaded")
    page.click("#delete-form button[type=submit]")
    page.wait_for_url(item)
    assert "original deleted" in page.inner_text("main")
    assert page.request.get(item + "/original").status == 410
    wrong = tmp_path / "wrong.png"
    wrong.write_bytes(b"not the original")
    page.set_input_files("#reupload-file", str(wrong))
    page.click("#reupload-form button[type=submit]")
    page.wait_for_selector("h1")
    assert page.locator("#reupload-form").count() == 0  # refused: a 4xx page
    right = tmp_path / "design.png"
    right.write_bytes(STORED)
    page.goto(item)
    page.set_input_files("#reupload-file", str(right))
    page.click("#reupload-form button[type=submit]")
    page.wait_for_url(item)
    assert page.locator("#auto-renew-form").count() == 1  # active again
    assert page.request.get(item + "/original").body() == STORED


def test_expiring_filter(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    page.goto(site.url + "/files?days=400")
    assert page.locator(f"a[href='/files/{shop.stored_item}']").count() == 1
    page.goto(site.url + "/files?status=ACTIVE")  # the storage filter
    assert page.locator(f"a[href='/files/{shop.stored_item}']").count() == 1
    page.goto(site.url + "/files?status=PURGED")
    assert page.locator("table.items tbody tr").count() == 0
    page.goto(site.url + "/files?days=30")
    assert page.locator("table.items tbody tr").count() == 0
    assert page.goto(site.url + "/files?days=99999999999999").status == 200


def test_posts_without_csrf_are_refused(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    item = f"{site.url}/files/{shop.stored_item}"
    for path, form in (
        ("/apply/review", {"items": "[]"}),
        ("/apply", {"items": "[]", "key": "k"}),
        (item[len(site.url) :] + "/auto-renew", {"on": "0"}),
        (item[len(site.url) :] + "/delete-original", {"downloaded": "yes"}),
        (item[len(site.url) :] + "/reinstate", {}),
    ):
        reply = page.request.post(site.url + path, form=form, max_redirects=0)
        assert reply.status == 403, path
    reply = page.request.post(item + "/reupload", multipart={"file": "x"}, max_redirects=0)
    assert reply.status in (400, 403)
    assert page.request.get(item + "/original").status == 200  # nothing was deleted


def test_another_organisations_item_actions_are_refused(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    page.goto(site.url + "/apply")
    csrf = page.get_attribute("input[name=csrf]", "value")
    other = f"{site.url}/files/{site.item_a}"
    for path, form in (
        ("/auto-renew", {"csrf": csrf, "on": "0"}),
        ("/delete-original", {"csrf": csrf, "downloaded": "yes"}),
        ("/reinstate", {"csrf": csrf}),
    ):
        reply = page.request.post(other + path, form=form, max_redirects=0)
        assert reply.status == 404, path
    assert page.request.get(other + "/delete-original").status == 404


def test_check_by_serial_and_result_link(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    page.goto(f"{site.url}/files/{shop.stored_item}")
    serial = page.inner_text("#serial")
    page.goto(site.url + "/check")
    page.fill("#serial", serial)
    page.click("#serial-form button[type=submit]")
    page.wait_for_url(f"{site.url}/verify/serial/**")
    assert serial in page.inner_text("h1")
    reply = page.goto(site.url + "/check?serial=not-a-serial")
    assert reply.status == 400


def test_apply_page_in_chinese(browser, site: Site, shop: Shop) -> None:
    ctx = browser.new_context(locale="zh-CN")
    try:
        tab = ctx.new_page()
        sign_in_c(tab, site)
        tab.goto(site.url + "/apply")
        assert tab.inner_text("h1") == "申请时间戳认证"
        assert "申请人声明" in tab.inner_text("label[for=statement]")
    finally:
        ctx.close()


def _balance(page, site: Site) -> str:
    page.goto(site.url + "/apply/stored")
    return page.inner_text("#balance")


def test_store_originals_with_progress_and_cancel(page, site: Site, shop: Shop, tmp_path):
    big = tmp_path / "video.bin"
    big.write_bytes(bytes(range(256)) * (50 * 4096))  # 50 MiB
    sign_in_c(page, site)
    before = _balance(page, site)
    page.set_input_files("#files", str(big))
    _fill_statement(page)
    page.click("#review-button")
    expect(page.locator("#stored-review")).to_be_visible(timeout=60_000)
    assert "uses 1 credit;" in page.inner_text("#stored-summary")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 4 << 20})
    page.click("#upload-button")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"^[1-9]\d? %$"))
    page.click("#cancel-button")
    expect(page.locator("#stored-message")).to_contain_text("Cancelled")
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
    page.click("#upload-button")
    expect(page.locator("#stored-results li")).to_have_count(1, timeout=60_000)
    link = page.get_attribute("#stored-results a", "href")
    assert page.inner_text("#stored-results a") == "video.bin"
    reply = page.request.get(site.url + link + "/original")
    assert reply.status == 200 and len(reply.body()) == big.stat().st_size
    after = _balance(page, site)
    assert int(re.findall(r"\d+", after)[0]) == int(re.findall(r"\d+", before)[0]) - 1
    assert page.console_errors == []


def test_stored_posts_need_the_csrf_header(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    before = _balance(page, site)
    item = {"sha256": "ef" * 32, "file_name": "z"}
    reply = page.request.post(site.url + "/apply/precheck", data={"items": [item]})
    assert reply.status == 403 and "error" in reply.json()
    reply = page.request.post(
        site.url + "/apply/upload",
        multipart={"metadata": json.dumps({"statement": "s"}), "file": "bytes"},
    )
    assert reply.status == 403
    assert _balance(page, site) == before


def test_malformed_posts_of_a_signed_in_person_are_4xx(page, site: Site, shop: Shop) -> None:
    sign_in_c(page, site)
    page.goto(site.url + "/apply/stored")
    header = {"X-CSRF-Token": page.get_attribute("#stored-form", "data-csrf")}
    for path, body, kind in (
        ("/apply/upload", b"garbage", "multipart/form-data"),
        ("/apply/upload", b"--x\r\n\r\n", "multipart/form-data; boundary=x"),
        ("/apply/precheck", b"{not json", "application/json"),
        ("/apply/precheck", b'{"items": "nope"}', "application/json"),
        ("/apply/precheck", b'{"items": [{"sha256": "zz"}]}', "application/json"),
        (f"/files/{shop.stored_item}/reupload", b"garbage", "multipart/form-data"),
        ("/apply/review", b"csrf=x&items=%ff", "application/x-www-form-urlencoded"),
    ):
        reply = page.request.post(
            site.url + path, data=body, headers={**header, "Content-Type": kind}
        )
        assert 400 <= reply.status < 500, (path, body, reply.status)

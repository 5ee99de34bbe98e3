"""The web pages in a real browser (Debian's chromium, headless, driven by Playwright)
against a real `tsa serve`: signing in and out, wrong passwords and the lock-out, CSRF,
another organisation's item, escaping, the verification center hashing in the browser
(no file byte sent), the language switch, and the Content-Security-Policy."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.error
import urllib.request

from tests.web.pages.conftest import CONTENT_A, PASSWORD_A, PASSWORD_B, Site, add_person


def sign_in(page, site: Site, login: str = "ann@shop.example", password: str = PASSWORD_A):
    page.goto(site.url + "/signin")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")


def test_landing_page_is_bilingual_with_real_url_and_csp(page, site: Site) -> None:
    reply = page.goto(site.url + "/")
    headers = reply.headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY"
    body = page.content()
    assert f"{site.url}/tsr" in body and "URL_OF_THIS_SERVER" not in body
    assert page.locator("a[href='/certs']").count() >= 1
    assert page.locator("a[href='/policy']").count() >= 1
    assert "Time-Stamping Authority" in page.inner_text("h1")
    page.click("a[hreflang='zh-Hans']")
    assert page.inner_text("h1") == "时间戳服务中心"
    assert "验证中心" in page.inner_text("nav")
    page.click("a[hreflang='en']")
    assert page.inner_text("h1") == "Time-Stamping Authority"
    assert page.console_errors == []


def test_accept_language_picks_chinese(browser, site: Site) -> None:
    ctx = browser.new_context(locale="zh-CN")
    try:
        tab = ctx.new_page()
        tab.goto(site.url + "/check")
        assert tab.inner_text("h1") == "验证中心"
    finally:
        ctx.close()


def test_static_assets_are_fingerprinted_and_cached(page, site: Site) -> None:
    page.goto(site.url + "/check")
    href = page.get_attribute("link[rel=stylesheet]", "href")
    name = href.rsplit("/", 1)[1]
    assert len(name.split(".")) == 3 and len(name.split(".")[1]) == 12
    reply = page.request.get(site.url + href)
    assert reply.status == 200
    assert "immutable" in reply.headers["cache-control"]
    assert page.request.get(site.url + "/static/site.css").status == 404


def test_sign_in_list_detail_download_and_sign_out(page, site: Site) -> None:
    sign_in(page, site)
    page.wait_for_url(site.url + "/files")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tsa_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    rows = page.locator("table.items tbody tr")
    assert rows.count() == 1
    # The hostile file name is text, never markup: no alert, no <img> injected.
    assert page.locator("table.items img").count() == 0
    assert "<img src=x onerror=alert(1)>.png" in rows.first.inner_text()
    rows.first.locator("a").click()
    page.wait_for_url(f"{site.url}/files/{site.item_a}")
    assert page.locator("dd script").count() == 0
    assert "<script>alert('statement')</script>" in page.inner_text(".statement")
    assert page.inner_text("#serial").startswith("0x")
    assert hashlib.sha256(CONTENT_A).hexdigest() in page.content()
    with page.expect_download() as done:
        page.click("a[href$='/token.tsr']")
    assert done.value.suggested_filename.endswith(".tsr")
    pdf = page.request.get(f"{site.url}/files/{site.item_a}/certificate.pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.click("header form button[type=submit]")  # sign out
    page.wait_for_url(site.url + "/")
    page.goto(site.url + "/files")
    assert page.url.startswith(site.url + "/signin?next=/files")
    assert page.console_errors == []


def test_the_certificates_qr_code_opens_its_verification_page(page, site: Site, tmp_path) -> None:
    """What a reader of a printed certificate does: scan the QR code (zbarimg on the page
    as pdftoppm renders it) and open the URL: the time stamp's own page, in the browser."""
    sign_in(page, site)
    page.goto(f"{site.url}/files/{site.item_a}")
    serial = page.inner_text("#serial")
    pdf = page.request.get(f"{site.url}/files/{site.item_a}/certificate.pdf")
    assert pdf.status == 200
    (tmp_path / "certificate.pdf").write_bytes(pdf.body())
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "200",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(tmp_path / "certificate.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
        timeout=60,
    )
    decoded = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(tmp_path / "page.png")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    url = decoded.stdout.strip()
    assert decoded.returncode == 0 and url == f"{site.url}/verify/serial/{serial}", decoded
    page.context.clear_cookies()  # the page is public: a reader has no account
    reply = page.goto(url)
    assert reply is not None and reply.status == 200
    assert serial in page.inner_text("h1")
    assert hashlib.sha256(CONTENT_A).hexdigest() in page.content()
    assert page.console_errors == []


def test_filters_and_search(page, site: Site) -> None:
    sign_in(page, site)
    page.wait_for_url(site.url + "/files")
    page.goto(site.url + "/files?mode=STORED")
    assert page.locator("table.items tbody tr").count() == 0
    page.goto(site.url + "/files?mode=HASH_ONLY&status=&q=onerror")
    assert page.locator("table.items tbody tr").count() == 1
    page.goto(site.url + "/files?q=nothing-like-this")
    assert page.locator("table.items tbody tr").count() == 0


def test_another_organisations_item_is_never_shown(page, site: Site) -> None:
    sign_in(page, site)
    page.wait_for_url(site.url + "/files")
    assert "secret-b.png" not in page.content()
    for path in ("", "/token.tsr", "/certificate.pdf", "/kit.zip", "/original"):
        reply = page.request.get(f"{site.url}/files/{site.item_b}{path}")
        assert reply.status == 404, path
        assert "secret-b" not in reply.text()
    reply = page.goto(f"{site.url}/files/{site.item_b}")
    assert reply.status == 404 and "refused" in page.inner_text("h1")


def test_wrong_password_then_lock_out(page, site: Site) -> None:
    sign_in(page, site, "ann@shop.example", "not the password")
    assert "Wrong login or password." in page.inner_text("#signin-error")
    sign_in(page, site, "nobody@nowhere.example", "not the password")
    assert "Wrong login or password." in page.inner_text("#signin-error")  # the same answer
    # a person of their own: the lock-out lasts 15 minutes, longer than the other tests
    add_person(site.server, site.org_b, "Lo", "lo@studio.example", PASSWORD_B)
    for _ in range(5):
        sign_in(page, site, "lo@studio.example", "guess guess guess")
    assert "Too many failed sign-ins" in page.inner_text("#signin-error")
    sign_in(page, site, "lo@studio.example", PASSWORD_B)  # the right one: still locked
    assert "Too many failed sign-ins" in page.inner_text("#signin-error")
    assert "/signin" in page.url


def test_form_post_without_csrf_token_is_refused(page, site: Site) -> None:
    sign_in(page, site)
    page.wait_for_url(site.url + "/files")
    for path, form in (
        ("/signout", {}),
        ("/account/password", {"old": PASSWORD_A, "new": "x" * 12, "again": "x" * 12}),
        ("/signin", {"login": "ann@shop.example", "password": PASSWORD_A}),
    ):
        english = {"Accept-Language": "en"}
        reply = page.request.post(site.url + path, form=form, max_redirects=0, headers=english)
        assert reply.status == 403, path
        assert "Reload the page and try again" in reply.text()
        wrong = page.request.post(site.url + path, form={**form, "csrf": "0" * 64}, max_redirects=0)
        assert wrong.status == 403
    page.goto(site.url + "/files")  # still signed in: the forged sign-out did nothing
    assert page.url == site.url + "/files"


def test_session_is_rotated_at_sign_in(page, site: Site) -> None:
    planted = "attacker-chosen-session-id-0123456789abcdef0123456789"
    page.context.add_cookies([{"name": "tsa_session", "value": planted, "url": site.url}])
    sign_in(page, site)
    page.wait_for_url(site.url + "/files")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tsa_session")
    assert cookie["value"] != planted and len(cookie["value"]) >= 43


def test_next_parameter_never_leaves_the_site(page, site: Site) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        page.goto(f"{site.url}/signin?next={target}")
        assert page.get_attribute("input[name=next]", "value") == "/files"
        page.goto(f"{site.url}/lang/en?next={target}")
        assert page.url == site.url + "/"


def test_verification_center_hashes_in_the_browser(page, site: Site, tmp_path) -> None:
    data = tmp_path / "photo.bin"
    data.write_bytes(CONTENT_A)
    tsr = tmp_path / "photo.tsr"
    tsr.write_bytes(site.token_a)
    posted = []
    page.on("request", lambda r: posted.append(r) if r.method == "POST" else None)
    page.goto(site.url + "/check")
    page.set_input_files("#token", str(tsr))
    page.set_input_files("#data", str(data))
    page.click("#check-form button[type=submit]")
    page.wait_for_url(site.url + "/check")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict").startswith("VALID")
    assert "Recorded in the public ledger" in page.inner_text("#ledger")
    assert "(Beijing)" in page.content()
    assert page.get_attribute("#serial-page", "href").startswith("/verify/serial/0x")
    # The browser's own network log: one POST, smaller than the file, holding its digest.
    assert len(posted) == 1
    assert posted[0].sizes()["requestBodySize"] < len(CONTENT_A) // 4
    assert CONTENT_A[:40] not in (posted[0].post_data_buffer or b"")
    # A changed file: INVALID, with the imprint check's reason.
    data.write_bytes(CONTENT_A + b"changed")
    page.goto(site.url + "/check")
    page.set_input_files("#token", str(tsr))
    page.set_input_files("#data", str(data))
    page.click("#check-form button[type=submit]")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict").startswith("INVALID")
    failed = page.locator("table.checks tr.bad")
    assert failed.count() >= 1 and "message_imprint" in failed.first.inner_text()
    assert page.console_errors == []


def test_verification_center_refuses_garbage_with_a_page(page, site: Site, tmp_path) -> None:
    junk = tmp_path / "junk.tsr"
    junk.write_bytes(b"not a token")
    page.goto(site.url + "/check")
    page.set_input_files("#token", str(junk))
    page.fill("#digest", "ab" * 32)
    page.click("#check-form button[type=submit]")
    page.wait_for_selector("h1")
    assert "not a time-stamp token" in page.inner_text(".notice")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_bad_input_is_a_4xx_never_a_5xx(site: Site) -> None:
    opener = urllib.request.build_opener(_NoRedirect)
    for method, path in (
        ("GET", "/files/%00"),
        ("GET", "/static/%00"),
        ("POST", "/check"),
        ("GET", "/lang/fr"),
        ("POST", "/signin"),
        ("POST", "/signout"),
        ("GET", "/apply"),
        ("GET", "/apply/stored"),
        ("POST", "/apply/review"),
        ("POST", "/apply"),
        ("POST", "/apply/precheck"),
        ("POST", "/apply/upload"),
        ("GET", "/wallet"),
        ("GET", "/name"),
        ("GET", "/name/check"),
        ("POST", "/name/apply"),
        ("GET", "/organisation"),
        ("GET", "/files?days=-1&page=0&status=%00"),
        ("GET", "/files/x/delete-original"),
        ("POST", "/files/x/auto-renew"),
        ("POST", "/files/x/reupload"),
        ("GET", "/check?serial=%00"),
    ):
        req = urllib.request.Request(
            site.url + path, data=b"" if method == "POST" else None, method=method
        )
        try:
            with opener.open(req, timeout=10) as reply:
                status = reply.status
        except urllib.error.HTTPError as err:
            status = err.code
        assert 300 <= status < 500, (path, status)

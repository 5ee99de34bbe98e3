"""Organisation settings in a real browser against a real server: an owner sees the
people and roles, the API keys (never a secret) and the webhook, in both languages;
owners and admins add people, change roles and remove people within the rules (an admin
makes no owner and touches no owner; the last owner stays); an API key made on the page
shows its secret once, works against the JSON API, and is refused once revoked; webhook
URLs to loopback or private addresses are refused with the fence's reason; members and
auditors see the page read-only and the server refuses their direct POSTs (and an
auditor's deposit); a form POST without its CSRF token is refused."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from tests.web.pages.conftest import Site, accounts_cli, add_person
from tests.web.pages.test_accessibility import _describe, _violations
from tests.web.pages.test_pages_browser import sign_in

PASSWORD_G = "correct horse battery G"
PASSWORD_H = "correct horse battery H"
PASSWORD_NEW = "a brand new password 1"
EN = {"Accept-Language": "en"}


def _person(site: Site, org: str, role: str, name: str, login: str, password: str) -> str:
    return add_person(site.server, org, name, login, password, role=role)


def _signed_in(browser, site: Site, login: str, password: str, locale: str = "en-US"):
    ctx = browser.new_context(locale=locale)
    tab = ctx.new_page()
    sign_in(tab, site, login, password)
    tab.wait_for_url(site.url + "/files")
    return ctx, tab


def _csrf(tab) -> str:
    return tab.locator("input[name=csrf]").first.get_attribute("value")


def _api(site: Site, secret: str, path: str = "/api/v1/account") -> int:
    request = urllib.request.Request(site.url + path, headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _row(tab, name: str):
    return tab.locator("#members tbody tr", has_text=name)


def test_owner_sees_people_keys_webhook_member_reads_only(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio G")
    _person(site, org, "owner", "Gao <i>owner</i>", "gao@studio.example", PASSWORD_G)
    _person(site, org, "member", "Hu", "hu@studio.example", PASSWORD_H)
    secret = accounts_cli(site.server, "create-key", "--org", org, "--scope", "read")
    for locale, heading in (("en-US", "API keys"), ("zh-CN", "API 密钥")):
        ctx, tab = _signed_in(browser, site, "gao@studio.example", PASSWORD_G, locale)
        try:
            tab.click("a[href='/organisation']")
            tab.wait_for_url(site.url + "/organisation")
            assert heading in tab.inner_text("main")
            members = tab.inner_text("#members")
            assert "Gao <i>owner</i>" in members and "Hu" in members
            assert "hu@studio.example" in members
            assert tab.locator("#members i").count() == 0
            assert "Ann" not in members  # another organisation's people
            assert tab.locator("#keys tbody tr").count() == 1
            assert secret.split("_")[-1] not in tab.content()
            assert tab.locator("#webhook").count() == 1
            assert tab.locator("#add-person").count() == 1
        finally:
            ctx.close()
    ctx, tab = _signed_in(browser, site, "hu@studio.example", PASSWORD_H)
    try:
        tab.click("a[href='/organisation']")
        tab.wait_for_url(site.url + "/organisation")
        assert "Hu" in tab.inner_text("#members")
        assert tab.locator("#read-only").count() == 1
        for form in ("#add-person", "#new-key", "#set-webhook", ".role-form", ".revoke-form"):
            assert tab.locator(form).count() == 0, form
        assert tab.locator("#webhook").count() == 0
        assert tab.locator("a[href='/apply']").count() == 1  # a member deposits
        token = _csrf(tab)
        for path, form in (
            ("/organisation/people", {"name": "X", "login": "x@x.example", "role": "member"}),
            ("/organisation/keys", {"role": "member", "scopes": "read"}),
            ("/organisation/webhook", {"url": "https://93.184.216.34/hook"}),
        ):
            reply = tab.request.post(site.url + path, form={**form, "csrf": token}, headers=EN)
            assert reply.status == 403, (path, reply.status)
        assert "x@x.example" not in accounts_cli(site.server, "list", "--org", org)
    finally:
        ctx.close()


def test_people_and_roles_within_the_rules(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio P")
    _person(site, org, "owner", "Pan", "pan@studio.example", PASSWORD_G)
    ctx, tab = _signed_in(browser, site, "pan@studio.example", PASSWORD_G)
    try:
        tab.goto(site.url + "/organisation")
        # the last owner cannot demote themselves
        row = _row(tab, "Pan")
        row.locator("select[name=role]").select_option("admin")
        row.locator("button[type=submit]").click()
        assert "last owner" in tab.inner_text("#org-message")
        assert "owner" in _row(tab, "Pan").locator(".role").inner_text()
        # the owner adds a member
        tab.fill("#person-name", "Qin")
        tab.fill("#person-login", "qin@studio.example")
        tab.fill("#person-password", PASSWORD_NEW)
        tab.fill("#person-again", PASSWORD_NEW)
        tab.select_option("#person-role", "member")
        tab.click("#add-person button[type=submit]")
        assert "Qin was added as member" in tab.inner_text("#done-message")
        # ... who can sign in
        other, qin = _signed_in(browser, site, "qin@studio.example", PASSWORD_NEW)
        # the owner makes Qin an admin
        tab.goto(site.url + "/organisation")
        row = _row(tab, "Qin")
        row.locator("select[name=role]").select_option("admin")
        row.locator("button[type=submit]").click()
        assert "Qin now has the role admin" in tab.inner_text("#done-message")
        # the admin may not make an owner (not offered; a direct POST is refused)
        try:
            qin.goto(site.url + "/organisation")
            assert qin.locator("#person-role option[value=owner]").count() == 0
            form = {
                "csrf": _csrf(qin),
                "name": "Ren",
                "login": "ren@studio.example",
                "password": PASSWORD_NEW,
                "again": PASSWORD_NEW,
                "role": "owner",
            }
            reply = qin.request.post(site.url + "/organisation/people", form=form, headers=EN)
            assert reply.status == 403
            assert "Nobody can give a role higher than their own." in reply.text()
            # ... nor change or remove the owner
            assert _row(qin, "Pan").locator("form").count() == 0
            pan_id = _row(qin, "Pan").get_attribute("data-member")
            for action, extra in (("role", {"role": "member"}), ("remove", {})):
                reply = qin.request.post(
                    f"{site.url}/organisation/people/{pan_id}/{action}",
                    form={"csrf": _csrf(qin), **extra},
                    headers=EN,
                )
                assert reply.status == 403
                assert "Only an owner can change or remove an owner." in reply.text()
            # the admin adds an auditor
            qin.fill("#person-name", "Su")
            qin.fill("#person-login", "su@studio.example")
            qin.fill("#person-password", PASSWORD_NEW)
            qin.fill("#person-again", PASSWORD_NEW)
            qin.select_option("#person-role", "auditor")
            qin.click("#add-person button[type=submit]")
            assert "Su was added as auditor" in qin.inner_text("#done-message")
            # the owner removes Qin, after the confirmation step; Qin's session ends
            tab.goto(site.url + "/organisation")
            _row(tab, "Qin").locator("a.remove-link").click()
            tab.wait_for_url(re.compile(r".*/remove$"))
            tab.click("#remove-person button[type=submit]")
            assert "Qin was removed" in tab.inner_text("#done-message")
            qin.goto(site.url + "/organisation")
            assert qin.url.startswith(site.url + "/signin")
        finally:
            other.close()
        tab.goto(site.url + "/organisation")
        assert "Qin" not in tab.inner_text("#members")
        assert "Su" in tab.inner_text("#members")
        assert "Qin" not in accounts_cli(site.server, "list", "--org", org)
        # a form POST without its token changes nothing
        reply = tab.request.post(
            site.url + "/organisation/people",
            form={"name": "Wu", "login": "wu@studio.example", "role": "member"},
            headers=EN,
        )
        assert reply.status == 403 and "not sent from this site" in reply.text()
        assert "Wu" not in accounts_cli(site.server, "list", "--org", org)
    finally:
        ctx.close()


def test_key_secret_shown_once_works_then_revoked(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio K")
    _person(site, org, "admin", "Kang", "kang@studio.example", PASSWORD_G)
    ctx, tab = _signed_in(browser, site, "kang@studio.example", PASSWORD_G)
    try:
        tab.goto(site.url + "/organisation")
        assert tab.locator("#key-role option[value=owner]").count() == 0
        tab.fill("#key-name", "shop sync")
        tab.select_option("#key-role", "member")
        with tab.expect_response(lambda r: r.url.endswith("/organisation/keys")) as made:
            tab.click("#new-key button[type=submit]")
        reply = made.value
        assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
        secret = tab.inner_text("#secret").strip()
        assert re.fullmatch(r"tsa_[0-9a-f]{16}_[0-9a-f]{64}", secret)
        assert secret not in tab.url
        key_id = secret.split("_")[1]
        assert _api(site, secret) == 200
        assert _api(site, secret, "/api/v1/keys") == 200
        tab.goto(site.url + "/organisation")  # never again
        assert secret.split("_")[2] not in tab.content()
        row = tab.locator(f"#keys tr[data-key='{key_id}']")
        assert "Kang" in row.inner_text() and "active" in row.inner_text()
        # an admin cannot make an owner key (a direct POST)
        form = {"csrf": _csrf(tab), "role": "owner", "scopes": "read"}
        reply = tab.request.post(site.url + "/organisation/keys", form=form, headers=EN)
        assert reply.status == 403 and "cannot create owner keys" in reply.text()
        row.locator(".revoke-form button").click()
        assert f"The key {key_id} was revoked" in tab.inner_text("#done-message")
        assert _api(site, secret) == 401
        log = site.server.log_path.read_text(errors="replace")
        assert secret.split("_")[2] not in log
    finally:
        ctx.close()


def test_webhook_fence_and_secret_once(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio W")
    _person(site, org, "owner", "Wang", "wang@studio.example", PASSWORD_G)
    ctx, tab = _signed_in(browser, site, "wang@studio.example", PASSWORD_G)
    try:
        for url, reason in (
            ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
            ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
            ("http://93.184.216.34/hook", "only https:// URLs"),
        ):
            tab.goto(site.url + "/organisation")
            tab.fill("#webhook-url", url)
            tab.click("#set-webhook button[type=submit]")
            message = tab.inner_text("#org-message")
            assert "The webhook URL was refused" in message and reason in message, message
            assert tab.locator("p.notice#webhook").count() == 1  # still none set
        tab.fill("#webhook-url", "https://93.184.216.34/hook")
        tab.click("#set-webhook button[type=submit]")
        assert "https://93.184.216.34/hook" in tab.inner_text("#done-message")
        secret = tab.inner_text("#secret").strip()
        assert len(secret) >= 32
        tab.goto(site.url + "/organisation")
        assert "93.184.216.34" in tab.inner_text("#webhook") and secret not in tab.content()
        tab.click("#remove-webhook button")
        assert "removed" in tab.inner_text("#done-message")
        tab.goto(site.url + "/organisation")
        assert tab.locator("p.notice#webhook").count() == 1
    finally:
        ctx.close()


def test_auditor_sees_no_apply_and_cannot_deposit_or_administer(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio A")
    _person(site, org, "auditor", "Ai", "ai@studio.example", PASSWORD_H)
    ctx, tab = _signed_in(browser, site, "ai@studio.example", PASSWORD_H)
    try:
        assert tab.locator("a[href='/apply']").count() == 0
        assert tab.goto(site.url + "/apply").status == 403
        token = _csrf(tab)
        item = {"sha256": "ab" * 32, "file_name": "a.png", "size": 1}
        form = {
            "csrf": token,
            "items": json.dumps([item]),
            "depositor": "Ai",
            "work_content": "photo",
            "statement": "mine",
            "key": "auditor-attempt-0001",
        }
        reply = tab.request.post(site.url + "/apply", form=form, headers=EN)
        assert reply.status == 403
        tab.goto(site.url + "/organisation")
        assert tab.locator("#read-only").count() == 1
        reply = tab.request.post(
            site.url + "/organisation/keys",
            form={"csrf": _csrf(tab), "role": "auditor", "scopes": "read"},
            headers=EN,
        )
        assert reply.status == 403
        assert "tsa_" not in reply.text()
    finally:
        ctx.close()


def test_accessibility_of_the_settings_pages(browser, site: Site) -> None:
    """axe-core on an owner's settings page, a change's answer and a removal's
    confirmation: no critical or serious violation (bypass_csp only to load axe)."""
    org = accounts_cli(site.server, "create-org", "Studio X")
    _person(site, org, "owner", "Xu", "xu@studio.example", PASSWORD_G)
    member = _person(site, org, "member", "Ye", "ye@studio.example", PASSWORD_H)
    ctx = browser.new_context(locale="zh-CN", bypass_csp=True)
    try:
        tab = ctx.new_page()
        sign_in(tab, site, "xu@studio.example", PASSWORD_G)
        tab.wait_for_url(site.url + "/files")
        found = {}
        tab.goto(site.url + "/organisation")
        found["organisation"] = _violations(tab)
        tab.goto(f"{site.url}/organisation/people/{member}/remove")
        found["remove"] = _violations(tab)
        tab.goto(site.url + "/organisation")
        tab.click("#new-key button[type=submit]")
        tab.wait_for_selector("#secret")
        found["key made"] = _violations(tab)
        assert not any(found.values()), _describe(found)
    finally:
        ctx.close()


def test_bad_input_is_a_clear_4xx_never_a_5xx(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio B4")
    _person(site, org, "owner", "Bai", "bai@studio.example", PASSWORD_G)
    ctx, tab = _signed_in(browser, site, "bai@studio.example", PASSWORD_G)
    try:
        tab.goto(site.url + "/organisation")
        token = _csrf(tab)
        cases = (
            ("/organisation/keys", {"role": "member", "scopes": "nope"}),
            ("/organisation/keys", {"role": "emperor", "scopes": "read"}),
            ("/organisation/keys", {"role": "member", "scopes": "read", "expires_days": "-1"}),
            ("/organisation/keys", {"role": "member"}),
            ("/organisation/keys", {"role": "auditor", "scopes": "deposit"}),
            ("/organisation/keys/zz%00/revoke", {}),
            ("/organisation/keys/0123456789abcdef/revoke", {}),
            ("/organisation/people", {"name": "", "login": "a b", "role": "member"}),
            ("/organisation/people", {"name": "N", "login": "n@x.example", "role": "x"}),
            ("/organisation/people/" + "m" * 100 + "/role", {"role": "member"}),
            ("/organisation/people/mem_nobody/remove", {}),
            ("/organisation/webhook", {"url": ""}),
            ("/organisation/webhook", {"url": "https://x/" + "a" * 5000}),
            ("/organisation/webhook", {"url": "ftp://93.184.216.34/"}),
            ("/organisation/webhook/remove", {}),
        )
        for path, form in cases:
            extra = {"password": PASSWORD_NEW, "again": PASSWORD_NEW}  # ignored where unused
            reply = tab.request.post(
                site.url + path, form={"csrf": token, **extra, **form}, headers=EN
            )
            assert 400 <= reply.status < 500, (path, form, reply.status)
            assert "Traceback" not in reply.text()
        big = tab.request.post(
            site.url + "/organisation/people",
            form={"csrf": token, "name": "x" * 10000},
            headers=EN,
        )
        assert big.status == 413
        assert tab.goto(site.url + "/organisation/people/mem_nobody/remove").status == 404
    finally:
        ctx.close()

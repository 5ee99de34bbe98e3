"""Organisation settings in a real browser: an owner sees the people and roles, the API
keys (never a secret) and the webhook, in both languages; a member is refused (403),
and another organisation's people and keys never appear."""

from __future__ import annotations

from tests.web.pages.conftest import Site, accounts_cli
from tests.web.pages.test_pages_browser import sign_in

PASSWORD_G = "correct horse battery G"
PASSWORD_H = "correct horse battery H"


def _person(site: Site, org: str, role: str, name: str, login: str, password: str) -> None:
    member = accounts_cli(site.server, "add-member", "--org", org, "--role", role, name)
    accounts_cli(
        site.server,
        "set-password",
        "--org",
        org,
        "--member",
        member,
        "--login",
        login,
        stdin=password + "\n",
    )


def test_owner_sees_people_keys_webhook_member_is_refused(browser, site: Site) -> None:
    org = accounts_cli(site.server, "create-org", "Studio G")
    _person(site, org, "owner", "Gao <i>owner</i>", "gao@studio.example", PASSWORD_G)
    _person(site, org, "member", "Hu", "hu@studio.example", PASSWORD_H)
    secret = accounts_cli(site.server, "create-key", "--org", org, "--scope", "read")
    for locale, heading in (("en-US", "API keys"), ("zh-CN", "API 密钥")):
        ctx = browser.new_context(locale=locale)
        try:
            tab = ctx.new_page()
            sign_in(tab, site, "gao@studio.example", PASSWORD_G)
            tab.wait_for_url(site.url + "/files")
            tab.click("a[href='/organisation']")
            tab.wait_for_url(site.url + "/organisation")
            assert heading in tab.inner_text("main")
            members = tab.inner_text("#members")
            assert "Gao <i>owner</i>" in members and "Hu" in members
            assert tab.locator("#members i").count() == 0
            assert "Ann" not in members  # another organisation's people
            assert tab.locator("#keys tbody tr").count() == 1
            assert secret.split("_")[-1] not in tab.content()
            assert tab.locator("#webhook").count() == 1
        finally:
            ctx.close()
    ctx = browser.new_context(locale="en-US")
    try:
        tab = ctx.new_page()
        sign_in(tab, site, "hu@studio.example", PASSWORD_H)
        tab.wait_for_url(site.url + "/files")
        assert tab.locator("a[href='/organisation']").count() == 0
        assert tab.goto(site.url + "/organisation").status == 403
    finally:
        ctx.close()

"""axe-core (vendored: vendor/README.md, MPL-2.0) run in a real browser on every page,
signed out and signed in: no critical and no serious violation (each is named in the
failure message). Every page in Chinese; in English (the same markup, other words) the
public pages and the deposit form, to keep the run short."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.pages.conftest import CONTENT_A, PASSWORD_A, Site

AXE = (Path(__file__).parent / "vendor/axe-core-4.14.1.min.js").read_text(encoding="utf-8")
BLOCKING = ("critical", "serious")


def _violations(tab) -> list[dict]:
    if not tab.evaluate("typeof window.axe !== 'undefined'"):
        tab.evaluate(AXE)
    result = tab.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


def _describe(found: dict[str, list[dict]]) -> str:
    return "; ".join(
        f"{page}: {v['impact']} {v['id']} ({len(v['nodes'])}: {v['nodes'][0]['target']})"
        for page, violations in found.items()
        for v in violations
    )


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_no_critical_or_serious_violations(browser, site: Site, locale: str, tmp_path) -> None:
    every = locale == "zh-CN"
    # bypass_csp: only so that the test can put axe into the page; the CSP itself is
    # checked in test_pages_browser.py.
    ctx = browser.new_context(locale=locale, bypass_csp=True)
    tab = ctx.new_page()
    found: dict[str, list[dict]] = {}

    def check(name: str) -> None:
        violations = _violations(tab)
        if violations:
            found[name] = violations

    try:
        tab.set_content("<html><body><img src='data:,'></body></html>")  # axe does see
        assert any(v["id"] == "image-alt" for v in _violations(tab))
        public = ("/", "/check", "/signin", "/check?serial=zz")
        for path in public if every else public[:2]:
            tab.goto(site.url + path)
            check(path)
        tab.goto(site.url + "/signin")
        tab.fill("#login", "ann@shop.example")
        tab.fill("#password", PASSWORD_A)
        tab.click("form.stack button[type=submit]")
        tab.wait_for_url(site.url + "/files")
        check("/files")
        signed = (
            f"/files/{site.item_a}",
            "/wallet",
            "/organisation",
            "/name?handle=%E6%98%9F",
            "/apply/stored",
            "/apply",
        )
        for path in signed if every else signed[-1:]:
            tab.goto(site.url + path)
            check(path)
        data = tmp_path / "photo.jpg"
        data.write_bytes(CONTENT_A)
        tab.set_input_files("#files", str(data))
        tab.fill("#depositor", "A")
        tab.fill("#work_content", "photo")
        tab.fill("#statement", "mine")
        tab.click("#apply-form button[type=submit]")
        tab.wait_for_url(site.url + "/apply/review")
        check("/apply/review")
        if every:
            tab.goto(f"{site.url}/files/{site.item_b}")  # an error page (404)
            check("error page")
    finally:
        ctx.close()
    assert found == {}, _describe(found)

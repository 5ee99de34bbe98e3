"""Screenshots of every page in both languages at desktop (1280x800) and phone (390x844)
width, written to $TSA_SCREENSHOTS (scripts/screenshots sets it to docs/screenshots/);
skipped in the ordinary test run. Each is the first screen of the page (not the whole
page), reduced to a 256-colour palette so the PNGs stay small."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.tsa import TSA_BIN
from tests.web.pages.conftest import CONTENT_A, PASSWORD_A, Site
from tests.web.pages.test_pages_signup import signup_site  # noqa: F401 (a fixture)

OUT = os.environ.get("TSA_SCREENSHOTS", "")
pytestmark = pytest.mark.skipif(not OUT, reason="scripts/screenshots sets TSA_SCREENSHOTS")
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
LOCALES = {"zh": "zh-CN", "en": "en-US"}


def _small(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


@pytest.fixture(scope="module")
def credits(site: Site) -> None:
    result = subprocess.run(
        [TSA_BIN, "fees", "grant", "--config", str(site.server.config_path)]
        + ["--org", site.org_a, "--units", "50", "--key", "screenshots-lot"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_screenshots(browser, site: Site, credits, lang: str, size: str, tmp_path) -> None:
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    width, height = SIZES[size]
    ctx = browser.new_context(
        locale=LOCALES[lang], viewport={"width": width, "height": height}, device_scale_factor=1
    )
    tab = ctx.new_page()

    def shot(name: str) -> None:
        path = out / f"{name}-{lang}-{size}.png"
        tab.screenshot(path=str(path))
        _small(path)

    try:
        tab.goto(site.url + "/")
        shot("landing")
        tab.goto(site.url + "/check")
        shot("check")
        tab.goto(site.url + "/signin")
        shot("signin")
        tab.fill("#login", "ann@shop.example")
        tab.fill("#password", PASSWORD_A)
        tab.click("form.stack button[type=submit]")
        tab.wait_for_url(site.url + "/files")
        shot("files")
        tab.goto(f"{site.url}/files/{site.item_a}")
        shot("item")
        serial = tab.inner_text("#serial")
        tab.goto(f"{site.url}/verify/serial/{serial}")
        shot("verify-serial")
        tab.goto(site.url + "/apply")
        shot("apply")
        data = tmp_path / "product-photo.jpg"
        data.write_bytes(CONTENT_A)
        tab.set_input_files("#files", str(data))
        tab.fill("#depositor", "Shop A")
        tab.fill("#work_content", "product photo" if lang == "en" else "商品照片")
        tab.fill("#statement", "I took this photo." if lang == "en" else "本人拍摄了这张照片。")
        tab.click("#apply-form button[type=submit]")
        tab.wait_for_url(site.url + "/apply/review")
        shot("apply-review")
        tab.goto(site.url + "/apply/stored")
        shot("apply-stored")
        tab.goto(site.url + "/wallet")
        shot("wallet")
        tab.goto(site.url + "/name?handle=%E6%98%9F%E8%BE%B0")
        shot("name")
        tab.goto(site.url + "/organisation")
        shot("organisation")
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def handles(site: Site) -> str:
    """Shop A holds 晨光 (shop name 晨光工作室); Dawn's same shop name contests 晨光工:
    the login of Dawn's owner, who sees the contest view."""
    from tests.accounts.test_http import Client
    from tests.web.pages.conftest import accounts_cli, add_person

    dawn = accounts_cli(site.server, "create-org", "Dawn")
    add_person(site.server, dawn, "Dan", "dan@dawn.example", PASSWORD_A, role="owner")
    for org, handle in ((site.org_a, "晨光"), (dawn, "晨光工")):
        key = accounts_cli(site.server, "create-key", "--org", org, "--scope", "deposit")
        status, _, body = Client(site.server, key).call(
            "POST", "/api/v1/names/applications", {"handle": handle, "shop_name": "晨光工作室"}
        )
        assert status == 201, body
    return "dan@dawn.example"


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_name_screenshots(browser, site: Site, handles: str, lang: str, size: str) -> None:
    """The trade-name pages: the handle, its change and release, a brand application,
    and a contest seen by its contender."""
    width, height = SIZES[size]
    ctx = browser.new_context(
        locale=LOCALES[lang], viewport={"width": width, "height": height}, device_scale_factor=1
    )
    tab = ctx.new_page()

    def shot(name: str) -> None:
        path = Path(OUT) / f"{name}-{lang}-{size}.png"
        tab.screenshot(path=str(path))
        _small(path)

    def sign_in(login: str) -> None:
        tab.goto(site.url + "/signin")
        tab.fill("#login", login)
        tab.fill("#password", PASSWORD_A)
        tab.click("form.stack button[type=submit]")
        tab.wait_for_url(site.url + "/files")

    try:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        sign_in("ann@shop.example")
        tab.goto(site.url + "/name")
        shot("name-handle")
        tab.goto(site.url + "/name/%E6%99%A8%E5%85%89/change")
        shot("name-change")
        tab.goto(site.url + "/name/%E6%99%A8%E5%85%89/release")
        shot("name-release")
        tab.goto(site.url + "/name/brand")
        shot("name-brand")
        ctx.clear_cookies()
        sign_in(handles)
        tab.goto(site.url + "/name")
        tab.locator(".contest-table").scroll_into_view_if_needed()
        shot("name-contest")
    finally:
        ctx.close()


def test_certificate_in_chromium_pdf_viewer(browser, site: Site, hsm, tmp_path) -> None:
    """An evidence certificate with Chinese text (work, statement, depositor, headings) in
    Chromium's own PDF viewer, two viewport sizes (issue 19: every viewer renders it),
    and the verification center's report on it in both languages."""
    from tests.support.documents import deposit_documents
    from tests.web.pages.conftest import CHROMIUM

    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    docs = deposit_documents(site.server, hsm)
    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(docs.pdf)
    # The viewer is a plugin of the browser: its own launch, as Chromium runs it for a reader.
    viewer = browser.browser_type.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        for name, (width, height) in (("desktop", (1280, 1000)), ("page", (900, 1300))):
            ctx = viewer.new_context(viewport={"width": width, "height": height})
            tab = ctx.new_page()
            tab.goto(pdf.as_uri())
            tab.wait_for_timeout(5000)  # the viewer draws in its own process: no DOM event
            path = out / f"certificate-viewer-{name}.png"
            tab.screenshot(path=str(path))
            _small(path)
            ctx.close()
    finally:
        viewer.close()
    for lang in sorted(LOCALES):
        ctx = browser.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 800})
        tab = ctx.new_page()
        try:
            tab.goto(site.url + "/check")
            tab.check("input[name='check-kind'][value='certificate']")
            shot = out / f"check-certificate-form-{lang}-desktop.png"
            tab.screenshot(path=str(shot))
            _small(shot)
            tab.set_input_files("#certificate", str(pdf))
            tab.click("#certificate-form button[type=submit]")
            tab.wait_for_selector("#verdict")
            shot = out / f"check-certificate-{lang}-desktop.png"
            tab.screenshot(path=str(shot), full_page=True)
            _small(shot)
        finally:
            ctx.close()


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_screenshots_organisation_settings(
    browser,
    site: Site,
    signup_site,  # noqa: F811 (the fixture imported above)
    lang: str,
    size: str,
) -> None:
    """The organisation page of an owner (its forms), a new key's once-only secret (the
    key is revoked after), and the sign-up form (a server with signup on)."""
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    width, height = SIZES[size]
    ctx = browser.new_context(
        locale=LOCALES[lang], viewport={"width": width, "height": height}, device_scale_factor=1
    )
    tab = ctx.new_page()

    def shot(name: str) -> None:
        path = out / f"{name}-{lang}-{size}.png"
        tab.screenshot(path=str(path))
        _small(path)

    try:
        tab.goto(signup_site.url + "/signup")
        shot("signup")
        tab.goto(site.url + "/signin")
        tab.fill("#login", "ann@shop.example")
        tab.fill("#password", PASSWORD_A)
        tab.click("form.stack button[type=submit]")
        tab.wait_for_url(site.url + "/files")
        tab.goto(site.url + "/organisation")
        tab.locator("#add-person").scroll_into_view_if_needed()
        shot("organisation-people")
        tab.fill("#key-name", "screenshots" if lang == "en" else "截图")
        tab.click("#new-key button[type=submit]")
        tab.wait_for_selector("#secret")
        shot("organisation-key-made")
        tab.goto(site.url + "/organisation")
        tab.locator("#keys tr:has(.revoke-form) .revoke-form button").first.click()
        tab.wait_for_selector("#done-message")
    finally:
        ctx.close()

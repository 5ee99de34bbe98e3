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

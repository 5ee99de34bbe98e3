"""Every text the page templates and handlers translate has a Simplified Chinese entry
in the catalog (no English left in a Chinese page), and both catalogs hold the same
msgids."""

from __future__ import annotations

import re
from pathlib import Path

from tsa_server.web.pages import names, render

PAGES = Path(render.__file__).parent
_IN_TEMPLATE = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*[,)]""")
_IN_HANDLER = re.compile(r"translate\(\s*lang,\s*((?:\"[^\"]*\"\s*)+)\)", re.S)


def _msgids() -> set[str]:
    found: set[str] = set()
    for template in (PAGES / "templates").glob("*.html"):
        for match in _IN_TEMPLATE.finditer(template.read_text(encoding="utf-8")):
            found.add(match.group(1) if match.group(1) is not None else match.group(2))
    for module in PAGES.glob("*.py"):
        for match in _IN_HANDLER.finditer(module.read_text(encoding="utf-8")):
            found.add("".join(re.findall(r'"([^"]*)"', match.group(1))))
    return found | set(names.REASONS.values())


def test_every_page_text_has_a_chinese_translation() -> None:
    ids = _msgids()
    assert len(ids) > 150
    missing = sorted(i for i in ids if not render.CATALOGS["zh"].get(i))
    assert missing == []


def test_both_catalogs_hold_the_same_msgids() -> None:
    assert set(render.CATALOGS["zh"]) >= set(k for k, v in render.CATALOGS["en"].items() if v)
    zh_file = PAGES / "locale/zh_Hans/LC_MESSAGES/messages.po"
    en_file = PAGES / "locale/en/LC_MESSAGES/messages.po"
    ids = [
        re.findall(r"^msgid (.*)$", f.read_text(encoding="utf-8"), re.M) for f in (zh_file, en_file)
    ]
    assert ids[0] == ids[1]

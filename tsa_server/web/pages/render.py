"""Rendering the web pages: Jinja2 templates (autoescape on for every template, undefined
names are errors), the message catalogs, the reader's language, and the security headers
every page carries.

Catalogs. The gettext catalogs are the `.po` files under pages/locale/ (Simplified
Chinese and English; the msgids are the English text), read once at import with Babel's
own `.po` reader (babel.messages.pofile). There is no compile step: the .po files are
the only form in the repository and in the installed package, so nothing can be stale,
and reading two small catalogs costs a few milliseconds at start-up. A msgid without a
translation shows the msgid (English).

Language. A `lang` cookie set by the switch link (`/lang/zh` or `/lang/en`) wins;
otherwise the first of Chinese or English in the browser's Accept-Language (by q);
otherwise Chinese.

Headers. A strict Content-Security-Policy (no inline script or style, nothing from
another origin, no framing), nosniff, no referrer to other sites, and `no-store` (pages
may show a signed-in person's items).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from babel.messages.pofile import read_po

from tsa_server.web.pages import assets
from tsa_server.web.pages.security import page_context, set_pre_cookie

LANGUAGES = ("zh", "en")
_CATALOG_DIRS = {"zh": "zh_Hans", "en": "en"}
LANG_COOKIE = "lang"
BEIJING = ZoneInfo("Asia/Shanghai")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _catalog(lang: str) -> dict[str, str]:
    path = resources.files("tsa_server.web.pages").joinpath(
        f"locale/{_CATALOG_DIRS[lang]}/LC_MESSAGES/messages.po"
    )
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=_CATALOG_DIRS[lang])
    return {str(m.id): str(m.string) for m in catalog if m.id and isinstance(m.string, str)}


CATALOGS = {lang: _catalog(lang) for lang in LANGUAGES}


def _gettext(lang: str) -> Callable[[str], str]:
    table = CATALOGS[lang]

    def gettext(message: str) -> str:
        return table.get(message) or message

    return gettext


def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tsa_server.web.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    gettext = _gettext(lang)
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, lambda s, p, n: gettext(s if n == 1 else p), newstyle=True
    )
    env.globals["asset"] = assets.url
    env.filters["beijing"] = beijing
    env.filters["utc"] = utc
    return env


def translate(lang: str, message: str) -> str:
    """A message in `lang` (for texts handlers pass to templates)."""
    return _gettext(lang)(message)


def language(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    best: tuple[float, str] | None = None
    for part in request.headers.get("Accept-Language", "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0 and (best is None or q > best[0]):
            best = (q, primary)
    return best[1] if best else "zh"


def _instant(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utc(value: str | datetime | None) -> str:
    moment = _instant(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def beijing(value: str | datetime | None) -> str:
    moment = _instant(value)
    return "" if moment is None else moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


ENVIRONMENTS = {lang: _environment(lang) for lang in LANGUAGES}


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The page: `template` in the reader's language, with the security headers."""
    lang = language(request)
    body = (
        ENVIRONMENTS[lang]
        .get_template(template)
        .render({**page_context(request), "lang": lang, **context})
    )
    response = web.Response(text=body, content_type="text/html", charset="utf-8", status=status)
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    set_pre_cookie(request, response)
    return response


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """A clear page for a refused request (`message` is already in the reader's language,
    or a domain error's English reason)."""
    return render(request, "error.html", {"status": status, "message": message}, status=status)

"""The web pages for people (issue 18): server-rendered HTML over the same services as
the JSON API, in Simplified Chinese and English.

- `render`: Jinja2 (autoescape everywhere), the Babel-read catalogs under locale/, the
  reader's language, the security headers (strict CSP); `assets`: static files under
  /static/ with content-hash names;
- `security`: sessions (accounts/people.py), CSRF tokens, safe `next=` paths;
  `guard.page`: errors as pages;
- pages: `site` (GET /, the language switch), `signin` (sign in and out, password),
  `check` (the public verification center), `files` (protected files), `organisation`
  (its people, API keys and webhook: `organisation_people`, `organisation_keys`),
  `signup` (self sign-up, when [evidence] signup is on).

The URLs are spelled in web/routes.py; `setup` gives the app its `People`.
"""

from __future__ import annotations

from aiohttp import web

from tsa_server.accounts.membership import MembershipStore, signup_limits
from tsa_server.accounts.people import People
from tsa_server.web.pages.security import MEMBERSHIP_STORE, PEOPLE, SIGNUP_LIMITS
from tsa_server.wiring import Services


def setup(app: web.Application, services: Services) -> None:
    """Sign-in for the members of the evidence database's organisations (none without
    an [evidence] database: the sign-in pages are then 404)."""
    store = services.evidence
    if store is not None:
        app[PEOPLE] = People(store.db)
        app[MEMBERSHIP_STORE] = MembershipStore(store.db)
        if services.config.evidence.signup:
            app[SIGNUP_LIMITS] = signup_limits()

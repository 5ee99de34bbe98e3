"""The registry's refusals in the reader's words: `REASONS` holds a sentence (an English
msgid of the page catalogs) for each reason code a shop can meet (names/reasons.py), and
`refusal_page` shows a names error as the page of a refused action, with the status the
JSON API gives it (web/errors.py) and the registry's own detail beside the sentence."""

from __future__ import annotations

from aiohttp import web

from tsa_server.names.errors import NameRefused, NamesError
from tsa_server.web.errors import error_response
from tsa_server.web.pages.render import language, render, translate

#: The refusals, in words (others show the registry's detail).
REASONS = {
    "bad_character": "It has a character a handle may not use.",
    "too_short": "It is too short.",
    "too_long": "It is too long.",
    "not_in_shop_name": "It must appear in your shop name.",
    "not_prefix": "It must begin your shop name.",
    "banned_word": "It contains a word that is not allowed.",
    "restricted_alone": "This word may not be a handle on its own.",
    "all_restricted": "It is made only of restricted words.",
    "brand_proof_required": "It needs proof that the brand is yours.",
    "taken": "Another shop holds it.",
    "pending_elsewhere": "Another shop has applied for it.",
    "contested": "It is being contested.",
    "on_hold": "It is on hold after a release.",
    "under_review": "It is under review.",
    "reserved": "It is reserved.",
    "shop_blocked": "Your shop is in its blocking period and cannot apply.",
    "shop_deleted": "Your shop was deleted: a new shop may apply.",
    "shop_too_new": "Your shop opened too late for this campaign.",
    "window_not_open": "The application window is not open yet.",
    "window_closed": "The application window is closed.",
    "mark_required": "A brand application needs a trademark.",
    "mark_not_listed": "The trademark is not listed in the national trademark database.",
    "mark_too_recent": "The trademark application is too recent.",
    "mark_mismatch": "The handle must be the trademark's text.",
    "proof_required": "A brand application needs its proof document.",
    "evidence_not_found": "The proof document is not one of your organisation's protected files.",
    "brand_review_pending": "A brand application for this handle awaits the operator's review.",
    "already_applied": "Your shop has already applied for a handle.",
    "already_holds": "Your shop already holds a handle.",
    "change_frozen": "Handles cannot be changed or released before the campaign ends.",
    "quota_exhausted": "Every handle change allowed has been used.",
    "too_soon": "Too soon after the approval or the last change of the handle.",
    "not_holder": "Your shop does not hold this handle.",
    "not_owner": "This handle belongs to another organisation.",
    "nothing_to_reclaim": "There is nothing to reclaim: the handle is not on hold.",
    "hold_expired": "The hold is over: apply for the handle instead.",
    "not_yet_published": "Results are not published yet.",
    "complaint_pending": "A trademark complaint against this handle is open.",
    "not_contested": "This handle is not contested.",
    "objection_closed": "The objection period is over.",
}


def reason_text(lang: str, reason: str, detail: str = "") -> str:
    """The sentence for `reason`, or the registry's detail when there is none."""
    if reason in REASONS:
        return translate(lang, REASONS[reason])
    return detail or reason


def refusal_page(request: web.Request, exc: NamesError) -> web.Response:
    """A refused handle operation: the reason in the reader's language, the registry's
    code and detail, the API's status."""
    status = error_response(exc).status
    lang = language(request)
    if isinstance(exc, NameRefused):
        reason = exc.refused.reason.value
        message, detail = reason_text(lang, reason, exc.refused.detail), exc.refused.detail
    else:
        reason, message, detail = "", str(exc), ""
    context = {"reason": reason, "message": message, "detail": detail, "status": status}
    return render(request, "name_refused.html", context, status=status)

"""Validity of a handle and of a shop name, with a precise refusal (H-1 .. H-9, G-7).

The functions are pure and cheap, so a live "check while typing" endpoint can call
them on every keystroke: a `Check` carries both byte counts, the verdict and the
reason. Availability (H-4, H-12) needs the registry and is checked there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .charset import Measure, fold, measure, normalize
from .config import BrandMatch, Policy
from .reasons import Field, Refusal, Refused
from .words import Lexicon


@dataclass(frozen=True)
class Check:
    """Verdict on a handle (and optionally the shop name it heads)."""

    handle: Measure
    shop_name: Measure | None = None
    refused: Refused | None = None

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def reason(self) -> Refusal | None:
        return self.refused.reason if self.refused else None

    @property
    def custom(self) -> str | None:
        """The custom part (自定义区) of a valid shop name: what follows the handle."""
        if self.shop_name is None or not self.ok:
            return None
        return self.shop_name.text[len(self.handle.text) :]


def name_key(text: str, policy: Policy) -> str:
    """H-4 comparison key: NFKC, plus case-fold unless the policy turns it off (A-14)."""
    return fold(text) if policy.case_insensitive else normalize(text)


def compose_shop_name(handle: str, custom: str) -> str:
    """H-1: shop name = handle + optional custom part."""
    return normalize(handle) + normalize(custom)


def _size(m: Measure, low: int, high: int, where: Field) -> Refused | None:
    if m.bad_chars:
        shown = " ".join(f"U+{ord(c):04X}" for c in m.bad_chars)
        return Refused(Refusal.BAD_CHARACTER, shown, where)
    assert m.byte_length is not None
    if m.byte_length < low:
        return Refused(Refusal.TOO_SHORT, f"{m.byte_length} < {low} bytes", where)
    if m.byte_length > high:
        return Refused(Refusal.TOO_LONG, f"{m.byte_length} > {high} bytes", where)
    return None


def _handle_words(text: str, lexicon: Lexicon, policy: Policy, brand_proof: bool) -> Refused | None:
    banned = lexicon.find_banned(text)
    if banned:
        return Refused(Refusal.BANNED_WORD, banned, Field.HANDLE)  # H-5
    cover = lexicon.restricted_cover(text)
    if cover:  # H-6: segmentation into restricted words covers "alone" (one piece)
        reason = Refusal.RESTRICTED_ALONE if len(cover) == 1 else Refusal.ALL_RESTRICTED
        return Refused(reason, "+".join(cover), Field.HANDLE)
    if not brand_proof:
        brand = lexicon.find_brand(text, exact=policy.brand_match is BrandMatch.EXACT)
        if brand:
            return Refused(Refusal.BRAND_PROOF_REQUIRED, brand, Field.HANDLE)  # H-9
    return None


def check_handle(
    handle: str, lexicon: Lexicon, policy: Policy, *, brand_proof: bool = False
) -> Check:
    """Characters, length 4-14 bytes, banned, restricted and brand words of a handle."""
    m = measure(handle)
    refused = _size(m, policy.handle_min_bytes, policy.handle_max_bytes, Field.HANDLE)
    if refused is None:
        refused = _handle_words(m.text, lexicon, policy, brand_proof)
    return Check(m, None, refused)


def _shop_rules(handle: str, shop: Measure, lexicon: Lexicon, policy: Policy) -> Refused | None:
    refused = _size(shop, policy.shop_name_min_bytes, policy.shop_name_max_bytes, Field.SHOP_NAME)
    if refused:
        return refused
    hkey, skey = name_key(handle, policy), name_key(shop.text, policy)
    if hkey not in skey:  # H-7 anti-squatting: text already in the shop's name
        return Refused(Refusal.NOT_IN_SHOP_NAME, handle, Field.HANDLE)
    if not skey.startswith(hkey):  # H-1 [DECISION]: the handle stands at the front
        return Refused(Refusal.NOT_PREFIX, handle, Field.HANDLE)
    custom = shop.text[len(handle) :]
    for text, where in ((custom, Field.CUSTOM), (shop.text, Field.SHOP_NAME)):
        banned = lexicon.find_banned(text)  # H-5 and A-22: custom part and whole name
        if banned:
            return Refused(Refusal.BANNED_WORD, banned, where)
    return None


def check_shop_name(
    handle: str, shop_name: str, lexicon: Lexicon, policy: Policy, *, brand_proof: bool = False
) -> Check:
    """Full check of an application or change: the handle, then the shop name it heads.

    Order: handle characters and length, shop-name characters and length, H-7
    (contained), H-1 (prefix), banned words, restricted words, brands.
    """
    h = measure(handle)
    s = measure(shop_name)
    refused = (
        _size(h, policy.handle_min_bytes, policy.handle_max_bytes, Field.HANDLE)
        or _shop_rules(h.text, s, lexicon, policy)
        or _handle_words(h.text, lexicon, policy, brand_proof)
    )
    return Check(h, s, refused)


def check_custom(handle: str, custom: str, lexicon: Lexicon, policy: Policy) -> Check:
    """Shop name made of a held handle and a new custom part (H-1, H-5, A-22).

    The held handle is not re-judged for restricted or brand words; banned words are
    still searched across the whole new shop name.
    """
    h = measure(handle)
    s = measure(compose_shop_name(handle, custom))
    return Check(h, s, _shop_rules(h.text, s, lexicon, policy))

"""The template of a lean frame: split the later tokens of a frame in a few slices.

Made from a token that ``verify_lean_der.split_token`` split, a ``Template`` holds the
frame's constant bytes in the slices between the per-token values (eContent,
messageDigest value, signature) and walks only the headers whose lengths follow those
values. A token it splits has exactly the template token's frame key: each constant
slice is a piece of that key, and the per-token lengths and the TSTInfo from its serial
on are parsed as strictly as ``split_token`` parses them. So it takes the same
per-token checks (``verify_lean``) at a fraction of the cost; anything else raises
NotLean and the caller walks it in full.
"""

from __future__ import annotations

from .verify_lean_der import (
    MESSAGE_DIGEST_OID,
    SIGNED_DATA_OID,
    LeanToken,
    NotLean,
    Values,
    der_children,
    der_expect,
    split_token,
    tst_head,
    tst_tail,
)

__all__ = ["Template"]

# Where a token's values lie: eContent start and end, the bytes from there to the
# messageDigest value, its start and end, the bytes from there to the signature, the
# signature's start, the signed attributes' start.
_Layout = tuple[int, int, bytes, int, int, bytes, int, int]


class Template:
    """One frame's constant bytes, in the slices between a token's per-token values."""

    __slots__ = (
        "sd_head", "content_type", "middle", "signer_head", "digest_size", "signer_tail",
        "attrs_at", "attrs_size", "tst_head", "hash_size", "tst_tail_key", "econtent_at",
        "_layouts",
    )  # fmt: skip

    def __init__(self, der: bytes) -> None:
        """The template of ``der``, a token ``split_token`` splits; NotLean otherwise."""
        tst_key = split_token(der).key[3]  # type: ignore[index]
        (top,) = der_children(der, 0, len(der))
        info = der_children(der, top[2], top[3])
        (signed_data,) = der_children(der, info[1][2], info[1][3])
        parts = der_children(der, signed_data[2], signed_data[3])
        encap = der_children(der, parts[2][2], parts[2][3])
        ((_, _, e_start, e_end),) = der_children(der, encap[1][2], encap[1][3])
        ((_, _, signer, signer_end),) = der_children(der, parts[-1][2], parts[-1][3])
        si = der_children(der, signer, signer_end)
        digest_at = digest_end = 0
        for _, _, content, after in der_children(der, si[3][2], si[3][3]):
            oid, values = der_children(der, content, after)
            if der[oid[1] : oid[3]] == MESSAGE_DIGEST_OID:
                digest_at, digest_end = der_children(der, values[2], values[3])[0][2:]
        self.sd_head = der[parts[0][1] : parts[1][3]]
        self.content_type = der[encap[0][1] : encap[0][3]]
        self.middle = der[parts[3][1] : parts[3][3]] if len(parts) == 5 else b""
        self.signer_head = der[si[0][1] : digest_at]
        self.digest_size = digest_end - digest_at
        self.signer_tail = der[digest_end : si[4][3]]
        self.attrs_at, self.attrs_size = si[3][1] - si[0][1], si[3][3] - si[3][1]
        tst = der[e_start:e_end]
        end, _, imprint, serial_at = tst_head(tst)
        ((_, _, _, algorithm_end), (_, _, hash_at, _)) = der_children(
            tst, der_expect(tst, imprint, end, 0x30)[0], serial_at
        )
        self.tst_head = tst[der_expect(tst, 0, len(tst), 0x30)[0] : hash_at]
        self.hash_size = serial_at - hash_at
        self.tst_tail_key = tst_key[2:]
        self.econtent_at = e_start
        self._layouts: dict[tuple[bytes, int], _Layout] = {}

    def split(self, der: bytes) -> Values:
        """``der``'s per-token values, when its frame is this template's; NotLean else.

        Tokens of one frame differ in few lengths: the walk of the headers is kept per
        (the bytes up to the eContent, the token's size), which fix every header; a
        later token with both equal must then match the kept token's bytes between
        its per-token values."""
        n = len(der)
        key = (der[: self.econtent_at], n)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._walk(der)
            if layout[0] == self.econtent_at:
                if len(self._layouts) >= 256:
                    self._layouts.clear()
                self._layouts[key] = layout
        e_start, e_end, between, digest_at, tail_at, after, signature, attrs = layout
        if not (der.startswith(between, e_end) and der.startswith(after, tail_at)):
            raise NotLean("another frame")
        tst = der[e_start:e_end]
        start, end = der_expect(tst, 0, len(tst), 0x30)
        if end != len(tst) or not tst.startswith(self.tst_head, start):
            raise NotLean("another frame")
        hash_at = start + len(self.tst_head)
        serial, gen_ms, *tail_key, extensions = tst_tail(tst, hash_at + self.hash_size, end)
        if tuple(tail_key) != self.tst_tail_key:
            raise NotLean("another frame")
        return (
            tst,
            der[digest_at:tail_at],
            b"\x31" + der[attrs + 1 : attrs + self.attrs_size],
            der[signature:],
            LeanToken(serial, gen_ms, tst[hash_at : hash_at + self.hash_size], extensions),
        )

    def _walk(self, der: bytes) -> _Layout:
        """Where ``der``'s per-token values lie, checking every header around them."""
        n = len(der)
        start, end = der_expect(der, 0, n, 0x30)
        if end != n or not der.startswith(SIGNED_DATA_OID, start):
            raise NotLean("not a SignedData ContentInfo")
        start, end = der_expect(der, start + len(SIGNED_DATA_OID), n, 0xA0)
        start, sd_end = der_expect(der, start, n, 0x30)
        if end != n or sd_end != n or not der.startswith(self.sd_head, start):
            raise NotLean("another frame")
        start, encap_end = der_expect(der, start + len(self.sd_head), n, 0x30)
        if not der.startswith(self.content_type, start):
            raise NotLean("another frame")
        start, end = der_expect(der, start + len(self.content_type), encap_end, 0xA0)
        e_start, e_end = der_expect(der, start, end, 0x04)
        if end != encap_end or e_end != end or not der.startswith(self.middle, end):
            raise NotLean("another frame")
        start, end = der_expect(der, end + len(self.middle), n, 0x31)
        signer, signer_end = der_expect(der, start, end, 0x30)
        if end != n or signer_end != n or not der.startswith(self.signer_head, signer):
            raise NotLean("another frame")
        digest_at = signer + len(self.signer_head)
        tail_at = digest_at + self.digest_size
        if not der.startswith(self.signer_tail, tail_at):
            raise NotLean("another frame")
        signature, end = der_expect(der, tail_at + len(self.signer_tail), n, 0x04)
        if end != n:
            raise NotLean("another frame")
        between, after = der[e_end:digest_at], der[tail_at:signature]
        return e_start, e_end, between, digest_at, tail_at, after, signature, signer + self.attrs_at

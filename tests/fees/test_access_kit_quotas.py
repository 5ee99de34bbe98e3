"""REC-4 (proofs never held hostage), REC-6 (evidence kit), REC-10 (roles, keys, quotas)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.fees.conftest import MB, bj, item, wallet
from tsa_server.fees import (
    Artefact,
    Mode,
    OriginalLocked,
    QuotaExceeded,
    StorageStatus,
    certificate_fields,
    delete_original,
    downloadable,
    plan_kit,
    require_download,
    tick,
)
from tsa_server.fees.access import openssl_recipe, shell_word
from tsa_server.fees.kit import safe_name
from tsa_server.fees.quotas import (
    RateLimit,
    Usage,
    check_quota,
    month_window,
    take,
)

PROOFS = frozenset(Artefact) - {Artefact.ORIGINAL}


def states():
    a = item("A", 500 * MB, bj(2023, 11, 1))
    w = wallet(("L", 2, bj(2024, 6, 1)))
    expired = tick(w, [a], bj(2024, 11, 1)).items["A"]
    purged = tick(w, [a], bj(2025, 6, 1)).items["A"]
    deleted = delete_original(a, bj(2024, 1, 1), downloaded_confirmed=True).item
    hash_only = item("H", 10, bj(2024, 1, 1), mode=Mode.HASH_ONLY)
    return {
        "active": a,
        "expired": expired,
        "purged": purged,
        "deleted": deleted,
        "hash_only": hash_only,
    }


def test_a6_only_the_original_is_ever_locked() -> None:
    s = states()
    assert s["purged"].status is StorageStatus.PURGED
    assert downloadable(s["active"]) == frozenset(Artefact)
    for name in ("expired", "purged", "deleted", "hash_only"):
        assert downloadable(s[name]) == PROOFS, name
        for proof in PROOFS:
            require_download(s[name], proof)
        with pytest.raises(OriginalLocked):
            require_download(s[name], Artefact.ORIGINAL)


def test_rec4_certificate_fields() -> None:
    a = item("A", 500 * MB, bj(2023, 11, 1, 4, 5, 6))
    f = certificate_fields(
        a,
        tsa_name="CN=Test TSA",
        policy_oid="1.2.3.4",
        hash_algorithm="sha256",
        verify_base_url="https://tsa.example/",
    )
    assert f["serial"] == "SA" and f["sha256"] == a.digests.sha256
    assert f["gen_time_utc"] == "2023-10-31T20:05:06Z"
    assert f["gen_time_beijing"] == "2023-11-01T04:05:06+08:00"
    assert f["verify_url"] == "https://tsa.example/verify?serial=SA"
    assert f["mode"] == "stored" and "2024-11-01T04:05:06+08:00" in str(f["storage_at_issue"])
    recipe = f["openssl_recipe"]
    assert len(recipe) == 3 and "openssl ts -verify" in recipe[2]
    assert f["depositor"] == "Alice" and f["size_bytes"] == 500 * MB


def test_rec6_kit_includes_the_original_only_when_downloadable() -> None:
    active = item("A", 500 * MB, bj(2024, 5, 1))
    e = item("E", 500 * MB, bj(2023, 11, 1))
    expired = tick(wallet(("L", 2, bj(2024, 6, 1))), [e], bj(2024, 11, 1)).items["E"]
    hash_only = item("H", 10, bj(2024, 1, 1), mode=Mode.HASH_ONLY)
    plan = plan_kit([active, expired, hash_only], bj(2025, 1, 1))
    by_item: dict[str, set[Artefact]] = {}
    for f in plan.files:
        by_item.setdefault(f.item_id, set()).add(f.artefact)
    files = set(Artefact) - {Artefact.HASH_RECORD}  # the hash record is manifest.json
    proofs = files - {Artefact.ORIGINAL}
    assert by_item == {"A": files, "E": proofs, "H": proofs}
    assert [f.path for f in plan.files if f.item_id == "A"] == [
        f"SA/original/{active.digests.sha256}.bin",
        "SA/SA.tsr",
        "SA/certificate.pdf",
        "SA/ca-chain.pem",
        "SA/inclusion-proof.tlog",
    ]
    items = plan.manifest["items"]
    assert [i["original_included"] for i in items] == [True, False, False]
    assert items[0]["file_name"] == "A.bin"  # the deposited name: data, not a path
    assert plan.manifest["format"] == "tsa-evidence-kit/1"
    assert plan.manifest["created_at"] == "2024-12-31T16:00:00Z"
    assert items[0]["digests"] == {"sha256": active.digests.sha256}
    assert items[1]["storage"] == "original locked (storage expired)"
    assert "openssl ts -verify" in plan.readme


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.pdf", "y.pdf"),
        (".hidden", "hidden"),
        ("", "original"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("设计稿.psd", "设计稿.psd"),
        ("\u202egnp.exe", "gnp.exe"),  # no right-to-left override (a format character)
        ("星" * 100 + ".psd", "星" * 83 + ".psd"),  # 249 + 4 bytes: bytes count, not chars
        ("a" * 300, "a" * 255),
    ],
)
def test_kit_names_cannot_escape(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe
    assert len(safe.encode()) <= 255


def test_kit_names_originals_by_digest_and_quotes_every_command_word() -> None:
    """Issue 13 item 14: a depositor's name never reaches a path or a command of the
    kit; what a recipient runs is quoted anyway."""
    hostile = item("A", 10, bj(2024, 5, 1))
    hostile = replace(
        hostile, form=replace(hostile.form, file_name="report'; touch KIT_PWNED; echo '.pdf")
    )
    plan = plan_kit([hostile], bj(2025, 1, 1))
    original = f"original/{hostile.digests.sha256}.pdf"
    assert plan.files[0].path == f"SA/{original}"
    (entry,) = plan.manifest["items"]
    assert entry["original_file"] == original and entry["file_name"].startswith("report'")
    for command in entry["verify"]:
        assert "KIT_PWNED" not in command and "'" not in command
    assert shell_word("-rf x'y") == "'./-rf x'\"'\"'y'"
    for name in ("a b", "x';id;'", "$(id)", "`id`", "星 辰.pdf", "-n"):
        assert shlex.split(shell_word(name)) == [name if name[0] != "-" else "./" + name]
    recipe = openssl_recipe(hostile)
    assert shlex.split(recipe[0].split("#")[0]) == ["sha256sum", hostile.form.file_name]


def test_rec10_monthly_quota_in_beijing_months() -> None:
    start, end = month_window(bj(2024, 2, 29, 23, 59))
    assert (start, end) == (bj(2024, 2, 1), bj(2024, 3, 1))
    assert month_window(bj(2024, 3, 1)) == (bj(2024, 3, 1), bj(2024, 4, 1))
    u = Usage(start, end, used=9, limit=10)
    assert u.remaining == 1
    check_quota(u, 1)
    with pytest.raises(QuotaExceeded):
        check_quota(u, 2)
    check_quota(Usage(start, end, used=10**6, limit=None))


def test_rec10_rate_limit_bucket() -> None:
    limit = RateLimit(per_second=2.0, burst=2)
    t = bj(2024, 1, 1)
    b = take(limit, None, t)
    b = take(limit, b, t)
    with pytest.raises(QuotaExceeded):
        take(limit, b, t)
    b = take(limit, b, t + timedelta(milliseconds=500))
    assert b.tokens == pytest.approx(0.0)
    with pytest.raises(ValueError):
        RateLimit(0, 1)

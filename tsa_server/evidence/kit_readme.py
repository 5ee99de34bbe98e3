"""The README.txt of an evidence kit (issue 19 item 4), in English and Simplified Chinese.

It says what each file is, how to check the kit (`python3 verify_kit.py`, and the
openssl commands by hand), and exactly what the checks rest on: the CA certificate and
the ledger's verifier key shipped in the kit, whose SHA-256 fingerprint and key text it
prints so the recipient can compare them with copies from an independent source (the
operator's published /certs, /policy, /ledger/tokens/vkey and checkpoints, and any
witness). It never claims the kit can be checked "without trusting anyone".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tsa_server.fees.access import shell_word


@dataclass(frozen=True)
class CaCertificate:
    role: str  # "TSA certificate", "intermediate CA" or "root CA"
    subject: str
    sha256_fingerprint: str  # as `openssl x509 -noout -fingerprint -sha256` prints it

    def as_json(self) -> dict[str, str]:
        return {"role": self.role, "subject": self.subject, "sha256": self.sha256_fingerprint}


def ca_certificates(chain_pem: bytes) -> tuple[CaCertificate, ...]:
    """Every certificate of the chain, TSA certificate first, with its fingerprint."""
    certs = x509.load_pem_x509_certificates(chain_pem) if chain_pem.strip() else []
    found = []
    for position, cert in enumerate(certs):
        der = cert.public_bytes(Encoding.DER)
        role = "intermediate CA"
        if cert.subject == cert.issuer:
            role = "root CA"
        elif position == 0:
            role = "TSA certificate"
        fingerprint = hashlib.sha256(der).digest().hex(":").upper()
        found.append(CaCertificate(role, cert.subject.rfc4514_string(), fingerprint))
    return tuple(found)


@dataclass(frozen=True)
class ReadmeFacts:
    """What the README prints beyond the manifest's items."""

    kit_format: str
    vkey: str
    origin: str
    public_url: str  # the operator's server, e.g. https://tsa.example.org
    operator: str  # [disclosure] name
    contact: str  # [disclosure] contact, "" when not configured
    witnesses: tuple[str, ...]  # where checkpoints are witnessed; () when none
    certificates: tuple[CaCertificate, ...]


def _item_lines(entry: dict[str, object]) -> list[str]:
    paths = entry["paths"]
    assert isinstance(paths, dict)
    folder, serial = str(paths["folder"]), str(entry["serial"])
    tsr, original = shell_word(f"{serial}.tsr"), paths.get("original")
    lines = [
        f"  {folder}/   item {entry['item_id']}, genTime {entry['gen_time_utc']}",
        f"    deposited as (data, not a file name here): {entry['file_name']!r}",
        f"    SHA-256 {entry['digests']['sha256']}",  # type: ignore[index]
        f"    cd {shell_word(folder)}",
    ]
    if original:
        name = shell_word(str(original)[len(folder) + 1 :])
        lines.append(f"    openssl ts -verify -data {name} -in {tsr} -CAfile ca-chain.pem")
    else:
        imprint = entry["imprint"]
        assert isinstance(imprint, dict)
        lines.append(
            f"    openssl ts -verify -digest {imprint['digest']} -in {tsr} -CAfile ca-chain.pem"
            "\n    (the original is not in this kit; `sha256sum YOUR_COPY` must print the"
            " SHA-256 above)"
        )
    lines.append(
        f"    (once the TSA certificate has expired: add -attime {entry['gen_time_posix']},"
        " its genTime)"
    )
    if paths.get("evidence_record"):
        lines.append("    evidence-record.ers: RFC 4998 evidence record of this item")
    return lines


def render_readme(facts: ReadmeFacts, entries: Sequence[dict[str, object]]) -> str:
    url = facts.public_url.rstrip("/") or "<the authority's public URL>"
    items = [line for entry in entries for line in _item_lines(entry)]
    certs = [
        f"    {c.role}: {c.subject}\n      SHA-256 {c.sha256_fingerprint}"
        for c in facts.certificates
    ]
    witnesses = (
        "\n".join(f"    {w}" for w in facts.witnesses)
        if facts.witnesses
        else "    none: this log names no witness yet, so its checkpoints are signed by the\n"
        "    operator alone; keep copies of checkpoints you fetch, or ask an auditor for theirs."
    )
    contact = facts.contact or "see the disclosure statement"
    return f"""\
Evidence kit / 证据包 ({facts.kit_format})

FILES / 文件
  README.txt             this file / 本说明
  manifest.json          every file's SHA-256 and size, the items, this kit's format
  SHA256SUMS             the same digests, for `sha256sum -c SHA256SUMS`
  verify_kit.py          a checker independent of the authority's software: Python 3
                         standard library and `cryptography` only; read it before running it
  ledger.vkey            the verifier key of the authority's public ledger (log {facts.origin})
  <serial>/              one folder per item, named after its time-stamp token's serial:
    <serial>.tsr           the RFC 3161 time-stamp token (TimeStampResp, DER)
    certificate.pdf        the human-readable certificate, with the .tsr attached
    ca-chain.pem           the authority's certificate chain (TSA certificate first)
    inclusion-proof.tlog   the token's place in the ledger and a signed checkpoint
                           (C2SP tlog-proof)
    original/<sha256>.<ext>  the original, only when it was stored and is still kept
    evidence-record.ers    an RFC 4998 evidence record, when the item has one
Every file name in this kit is ASCII letters, digits, '.', '_' and '-'. The name a file was
deposited under is data in manifest.json ("file_name"), never a path or a command word.
文件名仅含 ASCII 字母、数字、'.'、'_'、'-'；原始文件名只作为数据记录在 manifest.json 中。

ITEMS AND COMMANDS BY HAND / 条目与手工验证命令 (openssl alone; "Verification: OK")
{chr(10).join(items)}
openssl checks the chain at today's date; once the TSA certificate has expired, `-attime`
checks it at the token's genTime instead.

CHECK EVERYTHING AT ONCE / 一键验证
  python3 verify_kit.py
needs Python 3.8+ with `cryptography` (Debian/Ubuntu: apt install python3-cryptography; or
pip install cryptography) and openssl on the PATH. It checks every file against
manifest.json, runs `openssl ts -verify` on each token, and re-computes the ledger
inclusion itself: leaf = SHA-256(0x00 || the token's DER), folded with the proof's path
(RFC 6962) to the root of the checkpoint, whose Ed25519 signature (C2SP signed note) it
checks with ledger.vkey. Exit status 0: all passed; 2: a check failed; 1: a check could
not be run. A second implementation of the same ledger check is the authority's own
`tsa-ledger verify-token <serial>.tsr inclusion-proof.tlog --vkey @../ledger.vkey`.

WHAT YOU MUST COMPARE WITH AN INDEPENDENT SOURCE / 必须独立核对的内容
These checks prove that the files agree with each other, with the CA certificate and
with the ledger key shipped IN THIS KIT. Whoever made the kit could have made those too.
Before relying on it, compare these two values with copies you obtain yourself, not from
this kit or from whoever handed it to you; if either differs, the kit proves nothing.
以下两项必须与独立渠道获得的副本比对；任何一项不符，本证据包即不足为证。
  1. The CA certificates (ca-chain.pem) and their SHA-256 fingerprints:
{chr(10).join(certs) or "    (no chain)"}
     openssl x509 -in ca-chain.pem -noout -fingerprint -sha256 prints the first one;
     verify_kit.py prints them all. The operator ("{facts.operator}") publishes
     the chain at {url}/certs and the TSA certificate's fingerprint in its
     disclosure statement at {url}/policy (contact: {contact}); a trusted
     list or accreditation body that lists the authority is a better source still.
  2. The ledger's verifier key (ledger.vkey):
    {facts.vkey}
     published at {url}/ledger/tokens/vkey. Its signed checkpoints are published at
     {url}/ledger/tokens/checkpoint (the latest) and
     {url}/ledger/tokens/checkpoints/<size> (every one). A later checkpoint must
     extend the one in inclusion-proof.tlog: {url}/ledger/tokens/proof/consistency
     ?old=<size in the proof>. Witnesses of this log:
{witnesses}

Do not modify the original in any way (even re-saving it changes its digest). Submit the
files electronically (USB stick, disc, the court's evidence system or a download link);
a paper printout is not the original.
请勿修改原始文件（重新保存也会改变其摘要）；请以电子方式提交全部文件，纸质打印件不是原件。
"""

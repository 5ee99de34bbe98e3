"""CMS-level checks of the RFC 3161 token verifier, one small function each.

Every check takes the shared :class:`Context` and returns a plain-language reason
when it passes; it raises :class:`Failed` (the token is wrong), :class:`CannotCheck`
(something needed is missing: reported as a failure "could not be checked: ...")
or :class:`Skipped` (the caller did not ask for it). The checks here cover the
response and the CMS SignedData (RFC 3161 §2.4, RFC 5652, RFC 2634/5035, RFC 6211);
``verify_tsa`` holds the certificate and request-matching checks. Checks run in the
order of ``verify.CHECKS``; earlier ones fill in the context that later ones read. The
Context and the exceptions live in ``verify_context`` and are re-exported here.
"""

from __future__ import annotations

from asn1crypto import cms, core, tsp, x509

from .verify_chain import label
from .verify_context import CannotCheck, Context, Failed, Skipped, parse_gen_time
from .verify_crypto import HASHES, SignatureInvalid, digest_name, hash_bytes, verify_signature
from .verify_load import name_text, same_name

__all__ = [
    "MAX_EMBEDDED",
    "CannotCheck",
    "Context",
    "Failed",
    "Skipped",
    "check_algorithm_protection",
    "check_content_type",
    "check_message_digest",
    "check_signature",
    "check_signer_certificate",
    "check_signing_certificate",
    "check_single_signer",
    "check_status",
    "check_structure",
    "parse_gen_time",
]

#: Certificates a token may embed: the TSA certificate and its chain are a handful. Each
#: costs parsing and path-building work, and a token is anyone's input (POST /verify).
MAX_EMBEDDED = 64
_STATUS = {0: "granted", 1: "grantedWithMods", 2: "rejection", 3: "waiting"}
_STATUS.update({4: "revocationWarning", 5: "revocationNotification"})


# --- RFC 3161 §2.4.2: the response and the token ------------------------------------------


def check_status(ctx: Context) -> str:
    """RFC 3161 §2.4.2: the TSA granted the request (status 0 or 1, as OpenSSL accepts)."""
    loaded = ctx.loaded
    if loaded.status is None:
        return "a bare TimeStampToken carries no status; a TSA only issues one when granted"
    name = _STATUS.get(loaded.status, f"unknown ({loaded.status})")
    if loaded.status not in (0, 1):
        extra = "; ".join([*loaded.failure_info, *loaded.status_strings])
        raise Failed(f"the TSA answered {name}" + (f": {extra}" if extra else ""))
    if loaded.content_info is None:
        raise Failed(f"the status is {name} but the response carries no TimeStampToken")
    return f"the response status is {name}"


def check_structure(ctx: Context) -> str:
    """RFC 3161 §2.4.2 and RFC 5652 §5.1-5.2: SignedData encapsulating a v1 TSTInfo."""
    info = ctx.loaded.content_info
    if info is None:
        raise CannotCheck("the response carries no TimeStampToken")
    if info["content_type"].native != "signed_data":
        raise Failed(f"the token is {info['content_type'].native}, not CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise Failed(f"the encapsulated content is {encap['content_type'].dotted}, not TSTInfo")
    if isinstance(encap["content"], core.Void):
        raise Failed("the SignedData has no encapsulated TSTInfo (detached content)")
    econtent = bytes(encap["content"])  # the value octets, chunks of a BER string merged
    tst = tsp.TSTInfo.load(econtent, strict=True)
    for name in ("version", "policy", "message_imprint", "serial_number", "accuracy"):
        tst[name].native  # noqa: B018 - surface malformed fields here, not later
    for name in ("ordering", "nonce", "tsa", "extensions"):
        tst[name].native  # noqa: B018
    if tst["version"].native != "v1":
        raise Failed(f"TSTInfo version is {tst['version'].native}, RFC 3161 defines only v1")
    critical = [e["extn_id"].dotted for e in tst["extensions"] if e["critical"].native]
    if critical:
        raise CannotCheck(f"the TSTInfo has critical extensions {critical}")
    ctx.gen_time, ctx.gen_time_text = parse_gen_time(tst["gen_time"].contents)
    ctx.embedded = _embedded_certificates(signed)
    ctx.signed_data, ctx.econtent, ctx.tst_info = signed, econtent, tst
    return "the token is CMS SignedData encapsulating a version 1 TSTInfo"


def _embedded_certificates(signed: cms.SignedData) -> list[x509.Certificate]:
    count = len(signed["certificates"])
    if count > MAX_EMBEDDED:
        raise Failed(
            f"the token embeds {count} certificates; this verifier reads at most "
            f"{MAX_EMBEDDED} (a TSA certificate and its chain are a handful)"
        )
    certs = []
    for index, choice in enumerate(signed["certificates"]):
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        try:
            cert["tbs_certificate"].native  # noqa: B018
        except Exception as exc:
            raise Failed(f"embedded certificate #{index + 1} is malformed: {exc}") from None
        certs.append(cert)
    return certs


def check_single_signer(ctx: Context) -> str:
    """RFC 3161 §2.4.2: the token MUST NOT contain signatures other than the TSA's."""
    if ctx.signed_data is None:
        raise CannotCheck("the SignedData could not be read")
    infos = list(ctx.signed_data["signer_infos"])
    if len(infos) != 1:
        raise Failed(f"the token has {len(infos)} SignerInfos; exactly one is allowed")
    ctx.signer_info = infos[0]
    return "the token has exactly one SignerInfo"


# --- RFC 5652: locating the signer and checking the signature -----------------------------


def _matches_sid(cert: x509.Certificate, sid: cms.SignerIdentifier) -> bool:
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen
        return cert.serial_number == chosen["serial_number"].native and same_name(
            cert.issuer, chosen["issuer"]
        )
    return cert.key_identifier is not None and cert.key_identifier == sid.chosen.native


def _sid_text(sid: cms.SignerIdentifier) -> str:
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen
        return (
            f"issuerAndSerialNumber (issuer '{name_text(chosen['issuer'])}', "
            f"serial {chosen['serial_number'].native:#x})"
        )
    return f"subjectKeyIdentifier {sid.chosen.native.hex()}"


def check_signer_certificate(ctx: Context) -> str:
    """RFC 5652 §5.3: the signer certificate is the one the SID names, wherever it sits."""
    sid = ctx.need_signer_info()["sid"]
    sources = (
        ("embedded in the token", ctx.embedded),
        ("supplied beside the token, not embedded in it", ctx.extra_certs),
        ("a trust root", ctx.trust_roots),
    )
    found: dict[bytes, tuple[x509.Certificate, str]] = {}
    for where, certs in sources:
        for cert in certs:
            if _matches_sid(cert, sid):
                found.setdefault(cert.dump(), (cert, where))
    if not found:
        raise Failed(f"no embedded or supplied certificate matches the SID {_sid_text(sid)}")
    candidates = list(found.values())
    if len(candidates) > 1:
        # Several certificates claim the SID; the signed ESSCertID hash tells which one.
        bound = [(c, w) for c, w in candidates if _ess_hash_matches(ctx.signer_info, c)]
        candidates = bound or candidates
    cert, where = candidates[0]
    ctx.signer_cert = cert
    return f"{label(cert)} ({where}) matches the SID {_sid_text(sid)}"


def _signed_attrs_bytes(signer_info: cms.SignerInfo) -> bytes:
    """The signed attributes exactly as received, re-tagged as SET OF (RFC 5652 §5.4)."""
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void):
        raise Failed("the SignerInfo has no signed attributes (RFC 5652 §5.3 requires them)")
    contents: bytes = attrs.contents
    length = len(contents)
    if length < 0x80:
        header = bytes([length])
    else:
        octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([0x80 | len(octets)]) + octets
    return b"\x31" + header + contents


def check_signature(ctx: Context) -> str:
    """RFC 5652 §5.4 and §5.6: the signature over the signed attributes verifies."""
    info = ctx.need_signer_info()
    cert = ctx.need_signer_cert()
    digest = info["digest_algorithm"]["algorithm"].native
    if digest not in HASHES:
        raise Failed(f"the digest algorithm {digest} is not accepted")
    data = _signed_attrs_bytes(info)
    try:
        what = verify_signature(
            cert.public_key, info["signature_algorithm"], digest, data, info["signature"].native
        )
    except SignatureInvalid as exc:
        raise Failed(f"the signature over the signed attributes is invalid: {exc}") from None
    return f"the {what} signature over the signed attributes is valid"


def _attributes(info: cms.SignerInfo, name: str) -> list[core.Asn1Value]:
    """All values of the signed attribute ``name``, across however many copies."""
    attrs = info["signed_attrs"]
    if isinstance(attrs, core.Void):
        raise Failed("the SignerInfo has no signed attributes")
    return [v for a in attrs if a["type"].native == name for v in a["values"]]


def _single(info: cms.SignerInfo, name: str, display: str) -> core.Asn1Value:
    values = _attributes(info, name)
    if len(values) != 1:
        raise Failed(f"expected exactly one {display} attribute value, found {len(values)}")
    return values[0]


def check_message_digest(ctx: Context) -> str:
    """RFC 5652 §5.4 and §11.2: messageDigest is the hash of the eContent octets."""
    info = ctx.need_signer_info()
    if ctx.econtent is None:
        raise CannotCheck("the encapsulated TSTInfo could not be read")
    digest = info["digest_algorithm"]["algorithm"].native
    if digest not in HASHES:
        raise CannotCheck(f"unsupported digest algorithm {digest}")
    claimed = _single(info, "message_digest", "messageDigest").native
    if hash_bytes(digest, ctx.econtent) != claimed:
        raise Failed(f"messageDigest is not the {digest_name(digest)} hash of the TSTInfo")
    return f"messageDigest equals the {digest_name(digest)} hash of the TSTInfo"


def check_content_type(ctx: Context) -> str:
    """RFC 5652 §11.1 and RFC 3161 §2.4.2: contentType is id-ct-TSTInfo, as eContentType."""
    info = ctx.need_signer_info()
    if ctx.signed_data is None:
        raise CannotCheck("the SignedData could not be read")
    value = _single(info, "content_type", "contentType")
    econtent_type = ctx.signed_data["encap_content_info"]["content_type"]
    if value.dotted != econtent_type.dotted:
        raise Failed(f"contentType {value.dotted} differs from eContentType {econtent_type.dotted}")
    if value.native != "tst_info":
        raise Failed(f"contentType is {value.dotted}, not id-ct-TSTInfo")
    return "the contentType attribute is id-ct-TSTInfo, equal to eContentType"


# --- RFC 3161 §2.4.1, RFC 2634, RFC 5035, RFC 6211: binding attributes ---------------------


_ESS_ATTRIBUTES = (("signing_certificate", "ESSCertID"), ("signing_certificate_v2", "ESSCertIDv2"))


def _ess_ids(info: cms.SignerInfo) -> list[tuple[str, str, core.Asn1Value]]:
    """(kind, hash algorithm, first ESSCertID) of each signing-certificate attribute; the
    first ESSCertID names the signer (RFC 2634 §5.4, RFC 5035 §3)."""
    out = []
    for attribute, kind in _ESS_ATTRIBUTES:
        for value in _attributes(info, attribute):
            if len(value["certs"]) == 0:
                raise Failed(f"the {kind} list of the signing-certificate attribute is empty")
            first = value["certs"][0]
            alg = "sha1" if kind == "ESSCertID" else first["hash_algorithm"]["algorithm"].native
            out.append((kind, alg, first))
    return out


def _ess_hash_matches(info: cms.SignerInfo | None, cert: x509.Certificate) -> bool:
    try:
        ids = _ess_ids(info) if info is not None else []
        return any(hash_bytes(alg, cert.dump()) == i["cert_hash"].native for _, alg, i in ids)
    except (Failed, ValueError):
        return False


def _issuer_serial_problem(ess_id: core.Asn1Value, cert: x509.Certificate) -> str | None:
    issuer_serial = ess_id["issuer_serial"]
    if isinstance(issuer_serial, core.Void):
        return None
    serial_field = "serial_number" if "serial_number" in issuer_serial else "serial"
    if issuer_serial[serial_field].native != cert.serial_number:
        return "its issuerSerial names another serial number"
    names = [g.chosen for g in issuer_serial["issuer"] if g.name == "directory_name"]
    if not any(same_name(n, cert.issuer) for n in names):
        return "its issuerSerial names another issuer"
    return None


def check_signing_certificate(ctx: Context) -> str:
    """RFC 3161 §2.4.1 (RFC 2634 §5.4 ESSCertID, RFC 5035/5816 ESSCertIDv2) binds the cert."""
    info = ctx.need_signer_info()
    cert = ctx.need_signer_cert()
    ids = _ess_ids(info)
    if not ids:
        raise Failed("neither SigningCertificate nor SigningCertificateV2 is present")
    done = []
    for kind, alg, ess_id in ids:
        if alg not in HASHES:
            raise CannotCheck(f"{kind} uses unsupported hash algorithm {alg}")
        if hash_bytes(alg, cert.dump()) != ess_id["cert_hash"].native:
            raise Failed(f"the {kind} {digest_name(alg)} hash does not match {label(cert)}")
        problem = _issuer_serial_problem(ess_id, cert)
        if problem:
            raise Failed(f"the {kind} does not match {label(cert)}: {problem}")
        with_serial = not isinstance(ess_id["issuer_serial"], core.Void)
        done.append(f"{kind} ({digest_name(alg)}{', with issuerSerial' if with_serial else ''})")
    return f"{' and '.join(done)} matches the signer certificate"


def _same_algorithm(a: core.Asn1Value, b: core.Asn1Value) -> bool:
    """Algorithm identifiers equal, treating absent and NULL parameters alike."""

    def params(alg: core.Asn1Value) -> bytes:
        p = alg["parameters"]
        return b"" if isinstance(p, core.Void | core.Null) else p.dump()

    return a["algorithm"].dotted == b["algorithm"].dotted and params(a) == params(b)


def check_algorithm_protection(ctx: Context) -> str:
    """RFC 6211 §2: CMSAlgorithmProtection, when present, matches the SignerInfo."""
    info = ctx.need_signer_info()
    values = _attributes(info, "cms_algorithm_protection")
    if not values:
        return "no CMSAlgorithmProtection attribute (it is optional)"
    if len(values) != 1:
        raise Failed(f"expected one CMSAlgorithmProtection value, found {len(values)}")
    value = values[0]
    if not isinstance(value["mac_algorithm"], core.Void):
        raise Failed("CMSAlgorithmProtection carries a macAlgorithm in a SignedData")
    if not _same_algorithm(value["digest_algorithm"], info["digest_algorithm"]):
        raise Failed("CMSAlgorithmProtection digestAlgorithm differs from the SignerInfo's")
    signature = value["signature_algorithm"]
    if isinstance(signature, core.Void):
        raise Failed("CMSAlgorithmProtection lacks the signatureAlgorithm")
    if not _same_algorithm(signature, info["signature_algorithm"]):
        raise Failed("CMSAlgorithmProtection signatureAlgorithm differs from the SignerInfo's")
    return "CMSAlgorithmProtection matches the SignerInfo's algorithms"

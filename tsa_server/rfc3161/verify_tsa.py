"""TSA certificate, path and request-matching checks of the RFC 3161 token verifier.

Same contract as ``verify_checks``: each check returns the reason it passed or
raises Failed, CannotCheck or Skipped.
"""

from __future__ import annotations

import re

from asn1crypto import core, x509
from cryptography import x509 as pyca_x509

from tsa_server.pki.tsa_purpose import purpose_problem

from .verify_chain import label, validate_path
from .verify_context import CannotCheck, Context, Failed, Skipped
from .verify_crypto import HASHES, REFUSED, digest_name, hash_bytes, new_hash
from .verify_load import EXTRA_NAME_ATTRIBUTES, name_text, same_name
from .verify_options import VerifyOptions
from .verify_revocation import check_revocation

__all__ = [
    "check_certificate_chain",
    "check_expected_tsa_name",
    "check_message_imprint",
    "check_nonce",
    "check_policy",
    "check_revocation_status",
    "check_tsa_certificate_purpose",
    "check_tsa_name",
]

_CHUNK = 1 << 20


# --- RFC 3161 §2.3, RFC 5280 §6: the TSA certificate and its path -------------------------


def check_tsa_certificate_purpose(ctx: Context) -> str:
    """RFC 3161 §2.3: EKU is critical and only id-kp-timeStamping; keyUsage allows signing."""
    cert = ctx.need_signer_cert()
    problem = purpose_problem(cert)
    if problem is not None:
        raise Failed(f"{label(cert)} cannot sign time-stamp tokens: {problem}")
    return "extendedKeyUsage is critical and only id-kp-timeStamping"


def check_certificate_chain(ctx: Context) -> str:
    """RFC 5280 §6 at genTime: signatures, validity windows, CA constraints up to a root."""
    cert = ctx.need_signer_cert()
    if ctx.gen_time is None:
        raise CannotCheck("genTime could not be read")
    result = validate_path(cert, [*ctx.extra_certs, *ctx.embedded], ctx.trust_roots, ctx.gen_time)
    if not result.path:
        if result.reason.startswith("could not be checked: "):
            raise CannotCheck(result.reason.removeprefix("could not be checked: "))
        raise Failed(result.reason)
    ctx.path = result.path
    return result.reason


def check_revocation_status(ctx: Context) -> str:
    """RFC 5280 §6.3 with RFC 3161 §4: no certificate on the path is revoked (CRLs given)."""
    if not ctx.crls:
        raise Skipped("no CRLs were supplied, revocation was not checked")
    if not ctx.path or ctx.gen_time is None:
        raise CannotCheck("there is no validated certificate path")
    result = check_revocation(ctx.path, ctx.crls, ctx.gen_time)
    if not result.passed:
        if result.reason.startswith("could not be checked: "):
            raise CannotCheck(result.reason.removeprefix("could not be checked: "))
        raise Failed(result.reason)
    return result.reason


# --- RFC 3161 §2.4.2: what the caller asked about -----------------------------------------


def _hash_input(options: VerifyOptions, algorithm: str) -> tuple[bytes, str]:
    if options.data is not None:
        return hash_bytes(algorithm, bytes(options.data)), "the data"
    ctx = new_hash(algorithm)
    if options.stream is None:
        raise CannotCheck("no data or stream was given")
    while chunk := options.stream.read(_CHUNK):
        ctx.update(chunk)
    return ctx.finalize(), "the stream"


def _plain(name: str) -> str:
    """Algorithm name without case or punctuation: "SHA-512/256" == "sha512_256"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def check_message_imprint(ctx: Context) -> str:
    """RFC 3161 §2.4.2: messageImprint is the hash of the caller's data, stream or digest."""
    imprint = ctx.need_tst()["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    value = imprint["hashed_message"].native
    options = ctx.options
    if algorithm in REFUSED:
        raise Failed(REFUSED[algorithm])
    if algorithm not in HASHES:
        raise CannotCheck(f"unsupported imprint hash algorithm {algorithm}")
    size = HASHES[algorithm]().digest_size
    if len(value) != size:
        raise Failed(f"the imprint has {len(value)} bytes, {digest_name(algorithm)} has {size}")
    if options.digest is not None:
        wanted = options.digest_algorithm
        if wanted is not None and _plain(wanted) != _plain(algorithm):
            raise Failed(f"the token uses {digest_name(algorithm)}, the digest given is {wanted}")
        expected, what = bytes(options.digest), "the given digest"
    elif options.data is not None or options.stream is not None:
        expected, what = _hash_input(options, algorithm)
    else:
        raise CannotCheck("no data, stream or digest was given to compare the imprint with")
    if expected != value:
        raise Failed(
            f"the {digest_name(algorithm)} imprint does not match {what} "
            f"(token: {value.hex()}; {what}: {expected.hex()})"
        )
    return f"the {digest_name(algorithm)} imprint matches {what}"


def check_nonce(ctx: Context) -> str:
    """RFC 3161 §2.4.2: the nonce equals the one in the request, when one was sent."""
    expected = ctx.options.nonce
    if expected is None:
        raise Skipped("no expected nonce was given")
    actual = ctx.need_tst()["nonce"].native
    if actual is None:
        raise Failed(f"the token has no nonce, {expected:#x} was expected")
    if actual != expected:
        raise Failed(f"the nonce is {actual:#x}, {expected:#x} was expected")
    return f"the nonce is {actual:#x}, as expected"


def check_policy(ctx: Context) -> str:
    """RFC 3161 §2.4.2: the policy is the one requested, when one was requested."""
    expected = ctx.options.policy
    if expected is None:
        raise Skipped("no expected policy was given")
    actual = ctx.need_tst()["policy"].dotted
    if actual != str(expected):
        raise Failed(f"the policy is {actual}, {expected} was expected")
    return f"the policy is {actual}, as expected"


def _names_certificate(general_name: x509.GeneralName, cert: x509.Certificate) -> bool:
    if general_name.name == "directory_name" and same_name(general_name.chosen, cert.subject):
        return True
    san = cert.subject_alt_name_value
    return san is not None and any(g.dump() == general_name.dump() for g in san)


def check_tsa_name(ctx: Context) -> str:
    """RFC 3161 §2.4.2: a tsa field, when present, names the signer certificate's subject."""
    tsa = ctx.need_tst()["tsa"]
    if isinstance(tsa, core.Void):
        return "the token has no tsa field (it is optional)"
    cert = ctx.need_signer_cert()
    if not _names_certificate(tsa, cert):
        raise Failed(f"the tsa field names {_general_name_text(tsa)}, not {label(cert)}")
    return f"the tsa field names the signer certificate {label(cert)}"


def _general_name_text(general_name: x509.GeneralName) -> str:
    if general_name.name == "directory_name":
        return f"'{name_text(general_name.chosen)}'"
    return f"{general_name.name} {general_name.native!r}"


_STANDARD_NAMES = {
    "CN": "2.5.4.3",
    "C": "2.5.4.6",
    "L": "2.5.4.7",
    "ST": "2.5.4.8",
    "STREET": "2.5.4.9",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
    "UID": "0.9.2342.19200300.100.1.1",
    "DC": "0.9.2342.19200300.100.1.25",
}


def _parse_rfc4514(text: str) -> x509.Name:
    """Parse a DN written as RFC 4514 text, tolerating case in attribute types and
    blanks after the separating commas ("cn=TSA, o=Example")."""
    known = {**_STANDARD_NAMES, **EXTRA_NAME_ATTRIBUTES}
    overrides = {
        variant: pyca_x509.ObjectIdentifier(oid)
        for key, oid in known.items()
        for variant in {key, key.lower(), key.upper()}
    }
    tidy = ",".join(re.split(r"(?<!\\),\s*", text.strip()))
    try:
        parsed = pyca_x509.Name.from_rfc4514_string(tidy, attr_name_overrides=overrides)
    except ValueError:
        raise CannotCheck(f"the expected TSA name {text!r} is not an RFC 4514 name") from None
    return x509.Name.load(parsed.public_bytes())


def _expected_name(expected: object) -> x509.Name | str:
    """An RFC 4514 string or Name object as an asn1crypto Name; a bare string stays a CN."""
    if isinstance(expected, x509.Name):
        return expected
    if isinstance(expected, pyca_x509.Name):
        return x509.Name.load(expected.public_bytes())
    text = str(expected)
    return _parse_rfc4514(text) if "=" in text else text


def _common_names(name: x509.Name) -> list[str]:
    return [
        str(atv["value"].native)
        for rdn in name.chosen
        for atv in rdn
        if atv["type"].native == "common_name"
    ]


def check_expected_tsa_name(ctx: Context) -> str:
    """RFC 3161 §2.4.2: the TSA is the one the caller expects (subject DN, or its CN)."""
    expected = ctx.options.tsa_name
    if expected is None:
        raise Skipped("no expected TSA name was given")
    cert = ctx.need_signer_cert()
    wanted = _expected_name(expected)
    if isinstance(wanted, str):
        ok = wanted in _common_names(cert.subject)
    else:
        ok = wanted == cert.subject
    if not ok:
        raise Failed(f"the token was signed by {label(cert)}, not by {expected!s}")
    return f"the token was signed by {label(cert)}, as expected"

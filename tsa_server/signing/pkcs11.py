"""PKCS#11 backend: key generation in the token and signing with keys that never leave it.

With `pkcs11_objects.py` (the key objects: generation, lookup, session copies), the only
module that imports python-pkcs11. SoftHSM2 is the development and test token; any
PKCS#11 module works. Keys are generated with CKA_SENSITIVE true and CKA_EXTRACTABLE
false. Two facts measured on SoftHSM 2.6 shape this code: it has no ECDSA hash-and-sign
mechanism (we hash, sign with CKM_ECDSA and DER-encode r||s), and opening a token from
two processes at the same instant sometimes fails (we retry).

One call into the module at a time per process (`TOKEN_LOCK`): python-pkcs11 initialises
the module with C_Initialize(NULL), which tells it no two threads will call it at once,
and SoftHSM then runs without its own locks. The server signs on the event loop and
signs checkpoints in a worker thread; before this lock, the two met inside SoftHSM now
and then (a CKR_GENERAL_ERROR, or a segmentation fault in libsofthsm2). Each signing
worker process has its own module and its own lock.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pkcs11
from pkcs11 import Attribute, Mechanism
from pkcs11.types import SignMixin

from tsa_server.errors import SignerUnavailable
from tsa_server.pki import der
from tsa_server.signing.base import KeySpec, digest
from tsa_server.signing.pkcs11_objects import (
    generate_key,
    key_spec_of,
    public_key_info,
    session_copy,
    signing_key,
)

# Re-exported: the key ceremony imports the SoftHSM helpers from here.
from tsa_server.signing.softhsm import init_softhsm_token, softhsm_token_exists

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

#: Held around every call into the PKCS#11 module of this process (module docstring).
TOKEN_LOCK = threading.RLock()

__all__ = [
    "Pkcs11Signer",
    "TokenLocation",
    "TokenOpener",
    "generate_key",
    "init_softhsm_token",
    "key_spec_of",
    "open_session",
    "public_key_info",
    "softhsm_token_exists",
]

_DIGEST_INFO_PREFIX = {
    # DER DigestInfo prefixes (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS over a digest we computed.
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_PSS_PARAMS = {
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512, 64),
}
_OPEN_RETRIES = 5
_REINITIALIZE_EVERY_S = 2.0


@dataclass(frozen=True)
class TokenLocation:
    """Where the key lives: the PKCS#11 module, the token label and the user PIN."""

    module: str
    token_label: str
    pin: str
    softhsm_conf: str | None = None  # SoftHSM's SOFTHSM2_CONF, set before the module loads

    def __repr__(self) -> str:  # never print the PIN
        return f"TokenLocation(module={self.module!r}, token_label={self.token_label!r})"


class TokenOpener:
    """Opens logged-in sessions on one token, and owns when the module may be re-initialised.

    A signer keeps one opener for its lifetime, so its reconnections share the
    re-initialisation rate limit.
    """

    def __init__(self, location: TokenLocation) -> None:
        self._location = location
        self._lock = threading.Lock()
        self._last_reinitialize = 0.0

    def _library(self) -> Pkcs11Lib:
        location = self._location
        if location.softhsm_conf:
            # SoftHSM reads its configuration with getenv() at C_Initialize (and again at
            # every re-initialisation): it has no other way in, so this one variable is set
            # in the process's own environment. Subprocesses get theirs through env=.
            os.environ["SOFTHSM2_CONF"] = location.softhsm_conf
        try:
            return pkcs11.lib(location.module)  # python-pkcs11 keeps one per module path
        except Exception as exc:  # the module path is config, not a secret
            raise SignerUnavailable(
                f"cannot load PKCS#11 module {location.module}: {exc}"
            ) from None

    def _reinitialize(self, lib: Pkcs11Lib) -> None:
        """C_Finalize + C_Initialize, at most every couple of seconds. SoftHSM reads its
        token directory only when initialised, so a token that went away and came back is
        seen again only after this. It invalidates every session of the process; each
        Pkcs11Signer drops its session on the next error and reconnects."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_reinitialize < _REINITIALIZE_EVERY_S:
                return
            self._last_reinitialize = now
        try:
            with TOKEN_LOCK:
                lib.reinitialize()
        except pkcs11.PKCS11Error:
            pass

    def open(self, *, rw: bool = False) -> pkcs11.Session:
        """Open a logged-in session, retrying the transient failures of concurrent openers
        and re-reading the token list when the token is missing or failing."""
        location = self._location
        lib = self._library()
        last: Exception | None = None
        for attempt in range(_OPEN_RETRIES):
            if attempt >= 2:  # not a passing clash with another opener: re-read the tokens
                self._reinitialize(lib)
            try:
                with TOKEN_LOCK:
                    token = lib.get_token(token_label=location.token_label)
                    try:
                        return token.open(rw=rw, user_pin=location.pin)
                    except pkcs11.UserAlreadyLoggedIn:
                        # Login state is per application: a second session shares it.
                        return token.open(rw=rw)
            except pkcs11.PinIncorrect:
                raise SignerUnavailable(f"token {location.token_label!r} refused the PIN") from None
            except pkcs11.NoSuchToken:
                last = SignerUnavailable(f"no PKCS#11 token labelled {location.token_label!r}")
            except pkcs11.PKCS11Error as exc:
                last = SignerUnavailable(f"token {location.token_label!r}: {type(exc).__name__}")
            time.sleep(0.05 * (attempt + 1))
        assert last is not None
        raise last


def open_session(location: TokenLocation, *, rw: bool = False) -> pkcs11.Session:
    """Open one logged-in session (the key ceremony and the CLI's one-off uses)."""
    return TokenOpener(location).open(rw=rw)


class Pkcs11Signer:
    """A Signer whose private key is an object in a PKCS#11 token.

    Every call into the token holds TOKEN_LOCK (the module docstring says why): one
    C_Sign at a time in this process. Processes that want parallel signing open their own.
    """

    def __init__(self, location: TokenLocation, key_label: str, *, rsa_pss: bool = False):
        self._opener = TokenOpener(location)
        self._label = key_label
        self._rsa_pss = rsa_pss
        self._session: pkcs11.Session | None = None
        self._key: SignMixin | None = None  # the token object
        self._copy: SignMixin | None = None  # its session copy, or the same object
        self._spec: KeySpec | None = None
        self._spki: bytes | None = None
        self._connect()

    def _connect(self) -> None:
        with TOKEN_LOCK:
            self._connect_locked()

    def _connect_locked(self) -> None:
        session = self._opener.open()
        try:
            spec = key_spec_of(session, self._label)
            spki = public_key_info(session, self._label, spec)
            if self._spki is not None and spki != self._spki:
                # Reconnecting must never switch keys under a certificate issued for another.
                raise SignerUnavailable(
                    f"the key labelled {self._label!r} is not the key this signer started with"
                )
            key = signing_key(session, self._label)
            copy = session_copy(key)
        except Exception:
            session.close()
            raise
        self._spec, self._spki, self._session = spec, spki, session
        self._key, self._copy = key, copy

    @property
    def key_spec(self) -> KeySpec:
        assert self._spec is not None
        return self._spec

    @property
    def rsa_pss(self) -> bool:
        return self._rsa_pss and self.key_spec.family == "rsa"

    def public_key_info(self) -> bytes:
        assert self._spki is not None
        return self._spki

    def sign(self, message: bytes, digest_name: str) -> bytes:
        return self.sign_many([message], [digest_name])[0]

    def sign_many(self, messages: list[bytes], digest_names: list[str]) -> list[bytes]:
        with TOKEN_LOCK:
            # A session can die under us (the library re-initialised to find a token
            # that came back, the token restarted): reconnect once before failing.
            for attempt in range(2):
                try:
                    if self._session is None:
                        self._connect()
                    key = self._signing_object(len(messages))
                    return [
                        self._sign_one(key, m, d)
                        for m, d in zip(messages, digest_names, strict=True)
                    ]
                except SignerUnavailable:
                    raise
                except pkcs11.PKCS11Error as exc:
                    self._drop_session()
                    if attempt:
                        raise SignerUnavailable(
                            f"signing failed in the token: {type(exc).__name__}"
                        ) from None
            raise AssertionError("unreachable")

    def _signing_object(self, count: int) -> SignMixin:
        """What signs `count` messages: the session copy, once the key itself has been
        touched (a token whose store went away fails here, as it would at every signature
        without the copy); one message, the key itself (touching it costs as much)."""
        key, copy = self._key, self._copy
        assert key is not None and copy is not None  # set with the session, by _connect
        if count == 1 or copy is key:
            return key
        key[Attribute.SIGN]  # noqa: B018 - the token object must still be there
        return copy

    def _sign_one(self, key: SignMixin, message: bytes, digest_name: str) -> bytes:
        family = self.key_spec.family
        if family == "ed25519":
            return key.sign(message, mechanism=Mechanism.EDDSA)
        hashed = digest(digest_name, message)
        if family == "ec":
            return _ecdsa_der(key.sign(hashed, mechanism=Mechanism.ECDSA))
        if self.rsa_pss:
            hash_mech, mgf, salt = _PSS_PARAMS[digest_name]
            return key.sign(
                hashed, mechanism=Mechanism.RSA_PKCS_PSS, mechanism_param=(hash_mech, mgf, salt)
            )
        return key.sign(_DIGEST_INFO_PREFIX[digest_name] + hashed, mechanism=Mechanism.RSA_PKCS)

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except pkcs11.PKCS11Error:
                pass

    def close(self) -> None:
        with TOKEN_LOCK:
            self._drop_session()


def _ecdsa_der(raw: bytes) -> bytes:
    """PKCS#11's r || s as the DER Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER }
    (RFC 3279 §2.2.3): what encode_ecdsa_signature does, without an asn1crypto tree."""
    half = len(raw) // 2
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    return der.tlv(der.SEQUENCE, der.integer(r) + der.integer(s))

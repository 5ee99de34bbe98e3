"""Signing a certificate PDF (issue 19 item 3): a PAdES B-B signature with the
document-signing key held in the token, then a document time stamp (RFC 3161, ETSI.RFC3161)
from this TSA, each an incremental update after the PDF/A-3 content, so that `pdfsig`,
pyHanko's validator or any PDF reader reports a changed byte.

The signature is made by pyHanko's CMS and PDF machinery over the project's own
`Pkcs11Signer` (`TokenSigner`): the key never leaves the token and SoftHSM's quirks are
handled where they are for the TSA key. The document time stamp is issued in-process by
the server's `Issuer`, so it goes through the same pipeline and into the same ledger as
every token, without an HTTP round trip to the server's own address. Because the
signing runs in a worker process (render_pool.py) and the Issuer lives on the event loop,
the time stamp is split in two: `sign_and_prepare` (worker) signs and reserves the
document time stamp's /Contents, returning the file and the digest of its byte range;
`fill_timestamp` (anywhere, a few microseconds) writes the token the Issuer returned.
"""

from __future__ import annotations

import asyncio
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # pyHanko imports cryptography's DSA types, deprecated there; no DSA key is ever used
    # here, and the warning would be printed by every `tsa` command that starts a server.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.cms_embedder import PdfCMSEmbedder, SigIOSetup, SigObjSetup
    from pyhanko.sign.signers.pdf_byterange import DocumentTimestamp, PreparedByteRangeDigest
    from pyhanko_certvalidator.registry import SimpleCertificateStore

from tsa_server.config import Config
from tsa_server.errors import ConfigError
from tsa_server.evidence.errors import EvidenceError
from tsa_server.rfc3161.verify_load import load_certificates
from tsa_server.signing.pkcs11 import Pkcs11Signer, TokenLocation

log = logging.getLogger("tsa.evidence.sign")
SIGNATURE_FIELD = "TSA-Signature"
TIMESTAMP_FIELD = "TSA-DocTimeStamp"
TIMESTAMP_BYTES = 16_384  # hex digits reserved: a token with its certificates, doubled
DIGEST = "sha256"


class SigningError(EvidenceError):
    """The certificate could not be signed (no document key, a token error...)."""


@dataclass(frozen=True)
class DocumentKey:
    """Where the document-signing key is and the chain that names it (its certificate
    first, then the CA's), handed to the renderer's worker process."""

    location: TokenLocation
    key_label: str
    chain_pem: bytes


@dataclass(frozen=True)
class Prepared:
    """A signed PDF with a reserved document time stamp: `digest` is what the TSA must
    time-stamp; `pdf` becomes final once `fill_timestamp` writes the token."""

    pdf: bytes
    digest: bytes
    region: PreparedByteRangeDigest


def document_key(config: Config) -> DocumentKey | None:
    """[certificates] document_key_label and document_chain, or None (certificates are
    then served unsigned) when there is no chain or no PIN, with a warning."""
    conf, p11 = config.certificates, config.pkcs11
    path = conf.document_chain_path
    try:
        chain, pin = path.read_bytes(), config.pin()
    except (OSError, ConfigError) as exc:
        log.warning("evidence certificates will not be signed: %s (run `tsa init`)", exc)
        return None
    softhsm = p11.softhsm_conf if p11.softhsm_conf and Path(p11.softhsm_conf).exists() else None
    location = TokenLocation(p11.module, p11.token_label, pin, softhsm)
    return DocumentKey(location, conf.document_key_label, chain)


class TokenSigner(signers.Signer):
    """pyHanko's Signer over the project's PKCS#11 signer (the key stays in the token)."""

    def __init__(self, key: Pkcs11Signer, chain: list[asn1_x509.Certificate]) -> None:
        super().__init__(
            signing_cert=chain[0],
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
            embed_roots=True,
        )
        self._key = key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        return await asyncio.to_thread(self._key.sign, data, digest_algorithm.lower())


class CertificateSigner:
    """Signs certificates with one document key (one token session, kept open)."""

    def __init__(self, key: DocumentKey) -> None:
        try:
            self.chain = load_certificates(key.chain_pem)
        except ValueError as exc:
            raise SigningError(f"the document-signing chain cannot be read: {exc}") from None
        if not self.chain:
            raise SigningError("the document-signing chain holds no certificate")
        self._key = Pkcs11Signer(key.location, key.key_label)
        if self._key.public_key_info() != self.chain[0].public_key.dump():
            self._key.close()
            raise SigningError(
                f"the document-signing certificate does not match the key {key.key_label!r}"
            )
        self._signer = TokenSigner(self._key, self.chain)

    def close(self) -> None:
        self._key.close()

    def sign_and_prepare(self, pdf: bytes, reason: str, location: str) -> Prepared:
        """The PAdES B-B signature, then the document time stamp's placeholder."""
        return asyncio.run(self._sign_and_prepare(pdf, reason, location))

    async def _sign_and_prepare(self, pdf: bytes, reason: str, location: str) -> Prepared:
        meta = signers.PdfSignatureMetadata(
            field_name=SIGNATURE_FIELD,
            md_algorithm=DIGEST,
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason,
            location=location,
        )
        writer = _keeping_metadata(IncrementalPdfFileWriter(io.BytesIO(pdf)))
        pdf_signer = signers.PdfSigner(meta, signer=self._signer)
        signed = await pdf_signer.async_sign_pdf(writer)
        return _reserve_timestamp(signed.getvalue())


def _keeping_metadata(writer: IncrementalPdfFileWriter) -> IncrementalPdfFileWriter:
    """A writer that leaves the XMP and the information dictionary as they are: pyHanko
    regenerates the XMP from its own model on each update and would drop the pdfaid
    (PDF/A) identification; the signatures state their own time."""
    setattr(writer, "_update_meta", lambda: None)  # noqa: B010 - no public switch
    return writer


def _reserve_timestamp(pdf: bytes) -> Prepared:
    """A /DocTimeStamp signature field whose /Contents is reserved (PdfTimeStamper's
    steps, stopped where it would call a TSA)."""
    writer = _keeping_metadata(IncrementalPdfFileWriter(io.BytesIO(pdf)))
    embedder = PdfCMSEmbedder(new_field_spec=fields.SigFieldSpec(sig_field_name=TIMESTAMP_FIELD))
    steps = embedder.write_cms(
        field_name=TIMESTAMP_FIELD, writer=writer, existing_fields_only=False
    )
    next(steps)
    placeholder = DocumentTimestamp(bytes_reserved=TIMESTAMP_BYTES)  # type: ignore[no-untyped-call]
    steps.send(SigObjSetup(sig_placeholder=placeholder))
    region, output = steps.send(SigIOSetup(md_algorithm=DIGEST, in_place=False))
    steps.close()
    return Prepared(output.getvalue(), region.document_digest, region)


def fill_timestamp(prepared: Prepared, token: bytes) -> bytes:
    """The final PDF: the TSA's token (a ContentInfo over `prepared.digest`) written
    into the reserved /Contents."""
    out = io.BytesIO(prepared.pdf)
    try:
        prepared.region.fill_with_cms(out, cms.ContentInfo.load(token))
    except ValueError as exc:  # pyHanko: the token is larger than the space reserved
        raise SigningError(f"the document time stamp does not fit: {exc}") from None
    return out.getvalue()

"""Checkpoint publication (docs/spec/ledger.md L-10, L-12, L-13): sign the ledger's state every
few seconds with an Ed25519 key of its own in the PKCS#11 token, after checking it.

Before signing size N: recompute the root from the stored tree, check that the last
tile's entries hash to their stored leaf hashes (the Yeti 2022 failure), and verify a
consistency proof from the last signed checkpoint. The checkpoint is archived in the
ledger (which refuses one that does not advance: the compare-and-swap of L-08) and
written to the checkpoint directory, the copy outside the database that the rollback
tripwire compares the ledger with at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ledger.checkpoint import Checkpoint, NoteSigner, encode_vkey, sign_checkpoint
from ledger.errors import LedgerError
from ledger.files import make_private_dirs, open_private
from ledger.hashing import leaf_hash
from ledger.proofs import verify_consistency
from ledger.store.base import SignedCheckpoint, Store
from tsa_server.signing.base import Signer

log = logging.getLogger("tsa.publisher")

SIG_ED25519 = 0x01


def raw_ed25519_public_key(signer: Signer) -> bytes:
    from asn1crypto import keys

    info = keys.PublicKeyInfo.load(signer.public_key_info())
    if info["algorithm"]["algorithm"].native != "ed25519":
        raise LedgerError("the checkpoint key must be Ed25519 (tlog-checkpoint, L-10)")
    return bytes(info["public_key"].native)


def write_durably(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync, rename and fsync the directory (tessera style)."""
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CheckpointPublisher:
    """Signs and archives checkpoints of one ledger origin."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        origin: str,
        directory: Path,
        *,
        on_publish: Callable[[SignedCheckpoint], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        grease: int = 1,
    ):
        self._store = store
        self._origin = origin
        self._directory = directory
        self._public_key = raw_ed25519_public_key(signer)
        self._note_signer = NoteSigner(origin, self._public_key, lambda m: signer.sign(m, "sha512"))
        self.on_publish = on_publish
        self._wall_clock = wall_clock
        self._grease = grease
        self._lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def vkey(self) -> str:
        return encode_vkey(self._origin, SIG_ED25519, self._public_key)

    def sweep_temporary_files(self) -> None:
        """Remove what a publication killed mid-write left behind (write_durably's
        temporary files): they were never renamed into place, so nothing refers to them."""
        for folder in (self._directory, self._directory / "checkpoints"):
            for stale in folder.glob(".*.tmp") if folder.is_dir() else ():
                stale.unlink(missing_ok=True)

    def check_rollback(
        self, witness: tuple[int, bytes] | None = None, *, new_ledger: bool = False
    ) -> None:
        """L-13 tripwire: the ledger must hold everything ever checkpointed, by its own
        archive, by the checkpoint file outside it and by ``witness`` (the latest
        checkpoint the operations log recorded, a third file). Once anything was ever
        checkpointed the outside file must exist: restoring the database and the
        checkpoint directory together is still caught by the witness, and a lost
        directory is refused unless the operator says (``new_ledger``) that it is
        expected. Raise LedgerError if not."""
        size = self._store.size()
        latest = self._store.latest_checkpoint()
        outside = self._directory / "checkpoint"
        sizes = []
        if latest is not None:
            sizes.append(("the ledger's checkpoint archive", latest.size, latest.root))
        if outside.exists():
            published = Checkpoint.parse(outside.read_text().split("\n\n", 1)[0] + "\n")
            sizes.append((f"the published checkpoint {outside}", published.size, published.root))
        if witness is not None:
            sizes.append(("the operations log's last checkpoint record", *witness))
        expected = bool(sizes)  # entries never checkpointed contradict nothing
        if expected and not outside.exists() and not new_ledger:
            raise LedgerError(
                f"the published checkpoint {outside} is missing although the ledger "
                f"{self._origin} was checkpointed before: the "
                "checkpoint directory was lost or the ledger replaced; refusing to issue. "
                "If this is expected (a new ledger, a directory knowingly recreated), start "
                "once with `tsa serve --new-ledger`"
            )
        for where, checkpointed, root in sizes:
            if size < checkpointed:
                raise LedgerError(
                    f"ledger rolled back: it holds {size} entries but {where} says "
                    f"{checkpointed}; refusing to issue (restore is never a way to resume: "
                    "fail over to a synchronous replica or reconcile by hand)"
                )
            if self._store.root(checkpointed) != root:
                raise LedgerError(
                    f"ledger differs from {where} at size {checkpointed}; refusing to issue"
                )

    def publish(self) -> SignedCheckpoint | None:
        """Sign the current size if it grew (or if nothing was ever signed)."""
        size = self._store.size()
        latest = self._store.latest_checkpoint()
        if latest is not None and size <= latest.size:
            if size < latest.size:
                raise LedgerError(f"ledger shrank below checkpoint {latest.size}: rolled back")
            if not (self._directory / "checkpoint").exists():
                self._write_files(latest)  # a lost directory the operator accepted
            return None
        root = self._store.root(size)
        self._spot_check(size)
        if latest is not None and latest.size > 0:
            proof = self._store.consistency_proof(latest.size, size)
            verify_consistency(latest.size, size, proof, latest.root, root)
        note = sign_checkpoint(
            Checkpoint(self._origin, size, root), [self._note_signer], grease=self._grease
        ).decode()
        signed = SignedCheckpoint(
            size, root, self._store.chain_head(size), note, int(self._wall_clock())
        )
        # The files first: a crash between the two then leaves the archive behind the
        # files (the next publication catches up), never the files behind the archive,
        # which the rollback tripwire would take for a lost checkpoint directory.
        self._write_files(signed)
        self._store.add_checkpoint(signed)
        if self.on_publish is not None:
            self.on_publish(signed)
        return signed

    def _write_files(self, signed: SignedCheckpoint) -> None:
        write_durably(self._directory / "checkpoints" / str(signed.size), signed.note.encode())
        write_durably(self._directory / "checkpoint", signed.note.encode())

    def _spot_check(self, size: int) -> None:
        start = max(0, size - 256)
        for entry in self._store.entries(start, size):
            if leaf_hash(entry.token) != entry.leaf_hash:
                raise LedgerError(f"entry {entry.index} does not hash to its stored leaf")

    async def run(self, interval_s: float) -> None:
        """Publish every interval; a failed publication is logged, never fatal, and the
        next attempt tries again (nothing is signed unless every check passes)."""
        last_error = None
        while True:
            try:
                await self.publish_now()
                last_error = None
            except Exception as exc:  # noqa: BLE001 - keep publishing, say what failed once
                message = f"{type(exc).__name__}: {exc}"
                if message != last_error:
                    log.error("checkpoint not published: %s", message)
                last_error = message
            await asyncio.sleep(interval_s)

    async def publish_now(self) -> SignedCheckpoint | None:
        """`publish` in a thread, one at a time: signing in the token and three fsyncs
        must not hold up the event loop (and issuance) every interval."""
        async with self._lock:
            return await asyncio.to_thread(self.publish)

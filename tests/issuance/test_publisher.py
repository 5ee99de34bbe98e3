"""The checkpoint publisher signs and archives off the event loop: a slow token (an
HSM that takes its time) never stalls the loop that issuance runs on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ledger.store.base import NewEntry
from ledger.store.sqlite import SqliteStore
from tsa_server.issuance.publisher import CheckpointPublisher
from tsa_server.signing.pkcs11 import Pkcs11Signer
from tsa_server.wiring import token_location

SLOW_S = 0.4


class SlowToken:
    """The session's real checkpoint key, answering after SLOW_S: a test double for a
    busy HSM, a fault the real SoftHSM cannot be made to show."""

    def __init__(self, signer: Pkcs11Signer) -> None:
        self._signer = signer

    def public_key_info(self) -> bytes:
        return self._signer.public_key_info()

    def sign(self, message: bytes, digest_name: str) -> bytes:
        time.sleep(SLOW_S)
        return self._signer.sign(message, digest_name)


def test_a_slow_signature_does_not_stall_the_event_loop(hsm_config, tmp_path: Path) -> None:
    key = Pkcs11Signer(token_location(hsm_config), hsm_config.ledger.checkpoint_key_label)
    store = SqliteStore(tmp_path / "ledger.sqlite")
    try:
        epoch = store.claim_epoch().epoch
        store.append(epoch, 0, [NewEntry(b"\x30\x03\x02\x01\x01", 1, 1, "sha256", b"x" * 32)])
        publisher = CheckpointPublisher(store, SlowToken(key), "example/log", tmp_path / "cp")

        async def run() -> tuple[float, int | None]:
            lag, stop = 0.0, asyncio.Event()

            async def ticker() -> None:
                nonlocal lag
                while not stop.is_set():
                    before = time.monotonic()
                    await asyncio.sleep(0.01)
                    lag = max(lag, time.monotonic() - before - 0.01)

            ticking = asyncio.create_task(ticker())
            await asyncio.sleep(0.05)  # the ticker is running
            signed = await publisher.publish_now()
            stop.set()
            await ticking
            return lag, signed.size if signed else None

        lag, size = asyncio.run(run())
    finally:
        store.close()
        key.close()
    assert size == 1
    assert (tmp_path / "cp" / "checkpoint").exists()
    assert lag < SLOW_S / 2, f"the loop stalled {lag:.3f} s while a checkpoint was signed"

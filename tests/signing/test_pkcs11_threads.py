"""Two keys of one token signing at once from two threads of one process, as the server
does (requests on the event loop, checkpoints in a worker thread). python-pkcs11 tells
the module no two threads will call it at once (C_Initialize(NULL)), so SoftHSM keeps no
locks of its own: without the process's TOKEN_LOCK this ended in CKR_GENERAL_ERROR or a
segmentation fault. Run in a subprocess, so that a crash fails the test, not the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.tsa import write_config

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from tsa_server.config import load_config
    from tsa_server.signing.pkcs11 import Pkcs11Signer
    from tsa_server.wiring import token_location

    config = load_config(sys.argv[1])
    location = token_location(config)
    signers = {
        "tsa": Pkcs11Signer(location, config.pkcs11.key_label),
        "checkpoint": Pkcs11Signer(location, config.ledger.checkpoint_key_label),
    }
    failures = []

    def run(name):
        signer = signers[name]
        public = load_der_public_key(signer.public_key_info())
        try:
            for n in range(int(sys.argv[2])):
                message = b"%s %d" % (name.encode(), n)
                signature = signer.sign(message, "sha256")
                if n % 97 == 0:  # check some: the signatures are the keys' own
                    if isinstance(public, ed25519.Ed25519PublicKey):
                        public.verify(signature, message)
                    else:
                        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(name,)) for name in signers for _ in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("failures:", failures)
    sys.exit(1 if failures else 0)
    """
)


def test_two_keys_sign_from_four_threads_of_one_process(hsm, tmp_path) -> None:
    config = write_config(
        tmp_path / "tsa.toml", {"pkcs11": hsm.pkcs11, "certificates": hsm.certificates}
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), "1500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])

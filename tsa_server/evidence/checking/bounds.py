"""The budget of one document check in a worker process: CPU seconds (a profiling
timer that interrupts the check) and address space (RLIMIT_AS above what the worker
already uses), so that a PDF with a million objects, a deeply nested structure or a
decompression bomb ends in a refusal instead of a worker that never answers or eats
the machine's memory. Signals and limits are per process: this runs only in the main
thread of a verifier worker process (web/verify/pool.py), never in the server.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from tsa_server.evidence.checking import DocumentRejected

#: CPU seconds one document may take (a certificate takes about 0.3 s).
CPU_SECONDS = 10.0
#: Address space one document may add to the worker's.
MEMORY_BYTES = 768 << 20


class OverBudget(BaseException):
    """Raised in the check by the profiling timer; a BaseException so that no broad
    `except Exception` on the way (ours, pyHanko's) mistakes it for a failed check."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise OverBudget


def _address_space() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[0])
    return pages * resource.getpagesize()


@contextmanager
def budget(cpu_seconds: float = CPU_SECONDS, memory: int = MEMORY_BYTES) -> Iterator[None]:
    """Run the block within the budget; DocumentRejected (422 / 413) past it."""
    previous = signal.signal(signal.SIGPROF, _interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + memory
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        yield
    except OverBudget:
        raise DocumentRejected(
            422, f"checking this document takes more than {cpu_seconds:g} s of CPU: refused"
        ) from None
    except MemoryError:
        raise DocumentRejected(
            413, f"checking this document needs more than {memory >> 20} MiB of memory: refused"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

"""Freed memory kept in the process on CPU, so a forward's activations do not page-fault every batch.

glibc's malloc hands a large block back to the kernel when it is freed (``munmap``, or a heap trim),
so the next batch's tensors of the same sizes come back as fresh pages, each zeroed by the kernel on
first touch. A CPU forward of a batch of 4,096 tokens frees and re-takes tens of megabytes this way:
measured on the scorer of issue 22 (cpu_smoke model, 1 thread), about 180,000 minor page faults and
0.3 s of kernel time per 1.8 s of language-modelling continuations; with the blocks kept, none, and the
same requests took 1.45 s. A training step of cpu_smoke: 2,700 faults a step and 81 -> 78 ms.

``keep_freed_memory`` fixes malloc's thresholds for this process (``mallopt``): blocks below 32 MiB
(glibc's largest fixed mmap threshold on 64-bit) come from the heap, and the heap is trimmed only
above 1 GiB free. The process's peak memory is unchanged; it is kept instead of given back. Called
where a process starts running a model on the CPU: a training run (``resolve_device``), the batched
CORE scorer (``score_rows``), the verifier's model process (``Served``) and the scorer's calibration;
nothing is done where the C library is not glibc, or where the user set malloc's thresholds through
the environment.
"""

from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed blocks in this process (once; later calls return the first answer). True when set."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        libc = None
    if not libc or any(name in os.environ for name in _USER_SETTINGS):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

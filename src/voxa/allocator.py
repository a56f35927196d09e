"""glibc's malloc, set up for CTranslate2's working memory (voxa's Whisper and its bundled LLM).

CTranslate2 allocates the working buffers of every batch and frees them after it. The largest is
the encoder's attention scores, one matrix per layer of batch × heads × 1500 × 1500 floats:
576 MB for whisper-base at batch 8, 1.4 GB for large-v3. glibc's defaults serve anything over
its mmap threshold (which grows to 32 MB at most) with a fresh ``mmap``, give each worker thread
an arena whose heaps hold 64 MB at most, and hand freed memory back to the kernel; so every batch
maps gigabytes anew and the kernel zero-fills them a page at a time. On the 60 files of
``benchmarks/asr.py`` that was 4.2 million page faults and 9.7 s of system time in 21.4 s of
wall time (2 cores); with the settings below, 0.2 million, 1.4 s and 15.8 s, for the same
words and a lower peak RSS (1,187 MB against 1,317).

:func:`tune` sets, through ``mallopt``: one arena (``M_ARENA_MAX``, so CTranslate2's threads
allocate from the main heap, which has no size cap), and mmap and trim thresholds of 2 GB
(``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``): big buffers come from the heap, and freed memory
stays mapped for the next batch rather than going back to the kernel. The price: a process keeps
the memory of its largest batch until it exits (it would need it again for the next one).

It must run before the threads that allocate exist, so voxa calls it when it loads a
CTranslate2 model and when the server starts; it acts once per process, only on Linux with
glibc, and not at all when ``VOXA_MALLOC=default`` or when the process was started with
glibc's own ``MALLOC_*`` or ``GLIBC_TUNABLES`` settings (those are the user's to choose).
The same settings as environment variables, for any process: ``MALLOC_ARENA_MAX=1
MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading

log = logging.getLogger("voxa.allocator")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's malloc.h
LIMIT = 2**31 - 1  # mallopt takes an int
_USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "GLIBC_TUNABLES")

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet; True: set; False: left alone


def tune() -> bool:
    """Set glibc's malloc up for CTranslate2 (see the module docstring), once per process.
    True when the settings are in force."""
    global _state
    with _lock:
        if _state is None:
            _state = _apply()
        return _state


def active() -> bool:
    """Whether :func:`tune` has set the settings in this process (asking does not set them)."""
    return bool(_state)


def _apply() -> bool:
    if os.environ.get("VOXA_MALLOC", "").lower() == "default":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = all(mallopt(param, value) == 1 for param, value in
               ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, LIMIT), (M_TRIM_THRESHOLD, LIMIT)))
    if not done:
        log.debug("glibc refused a malloc setting; left as it is")
    return done

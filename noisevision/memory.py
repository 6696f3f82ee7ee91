"""Process-wide memory settings for rendering on CPU, made only when a program asks for them.

Importing noisevision changes nothing in the process. The command line calls `tune_process()`
first thing; a program of your own that renders many batches on a CPU can do the same, before it
imports torch (see the docs' page on GPUs and clusters).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the OS.

    Rendering on CPU allocates and frees tens of MB of temporaries per batch. Under glibc's
    dynamic thresholds some of them are mmapped, or trimmed off the heap, and their pages are
    faulted in and zeroed again for the next batch, a cost in the kernel that varies from run to
    run (the docs' benchmarks page has the page-fault counts). Fixed thresholds (blocks under
    128 MB from the heap; its top returned to the OS only past 512 MB free) keep them in the
    heap. Returns False (and changes nothing) without glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 128 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 512 << 20))


def tune_process() -> bool:
    """Both settings for a process that renders on a CPU: tensors of 2 MB and more on transparent
    huge pages, and glibc keeping freed memory (`keep_freed_memory`).

    The huge-page switch is PyTorch's THP_MEM_ALLOC_ENABLE, read once at torch's first
    allocation, so it only takes effect when called before that; a value already in the
    environment (THP_MEM_ALLOC_ENABLE=0 turns it off) is kept. The generators allocate and free
    many 1-10 MB temporaries per batch, and with 4 kB pages every one costs thousands of
    first-touch page faults. Returns whether glibc's settings took.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return keep_freed_memory()

"""Process-wide tuning of the C allocator for the chunk loop (glibc only).

Every chunk makes the same few dozen temporaries of several MB each (spectra,
phasors, frames). glibc serves blocks that large with a fresh ``mmap`` and
returns them with ``munmap`` on free, so every chunk pays the kernel to map and
zero-fill its pages again: about a third of the phase and inverse-STFT stages
on a 3-minute song (0.85 -> 0.55 s on 2 cores, ``benchmarks/speed.py``).
Raising the mmap threshold to its maximum (32 MB) and letting the heap keep up
to 512 MB of freed memory makes those blocks reuse the same pages. Peak memory
does not grow with the length of a file (the chunk size bounds it).

Only applications call this (the CLI and its worker processes); importing
mp3fix changes nothing. It is a no-op where there is no glibc.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 512 << 20), (M_TOP_PAD, 64 << 20))

_done = False


def tune_allocator() -> bool:
    """Apply ``SETTINGS`` with ``mallopt`` once per process; True if glibc took them all."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        # by its soname: ctypes.util.find_library starts a subprocess (~0.1 s)
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return _done

"""Choosing the torch device (``auto`` takes CUDA when present, else the CPU), the
number of CPU threads a piece of torch work runs on, and how a process's C heap keeps the
memory it frees."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator

from facenormals3d.errors import FaceNormalsError

log = logging.getLogger("facenormals3d")


def resolve_device(name: str) -> str:
    """Map ``auto`` / ``cpu`` / ``cuda`` to a torch device string; log when auto picks one.

    Raises FaceNormalsError when ``cuda`` is asked for and not available.
    """
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise FaceNormalsError("--device cuda was asked for but CUDA is not available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
        log.info("device auto -> %s", name)
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise FaceNormalsError(f"unknown device {name!r}: use auto, cpu or cuda")
    return name


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads, then restore the previous number.

    The setting is process-wide: blocks that use this are serialised, and other torch work
    running at the same time sees ``n`` too. CPU results of a network depend on the thread
    count in their last bits (the reductions split differently), so a fixed ``n`` also keeps
    results the same on every machine.
    """
    import torch

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


#: ``(set, get)`` symbol pairs of the OpenBLAS builds numpy and scipy bundle (numpy's
#: 64-bit-integer build suffixes its symbols with ``64_``; scipy's prefixes them with ``scipy_``).
_OPENBLAS_SYMBOLS = (("openblas_set_num_threads", "openblas_get_num_threads"),
                     ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                     ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"))


def _loaded_openblas() -> list[tuple]:
    """``(set, get)`` ctypes functions of every OpenBLAS library loaded in this process
    (found in ``/proc/self/maps``; an empty list where that does not exist, e.g. macOS)."""
    import ctypes
    import os

    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(None, 5) for line in maps]
    except OSError:
        return []
    paths = sorted({f[5].strip() for f in fields if len(f) == 6
                    and "openblas" in os.path.basename(f[5].strip()).lower()})
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing runs
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                found.append((setter, getter))
                break
    return found


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[int]:
    """Run the block with at most ``n`` threads in every OpenBLAS library loaded now
    (numpy's and, once imported, scipy's), then restore their previous numbers; yields how
    many libraries it set.

    numpy's OpenBLAS starts one thread per core, and its threads spin while they wait:
    beside the writer thread, the read-ahead and other processes on a 2-core machine, two
    of them made the face-model fit's small solves (150 unknowns) ~4x slower than one
    (``fit_landmarks`` 206 -> 61 ms, end to end per face 3.9 -> 3.2 s, loaded machine). The
    setting is process-wide, like :func:`torch_threads`.
    """
    libs = _loaded_openblas()
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    with _THREADS_LOCK:
        before = [get() for _, get in libs]
        for set_, _ in libs:
            set_(n)
    try:
        yield len(libs)
    finally:
        with _THREADS_LOCK:
            for (set_, _), k in zip(libs, before):
                set_(k)


def limit_blas_threads(n: int) -> int:
    """Set every OpenBLAS library loaded now to ``n`` threads for good (a worker process's
    setting; :func:`blas_threads` restores it after a block); returns how many it set."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    libs = _loaded_openblas()
    with _THREADS_LOCK:
        for set_, _ in libs:
            set_(n)
    return len(libs)


#: glibc ``mallopt`` parameters (``<malloc.h>``).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
    """Let this process's C heap keep and reuse the memory it frees (glibc only); returns
    whether it could.

    By default glibc serves every block over its mmap threshold (128 kB, rising to at most
    32 MB) with a fresh ``mmap`` and unmaps it on free, so each full-atlas numpy array
    (2048 x 1024 x 3 float32 = 25 MB) costs the kernel ~6000 zeroed page faults, every time.
    With mmap off and no trimming, freed blocks go back to the heap and the next array
    reuses them. Measured in ``reconstruct`` (2 cores): system time per face in a warm
    process 0.24 -> 0.04 s; one photo from a cold start ~5.0 -> ~4.6 s. The cost: memory
    the process has freed is returned to the OS only when it exits, so its resident size
    stays at its peak (which is what ``bench pipeline`` reports anyway).

    Every thread also allocates from the one main heap (at most one malloc arena): glibc
    otherwise gives threads arenas of their own (up to 8 per core), and memory one thread
    freed could not serve another's arrays (tested: a thread's 40 MB array after the main
    thread freed one faulted in every page anew), so the writer thread's atlases took fresh
    pages while the main thread's freed ones sat idle. Measured on the 48 MP
    photo of ``bench pipeline`` (2 cores, 8 interleaved runs each, 2026-12-07): median 3.63
    s against 4.02 s, system time 1.02 s against 1.61 s. Threads then share the heap's lock;
    ours allocate large arrays, rarely. Process-wide: call it before the process starts its
    threads; for short-lived worker and command processes, not for a library host.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (bool(mallopt(_M_MMAP_MAX, 0)) & bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
            & bool(mallopt(_M_ARENA_MAX, 1)))

"""Choosing the torch device (``auto`` takes CUDA when present, else the CPU) and the
number of CPU threads a piece of torch work runs on."""

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

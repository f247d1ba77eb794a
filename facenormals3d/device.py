"""Choosing the torch device: ``auto`` takes CUDA when present, else the CPU."""

from __future__ import annotations

import logging

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

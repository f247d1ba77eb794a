"""Training checkpoints (``checkpoint.pt``: model, optimizer, scheduler, scaler, step, RNG
states and data positions; format :data:`CHECKPOINT_FORMAT`), initial weights and export of
a checkpoint's model as shipped weights."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facenormals3d.errors import InputError
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.outputs import atomic_write
from facenormals3d.training.config import TrainConfig

log = logging.getLogger("facenormals3d.train")
CHECKPOINT_FORMAT = "facenormals3d-train-v1"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint without unpickling arbitrary objects (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    return ckpt


def _widened_axis(src: tuple[int, ...], dst: tuple[int, ...]) -> int | None:
    """The one channel axis (0 = outputs, 1 = inputs) along which ``dst`` is ``src`` grown,
    all else equal; None when the shapes differ otherwise."""
    differ = [i for i, (a, b) in enumerate(zip(src, dst)) if a != b] if len(src) == len(dst) else []
    if len(differ) == 1 and differ[0] in (0, 1) and src[differ[0]] < dst[differ[0]]:
        return differ[0]
    return None


def init_from_weights(model: nn.Module, path: str | Path) -> dict[str, int]:
    """Copy matching tensors of a ``.safetensors`` file into ``model`` (see ``TrainConfig.init_weights``).

    Returns counts of tensors ``copied``, ``widened`` (input channels, or output channels such
    as the confidence output, zero-padded) and ``skipped``. Weights of a narrower network
    (``ModelConfig.width``; every other setting equal) are grown into ``model`` by
    :func:`facenormals3d.model.widen.widen`, which keeps what they compute; then every tensor
    counts as ``widened``.
    """
    from safetensors.torch import load_file

    from facenormals3d.model.config import ModelConfig
    from facenormals3d.model.weights import read_sidecar, sha256_file

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "initial weights file not found")
    side = read_sidecar(path)
    if sha256_file(path) != side["sha256"]:
        raise InputError(path, "SHA-256 does not match its .json sidecar")
    source = load_file(str(path), device="cpu")
    src_cfg = ModelConfig.from_dict(side["config"])
    if isinstance(model, CrossModalNet) and src_cfg.width < model.cfg.width:
        from facenormals3d.model.widen import widen

        narrow = CrossModalNet(src_cfg)
        narrow.load_state_dict(source)
        widen(narrow, model)
        counts = {"copied": 0, "widened": len(model.state_dict()), "skipped": 0}
        log.info("initial weights from %s, widened from width %g to %g: %s", path, src_cfg.width,
                 model.cfg.width, counts)
        return counts
    counts = {"copied": 0, "widened": 0, "skipped": 0}
    with torch.no_grad():
        for name, param in model.state_dict().items():
            src = source.get(name)
            if src is None:
                counts["skipped"] += 1
            elif src.shape == param.shape:
                param.copy_(src)
                counts["copied"] += 1
            elif _widened_axis(src.shape, param.shape) is not None:
                # More input channels (a prior-conditioned first convolution) or outputs (the
                # normal head gaining the confidence channel): the old ones keep their
                # weights, the new ones start at zero.
                param.zero_()
                param[tuple(slice(0, n) for n in src.shape)] = src
                counts["widened"] += 1
            else:
                counts["skipped"] += 1
    log.info("initial weights from %s: %s", path, counts)
    return counts


def export_weights(checkpoint: str | Path, out: str | Path, metadata: dict | None = None) -> Path:
    """Write the model of a training checkpoint as shipped weights (``.safetensors`` + JSON)."""
    from facenormals3d.model.weights import save_weights

    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ckpt["train_config"])
    model = CrossModalNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    meta = {"steps": ckpt["step"], "train_config": ckpt["train_config"], "last_val": ckpt.get("last_val")}
    meta.update(metadata or {})
    return save_weights(out, model, meta)




def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict (see :meth:`facenormals3d.training.train.Trainer.checkpoint_state`) atomically."""
    atomic_write(path, lambda p: torch.save(state, p))

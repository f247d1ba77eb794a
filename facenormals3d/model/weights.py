"""Saving and loading network weights without pickle.

A weights file ``NAME.safetensors`` holds only tensors (safetensors never executes
code). Beside it, ``NAME.json`` holds the :class:`ModelConfig`, free-form metadata (how
it was trained) and the SHA-256 of the ``.safetensors`` file; :func:`load_weights`
refuses a file whose hash does not match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from facenormals3d.errors import InputError
from facenormals3d.model.config import ModelConfig
from facenormals3d.outputs import atomic_write, write_json

FORMAT = "facenormals3d-crossmodal-v1"


def sidecar_path(path: str | Path) -> Path:
    """``X.safetensors`` -> ``X.json``."""
    return Path(path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(path: str | Path, model, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a :class:`CrossModalNet`) to ``path`` (.safetensors) and its JSON sidecar.

    Returns the weights path. Both files are written atomically.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(path, "weights file name must end in .safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": FORMAT}))
    write_json(sidecar_path(path), {"format": FORMAT, "config": model.cfg.to_dict(),
                                    "sha256": sha256_file(path), "metadata": metadata or {}})
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a weights file (config, sha256, metadata)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise InputError(side, "weights sidecar JSON not found (it holds the config and SHA-256)")
    try:
        info = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise InputError(side, f"not valid JSON ({err})") from None
    if info.get("format") != FORMAT or "config" not in info or "sha256" not in info:
        raise InputError(side, f"not a {FORMAT} sidecar")
    return info


def verified_sidecar(path: str | Path) -> dict[str, Any]:
    """:func:`read_sidecar` of a weights file that exists and whose SHA-256 matches it (no
    torch); raises :class:`~facenormals3d.errors.InputError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    info = read_sidecar(path)
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise InputError(path, f"SHA-256 mismatch: file has {digest}, sidecar expects {info['sha256']}")
    return info


def load_weights(path: str | Path, device: str = "cpu"):
    """Build the model described by the sidecar and load the verified weights (eval mode,
    channels-last: :func:`~facenormals3d.model.infer.inference_ready`)."""
    from safetensors.torch import load_file

    from facenormals3d.model.crossmodal import CrossModalNet

    path = Path(path)
    info = verified_sidecar(path)
    model = CrossModalNet(ModelConfig.from_dict(info["config"]))
    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(path, f"weights do not fit the config: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    from facenormals3d.model.infer import inference_ready

    return inference_ready(model.to(device))

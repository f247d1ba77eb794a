"""Running the trained network on face crops."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from facenormals3d.errors import InputError


def crops_to_tensor(crops) -> torch.Tensor:
    """Face crops as ``B x 3 x H x W`` float32 in [0, 1].

    Accepts uint8 numpy/tensor ``B x H x W x 3`` or ``H x W x 3``, or a float tensor
    ``B x 3 x H x W`` / ``3 x H x W`` already in [0, 1].
    """
    if isinstance(crops, np.ndarray):
        if crops.dtype != np.uint8:
            raise InputError("crops", f"numpy crops must be uint8 H x W x 3, got {crops.dtype}")
        crops = torch.from_numpy(crops)
    if not isinstance(crops, torch.Tensor):
        raise InputError("crops", f"expected a numpy array or torch tensor, got {type(crops).__name__}")
    if crops.dtype == torch.uint8:
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise InputError("crops", f"uint8 crops must be B x H x W x 3, got {tuple(crops.shape)}")
        return crops.permute(0, 3, 1, 2).float() / 255.0
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1] != 3 or not crops.is_floating_point():
        raise InputError("crops", f"float crops must be B x 3 x H x W, got {tuple(crops.shape)} {crops.dtype}")
    return crops.float()


def resize_prior(coarse: torch.Tensor, size: int) -> torch.Tensor:
    """A ``B x 3 x H x W`` prior normal map (0 = unknown) at the model's input ``size``:
    bilinear, not renormalised. Training (:func:`facenormals3d.training.data.fit_to_input`) and
    inference share this, so the network sees priors resampled the same way."""
    if coarse.shape[-2:] == (size, size):
        return coarse
    return F.interpolate(coarse.float(), size=(size, size), mode="bilinear", align_corners=False)


def inference_ready(model):
    """``model`` in eval mode with its weights in the channels-last layout, which
    :func:`predict_normals` also gives its inputs: on CPU the network's convolutions ran
    about twice as fast as in the contiguous layout (``bench network --contiguous``)."""
    return model.to(memory_format=torch.channels_last).eval()


def mirror_maps(maps: torch.Tensor, normals: bool = False) -> torch.Tensor:
    """``B x C x H x W`` maps mirrored left to right (about the crop's vertical centre line).
    With ``normals`` (``C = 3``, camera frame, x right) the normals' x is negated too, so the
    result is the normal map of the mirrored face."""
    out = maps.flip(-1)
    if normals:
        out = out * torch.tensor([-1.0, 1.0, 1.0], dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
    return out


@torch.inference_mode()
def predict_normals(model, crops, coarse: torch.Tensor | None = None, batch_size: int = 8,
                    flip_average: bool = False) -> torch.Tensor:
    """Unit camera-space normals ``B x 3 x H x W`` (float32, on the CPU) for face crops.

    ``crops``: see :func:`crops_to_tensor`. Crops of another size than the model's input
    are resized to it and the normals resized back (then renormalised), or, by a model with
    a detail head (``ModelConfig.detail_channels``), made at the crop's size from the crop. ``coarse``
    (``B x 3 x H x W``) is required only by models built with ``coarse_normals=True``.
    ``flip_average``: also run the mirrored crop (and prior), mirror its normals back and
    average the two (renormalised); the mirrored crops run in the same batch, at nearly
    twice the network time.
    """
    return _predict(model, crops, coarse, batch_size, flip_average)[0]


@torch.inference_mode()
def predict_normals_confidence(model, crops, coarse: torch.Tensor | None = None, batch_size: int = 8,
                               flip_average: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit normals ``B x 3 x H x W``, ``log kappa`` ``B x 1 x H x W``) for a model built
    with ``confidence=True`` (see :func:`facenormals3d.model.losses.vmf_nll`); arguments
    as :func:`predict_normals` (with ``flip_average`` the two ``log kappa`` are averaged)."""
    if not model.cfg.confidence:
        raise InputError("model", "this model has no confidence output (ModelConfig.confidence is off)")
    normals, log_kappa = _predict(model, crops, coarse, batch_size, flip_average)
    return normals, log_kappa


#: The expected angular error (degrees) at which a pixel's normals get full weight; pixels
#: the network expects to be worse get less, in proportion to the concentration (inverse
#: variance): ``min(1, kappa / kappa(CONFIDENT_DEG))``.
CONFIDENT_DEG = 12.0


def confidence_weight(log_kappa: torch.Tensor) -> torch.Tensor:
    """Per-pixel weight in [0, 1] of the normals from the network's ``log kappa`` (any
    shape): ``kappa / kappa_ref`` capped at 1, where ``kappa_ref = pi / (2 a^2)`` is the
    concentration whose expected error is ``a = CONFIDENT_DEG`` (see
    :func:`facenormals3d.model.losses.expected_angle_deg`)."""
    kappa_ref = math.pi / (2.0 * math.radians(CONFIDENT_DEG) ** 2)
    return (log_kappa.float().exp() / kappa_ref).clamp(max=1.0)


def _predict(model, crops, coarse, batch_size: int, flip_average: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = crops_to_tensor(crops)
    size = model.cfg.input_size
    h, w = x.shape[-2:]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Inputs in the layout of the model's convolution weights (see inference_ready).
    conv = next(p for p in model.parameters() if p.ndim == 4)
    fmt = torch.channels_last if conv.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out, conf = [], []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].to(device)
        cb = None if coarse is None else resize_prior(coarse[i:i + batch_size].to(device).float(), size)
        # A model with a detail head turns the input's normals into the crop's own (full) ones.
        refine = getattr(model, "detail", None) is not None and (h, w) != (size, size)
        full = xb if refine else None
        if (h, w) != (size, size):
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        k = xb.shape[0]
        if flip_average:
            # The crops and their mirror images in one batch: bigger matrices for the kernels
            # (about 6 % faster than two passes on a 2-core AVX2 CPU, 2026-12-07).
            xb, full = (None if t is None else torch.cat([t, mirror_maps(t)]) for t in (xb, full))
            cb = None if cb is None else torch.cat([cb, mirror_maps(cb, normals=True)])
        xb, cb, full = (None if t is None else t.contiguous(memory_format=fmt) for t in (xb, cb, full))
        n, log_kappa, _ = model.image_to_normals_confidence(xb, cb, full)
        if flip_average:
            n = F.normalize(n[:k] + mirror_maps(n[k:], normals=True), dim=1)
            if log_kappa is not None:
                log_kappa = 0.5 * (log_kappa[:k] + mirror_maps(log_kappa[k:]))
        if n.shape[-2:] != (h, w):
            n = F.normalize(F.interpolate(n, size=(h, w), mode="bilinear", align_corners=False), dim=1)
        if log_kappa is not None and log_kappa.shape[-2:] != (h, w):
            log_kappa = F.interpolate(log_kappa, size=(h, w), mode="bilinear", align_corners=False)
        out.append(n.float().cpu())
        if log_kappa is not None:
            conf.append(log_kappa.float().cpu())
    model.train(was_training)
    return torch.cat(out), (torch.cat(conf) if conf else None)

"""Training losses, all masked to the face.

Masks are ``B x 1 x H x W`` float in [0, 1]; a masked mean divides by the number of
masked pixels (times channels for per-channel terms), so batches with small faces are
not down-weighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B x C x H x W) over pixels where ``mask`` (B x 1 x H x W) is set."""
    weight = mask.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def normal_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 between normal maps ``B x 3 x H x W``."""
    return masked_mean((pred - gt).abs(), mask)


def normal_angular(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked ``1 - cos(angle)`` between normal maps ``B x 3 x H x W`` (need not be unit).

    ``1 - cos`` rather than ``acos``: acos has an infinite gradient at zero error.
    """
    cos = F.cosine_similarity(pred, gt, dim=1, eps=1e-6).unsqueeze(1)
    return masked_mean(1.0 - cos, mask)


def image_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between images ``B x 3 x H x W``, masked when ``mask`` is given."""
    if mask is None:
        return (pred - gt).abs().mean()
    return masked_mean((pred - gt).abs(), mask)


def latent_distance(a: torch.Tensor, b: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Latent consistency between ``E_I(image)`` and ``E_N(normals)``: mean squared ("l2")
    or mean absolute ("l1") difference."""
    if kind == "l2":
        return F.mse_loss(a, b)
    if kind == "l1":
        return F.l1_loss(a, b)
    raise ValueError(f"latent loss must be 'l1' or 'l2', got {kind!r}")

"""Training losses, all masked to the face.

Masks are ``B x 1 x H x W`` float in [0, 1]; a masked mean divides by the number of
masked pixels (times channels for per-channel terms), so batches with small faces are
not down-weighted.
"""

from __future__ import annotations

import math

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


def vmf_nll(pred: torch.Tensor, log_kappa: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean negative log-likelihood of ``gt`` under per-pixel von Mises-Fisher
    distributions on the unit sphere (mean ``pred``, concentration ``kappa = exp(log_kappa)``).

    ``-log p = kappa (1 - cos) - log kappa + log(2 pi) + log(1 - exp(-2 kappa))``: the
    exact density on S^2. Minimised over kappa alone it gives ``kappa ~ 1 / E[1 - cos]``,
    so a calibrated kappa predicts the error (mean angle ~ sqrt(pi / (2 kappa)) for large
    kappa). Shapes: ``pred``, ``gt`` B x 3 x H x W (``pred`` unit), ``log_kappa`` and
    ``weight`` B x 1 x H x W. The training loop passes ``pred`` detached, so this term
    teaches the confidence head without bending the normals toward easy pixels.
    """
    kappa = log_kappa.exp()
    cos = (pred * gt).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    log_norm = torch.log((-torch.expm1(-2.0 * kappa)).clamp_min(1e-12))
    nll = kappa * (1.0 - cos) - log_kappa + math.log(2.0 * math.pi) + log_norm
    return masked_mean(nll, weight)


def expected_angle_deg(log_kappa: torch.Tensor) -> torch.Tensor:
    """Rough mean angular error (degrees) a vMF concentration predicts: ``sqrt(pi / (2 kappa))``
    in radians, capped at 90 degrees (for maps and reports; B x 1 x H x W in, same out)."""
    angle = torch.sqrt(math.pi / (2.0 * log_kappa.exp()))
    return torch.rad2deg(angle).clamp(max=90.0)

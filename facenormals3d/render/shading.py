"""Second-order spherical-harmonics (SH) shading: basis, lighting and albedo fits.

The image model used by the shading-consistency refinement is Lambertian under distant
low-frequency light, per RGB channel ``c`` and pixel ``p``::

    I_c(p) = albedo_c(p) * sum_k sh[k, c] * Y_k(n(p))

``n`` is the camera-space unit normal (x right, y up, z towards the camera, see
:mod:`facenormals3d.conventions`) and ``Y_k`` the 9 real SH basis functions of order <= 2 in
the order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2) with the
usual normalisation (Y_00 = 0.282095, ...). ``sh`` are coefficients of the *irradiance*
(the light already convolved with the clamped cosine), so no extra Lambert factors appear.
Ramamoorthi & Hanrahan (2001) showed order 2 captures ~99% of Lambertian irradiance energy.

Albedo and light are only known up to a per-channel scale; we fix it by scaling the light
so the mean shading ``sum_k sh[k, c] Y_k(n)`` over the fitted pixels is 1 in every channel,
which makes the albedo roughly the mean colour of the skin.

Everything here is torch, works on any device, and is differentiable in the normals.
"""

from __future__ import annotations

import numpy as np
import torch

# Normalisation constants of the real SH basis, l = 0, 1, 2 (torch-free home: render/sh.py).
from facenormals3d.render.sh import C0 as _C0, C1 as _C1, C2 as _C2, C20 as _C20, C22 as _C22

#: Relative Tikhonov weight of the lighting fit: face normals span only the front
#: hemisphere, so some SH functions are nearly collinear there (1, z and 3z^2 - 1).
LIGHT_RIDGE = 1e-4

#: Smallest shading used when dividing the image by it to estimate albedo.
MIN_SHADING = 0.05


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real SH functions at unit ``normals`` (``... x 3``) -> ``... x 9``."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    return torch.stack([
        torch.full_like(x, _C0),
        _C1 * y, _C1 * z, _C1 * x,
        _C2 * x * y, _C2 * y * z, _C20 * (3.0 * z * z - 1.0), _C2 * x * z, _C22 * (x * x - y * y),
    ], dim=-1)


def shade(normals: torch.Tensor, sh: torch.Tensor, albedo: torch.Tensor) -> torch.Tensor:
    """Rendered colour ``N x 3`` from unit normals ``N x 3``, ``sh`` (9 x 3) and albedo ``N x 3``
    (or broadcastable, e.g. ``3``)."""
    return albedo * (sh_basis(normals) @ sh)


def fit_lighting(normals: torch.Tensor, colors: torch.Tensor, albedo: torch.Tensor) -> torch.Tensor:
    """Least-squares SH irradiance ``9 x 3`` so ``albedo * Y(normals) @ sh ~ colors``.

    Args:
        normals: ``N x 3`` unit normals of the fitted pixels.
        colors: ``N x 3`` observed RGB in [0, 1].
        albedo: ``N x 3`` (or ``3``) albedo at those pixels.

    Solved per channel with the 9 x 9 normal equations in float64 and a small ridge
    (:data:`LIGHT_RIDGE` times the mean diagonal) so ill-conditioned views stay stable.
    """
    basis = sh_basis(normals.detach()).double()
    a = torch.broadcast_to(albedo.detach().double(), colors.shape)
    c = colors.detach().double()
    out = []
    for ch in range(3):
        design = basis * a[:, ch:ch + 1]
        gram = design.T @ design
        ridge = LIGHT_RIDGE * torch.diagonal(gram).mean().clamp(min=1e-12)
        gram = gram + ridge * torch.eye(9, dtype=gram.dtype, device=gram.device)
        out.append(torch.linalg.solve(gram, design.T @ c[:, ch]))
    return torch.stack(out, dim=1).to(colors.dtype)


def normalise_light(normals: torch.Tensor, sh: torch.Tensor,
                    albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale ``(sh, albedo)`` per channel so the mean shading over ``normals`` is 1.

    The product ``albedo * shading`` is unchanged (the scale is the model's one ambiguity).
    """
    mean_shading = (sh_basis(normals.detach()) @ sh).mean(dim=0)  # 3
    scale = torch.where(mean_shading.abs() > 1e-8, mean_shading, torch.ones_like(mean_shading))
    return sh / scale, albedo * scale


def smooth_albedo(normals: torch.Tensor, colors: torch.Tensor, sh: torch.Tensor,
                  pixels: np.ndarray, size: int, sigma_px: float) -> torch.Tensor:
    """Low-frequency albedo ``N x 3`` = Gaussian-smoothed ``colors / shading`` over the image.

    Args:
        normals, colors: ``N x 3`` at the fitted pixels.
        sh: ``9 x 3`` irradiance coefficients.
        pixels: ``N`` int64 flat indices (row * size + col) of those pixels in the crop.
        size: crop side S.
        sigma_px: Gaussian standard deviation in pixels.

    A masked (normalised) convolution: pixels outside the fitted set get no weight, so the
    crop border and background do not bleed into the albedo.
    """
    from scipy.ndimage import gaussian_filter

    shading = (sh_basis(normals.detach()) @ sh).clamp(min=MIN_SHADING)
    ratio = (colors.detach() / shading).cpu().double().numpy()
    weight = np.zeros(size * size)
    weight[pixels] = 1.0
    den = gaussian_filter(weight.reshape(size, size), sigma_px, mode="constant")
    out = np.empty_like(ratio)
    for ch in range(3):
        num = np.zeros(size * size)
        num[pixels] = ratio[:, ch]
        num = gaussian_filter(num.reshape(size, size), sigma_px, mode="constant")
        out[:, ch] = num.reshape(-1)[pixels] / np.maximum(den.reshape(-1)[pixels], 1e-12)
    return torch.as_tensor(out, dtype=colors.dtype, device=colors.device)


def fit_light_and_albedo(normals: torch.Tensor, colors: torch.Tensor, pixels: np.ndarray,
                         size: int, mode: str, sigma_px: float,
                         rounds: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate ``(sh 9 x 3, albedo N x 3)`` from observed ``colors`` and current ``normals``.

    ``mode="constant"``: one albedo colour for the whole face (one least-squares solve).
    ``mode="smoothed"``: alternate ``rounds`` times between the lighting fit and a
    Gaussian-smoothed albedo (:func:`smooth_albedo`), starting from a constant albedo.
    Normalised with :func:`normalise_light` after every round.
    """
    albedo = torch.ones_like(colors)
    sh = fit_lighting(normals, colors, albedo)
    sh, albedo = normalise_light(normals, sh, albedo)
    if mode == "smoothed":
        for _ in range(rounds):
            albedo = smooth_albedo(normals, colors, sh, pixels, size, sigma_px)
            sh = fit_lighting(normals, colors, albedo)
            sh, albedo = normalise_light(normals, sh, albedo)
    return sh, albedo

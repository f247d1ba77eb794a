"""Shading-consistency refinement: move mesh vertices along their normals so the mesh,
shaded with estimated spherical-harmonics light and albedo, looks like the photo.

The mesh is the face crop seen orthographically from the front. A vertex ``(x, y, z)``
(mm; x right, y up, z towards the camera) lands at the continuous crop pixel::

    u = x / mm_per_pixel + S / 2        v = -y / mm_per_pixel + S / 2

(pixel centres at +0.5, v down; :class:`facenormals3d.frame.CropFrame`), which
:func:`facenormals3d.raster.crop_view` expresses as an :class:`~facenormals3d.raster.OrthoView`
so the rasteriser of :mod:`facenormals3d.raster` (with its CPU binning and the +X left / +Z
into the screen flip) draws exactly onto the photo's pixels.

Method (:func:`refine_mesh`):

1. rasterise the current mesh (PyTorch3D ``MeshRasterizer``); keep the crop pixels that are
   inside the mask, covered by the mesh and see a front face;
2. fit SH irradiance (9 x 3) and an albedo (constant or smoothed) to the photo from the
   interpolated vertex normals at those pixels (:mod:`facenormals3d.render.shading`);
3. take ``rasterize_every`` Adam steps on per-vertex displacements ``d`` along the initial
   vertex normals, minimising a Charbonnier (smooth L1) photometric loss plus
   ``smoothness * mean(|L d|^2)`` (uniform graph Laplacian of the displacement, so only the
   *change* is smoothed, not the existing detail) plus a small ``magnitude * mean(d^2)``.
   Adam moves ``u`` with ``d = clamp((I + step_smoothing * L)^-1 u, +-displacement_limit_mm)``
   (:class:`SmoothSolve`): plain per-vertex steps at ~1 vertex per pixel mostly add
   pixel-scale noise (measured: normals got *worse* while the photometric error fell).

Between rasterisations the pixel -> face assignment and barycentrics stay fixed and only the
normals are recomputed (differentiably) from the displaced vertices: displacements are small,
so visibility barely changes, and rasterising is by far the costliest step on CPU.
The photometric errors before and after are both measured with freshly fitted light and
albedo on a fresh rasterisation, so they compare like with like.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.frame import CropFrame
from facenormals3d.raster import crop_view

ALBEDO_MODES = ("constant", "smoothed", "given")

#: Width of the Charbonnier loss sqrt(r^2 + eps^2): L1-like above ~1/255, smooth below.
CHARBONNIER_EPS = 1e-3


@dataclass(frozen=True)
class RefineSettings:
    """Parameters of :func:`refine_mesh`."""

    iterations: int = 20
    """Adam steps on the displacements; 0 returns the input mesh unchanged."""
    rasterize_every: int = 5
    """Re-rasterise (and re-fit light and albedo) every this many steps; re-shade only in between."""
    smoothness: float = 1.0
    """Weight of ``mean(|L d|^2)``, L the uniform graph Laplacian, d the displacement (mm)."""
    magnitude: float = 0.01
    """Weight of ``mean(d^2)`` (mm^2): keeps the refined mesh near the input."""
    displacement_limit_mm: float = 3.0
    """Displacements are clamped to +-this many millimetres (no gradient beyond)."""
    lr: float = 0.1
    """Adam learning rate, roughly the largest step per iteration in mm."""
    step_smoothing: float = 20.0
    """``lambda`` of the ``(I + lambda L)`` reparameterisation: Adam moves ``u`` and the
    displacement is ``(I + lambda L)^-1 u``, so each step is smooth over ~sqrt(lambda) vertex
    rings (0 = plain per-vertex steps, which at ~1 vertex per pixel mostly add noise)."""
    albedo: str = "smoothed"
    """``"smoothed"`` (Gaussian-smoothed photo / shading: real skin, brows and lips vary),
    ``"constant"`` (one colour for the whole face) or ``"given"``: a fixed full-resolution
    linear albedo image passed to :func:`refine_mesh` (e.g. the de-lit albedo of
    :mod:`facenormals3d.render.appearance`, so albedo edges such as brows stay albedo and are
    not carved into the shape); the photo is then linearised and only the SH light re-fitted."""
    albedo_sigma_px: float = 8.0
    """Gaussian standard deviation (pixels) of the smoothed albedo."""
    device: str = "cpu"
    """Torch device for the optimisation and rasterisation."""
    rasterizer: str = "auto"
    """Passed to :func:`facenormals3d.raster.rasterize`: ``"pytorch3d"``
    (MeshRasterizer), ``"open3d"`` (ray casting, CPU) or ``"auto"`` (PyTorch3D on CUDA,
    open3d on CPU, where it is ~20x faster and gives the same fragments)."""

    def check(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if int(self.iterations) < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if int(self.rasterize_every) < 1:
            raise ValueError(f"rasterize_every must be >= 1, got {self.rasterize_every}")
        from facenormals3d.raster import RASTERIZERS

        if self.rasterizer not in RASTERIZERS:
            raise ValueError(f"rasterizer must be one of {RASTERIZERS}, got {self.rasterizer!r}")
        if self.albedo not in ALBEDO_MODES:
            raise ValueError(f"albedo must be one of {ALBEDO_MODES}, got {self.albedo!r}")
        for name in ("smoothness", "magnitude", "lr", "step_smoothing", "displacement_limit_mm",
                     "albedo_sigma_px"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass
class RefineResult:
    """What :func:`refine_mesh` returns."""

    vertices: np.ndarray
    """``V x 3`` float32 refined vertices (mm, same frame as the input)."""
    displacement: np.ndarray
    """``V`` float32, mm moved along each input vertex normal (+ = outwards)."""
    sh_coefficients: np.ndarray
    """``9 x 3`` float32 SH irradiance per RGB channel, fitted to the refined mesh
    (see :mod:`facenormals3d.render.shading` for the basis and normalisation)."""
    albedo: np.ndarray
    """``S x S x 3`` float32 albedo image fitted to the refined mesh; 0 outside ``pixels``."""
    pixels: np.ndarray
    """``S x S`` bool: the crop pixels the errors were measured on (mask, covered, front)."""
    photometric_error_before: float
    """Mean absolute error over ``pixels`` and the 3 channels ([0, 1] units) of the input
    mesh, shaded with the light and albedo fitted to it."""
    photometric_error_after: float
    """The same for the refined mesh (light and albedo re-fitted)."""
    iterations: int
    """Adam steps taken."""
    seconds: float
    """Wall time of the whole call."""
    seconds_per_iteration: float
    """Wall time of the optimisation loop per step, its re-rasterisations and re-fits
    included; the set-up (first fit, factorisation) and the final fit are not. 0 if none."""
    rasterizations: int
    """How many times the mesh was rasterised."""


@dataclass
class _Samples:
    """The pixels one rasterisation sees, with their fixed face and barycentrics."""

    pixels: np.ndarray  # N int64 flat indices row * S + col
    corners: "torch.Tensor"  # N x 3 int64 vertex indices of the pixel's face
    bary: "torch.Tensor"  # N x 3 float32


def rasterize_crop(vertices: np.ndarray, faces: np.ndarray, mask: np.ndarray,
                   frame: CropFrame, device: str = "cpu", rasterizer: str = "auto") -> _Samples:
    """Rasterise the mesh into the ``S x S`` crop of ``frame`` (``mask`` is ``S x S``) through
    :func:`facenormals3d.raster.rasterize` (PyTorch3D's MeshRasterizer, or open3d
    ray casting on CPU: see :attr:`RefineSettings.rasterizer`).

    Returns the pixels inside ``mask`` that the mesh covers with a front face (normal from
    the counter-clockwise winding has z > 0), their face corners and barycentrics.
    """
    import torch

    from facenormals3d.raster import rasterize

    pix_to_face, bary = rasterize(vertices, faces, crop_view(frame), device, rasterizer)
    p2f = pix_to_face.reshape(-1).cpu().numpy()
    v = np.asarray(vertices, dtype=np.float64)
    fn_z = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])[:, 2]
    ok = mask.reshape(-1) & (p2f >= 0)
    ok[ok] = fn_z[p2f[ok]] > 0
    pixels = np.nonzero(ok)[0]
    corners = torch.as_tensor(faces[p2f[pixels]], device=device)
    b = bary.reshape(-1, 3)[torch.as_tensor(pixels, device=bary.device)].to(device)
    return _Samples(pixels=pixels, corners=corners, bary=b)


def vertex_normals_torch(vertices: "torch.Tensor", faces: "torch.Tensor") -> "torch.Tensor":
    """Differentiable area-weighted unit vertex normals ``V x 3`` (faces counter-clockwise)."""
    import torch

    p0, p1, p2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    fn = torch.cross(p1 - p0, p2 - p0, dim=1)  # length = twice the area: area weighting
    vn = torch.zeros_like(vertices)
    for k in range(3):
        vn = vn.index_add(0, faces[:, k], fn)
    return torch.nn.functional.normalize(vn, dim=1, eps=1e-12)


def pixel_normals(vertex_normals: "torch.Tensor", samples: _Samples) -> "torch.Tensor":
    """Unit normals ``N x 3`` at the sampled pixels, barycentric blends of vertex normals."""
    import torch

    n = (vertex_normals[samples.corners] * samples.bary[..., None]).sum(dim=1)
    return torch.nn.functional.normalize(n, dim=1, eps=1e-12)


def uniform_laplacian(displacement: "torch.Tensor", edges: "torch.Tensor") -> "torch.Tensor":
    """``L d``: each value minus the mean of its neighbours (``edges``: ``E x 2`` undirected)."""
    import torch

    i, j = edges[:, 0], edges[:, 1]
    total = torch.zeros_like(displacement).index_add(0, i, displacement[j]).index_add(
        0, j, displacement[i])
    degree = torch.zeros_like(displacement).index_add(0, i, torch.ones_like(displacement[j]))
    degree = degree.index_add(0, j, torch.ones_like(displacement[i]))
    return displacement - total / degree.clamp(min=1.0)


class SmoothSolve:
    """``u -> (I + lambda L)^-1 u`` for per-vertex values, differentiable (torch autograd).

    ``L`` is the combinatorial graph Laplacian (degree minus adjacency) of the mesh edges; the
    matrix is symmetric positive definite, so the backward pass is the same solve. Factorised
    once with SuperLU (~0.25 s for 40k vertices here); each solve is then ~10 ms.
    Gradient steps taken on ``u`` become smooth displacements: the "large steps" idea of
    Nicolet et al. 2021 (Sobolev preconditioning), which keeps per-vertex Adam from adding
    pixel-scale noise.
    """

    def __init__(self, edges: np.ndarray, n_vertices: int, lam: float):
        self.lam = lam
        if lam <= 0:
            return
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        e = edges
        adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices,) * 2)
        adj = (adj + adj.T).tocsr()
        lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
        # MMD on A^T + A suits a symmetric matrix: ~40% less fill-in than the default COLAMD.
        self.lu = splu((sp.identity(n_vertices) + lam * lap).tocsc(), permc_spec="MMD_AT_PLUS_A")

    def solve(self, values: "torch.Tensor") -> "torch.Tensor":
        """The solve without autograd, same dtype and device as ``values`` (``V``)."""
        import torch

        x = self.lu.solve(values.detach().cpu().double().numpy())
        return torch.as_tensor(x, dtype=values.dtype, device=values.device)

    def __call__(self, values: "torch.Tensor") -> "torch.Tensor":
        import torch

        if self.lam <= 0:
            return values
        solver = self

        class _Solve(torch.autograd.Function):
            @staticmethod
            def forward(ctx, u):
                return solver.solve(u)

            @staticmethod
            def backward(ctx, grad):
                return solver.solve(grad)

        return _Solve.apply(values)


def _check_inputs(vertices, faces, image, mask, mm_per_pixel):
    v = np.asarray(vertices)
    f = np.asarray(faces)
    img = np.asarray(image)
    m = np.asarray(mask)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise InputError("vertices", f"expected a non-empty V x 3 array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("vertices", "contain NaN or infinite values")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or not np.issubdtype(f.dtype, np.integer):
        raise InputError("faces", f"expected a non-empty F x 3 integer array, got {f.dtype} {f.shape}")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError("faces", f"indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1] or img.dtype != np.uint8:
        raise InputError("image", f"expected a square S x S x 3 uint8 crop, got {img.dtype} {img.shape}")
    if m.shape != img.shape[:2]:
        raise InputError("mask", f"shape {m.shape} does not match the image's {img.shape[:2]}")
    if not m.any():
        raise InputError("mask", "is empty: no pixel to compare the rendering with")
    if not (np.isfinite(mm_per_pixel) and mm_per_pixel > 0):
        raise InputError("mm_per_pixel", f"must be a positive number, got {mm_per_pixel}")
    return v.astype(np.float64), f.astype(np.int64), img, m.astype(bool)


def refine_mesh(vertices: np.ndarray, faces: np.ndarray, image: np.ndarray, mask: np.ndarray,
                mm_per_pixel: float, settings: RefineSettings | None = None,
                albedo_image: np.ndarray | None = None) -> RefineResult:
    """Refine ``vertices`` so the SH-shaded mesh matches ``image`` inside ``mask``.

    Args:
        vertices: ``V x 3`` float, mm; x right, y up, z towards the camera.
        faces: ``F x 3`` int, counter-clockwise seen from the camera.
        image: ``S x S x 3`` uint8 face crop the mesh was built from.
        mask: ``S x S`` bool, the pixels to match (e.g. the face mask).
        mm_per_pixel: crop scale; see the module doc for the projection.
        settings: :class:`RefineSettings` (defaults if None).
        albedo_image: ``S x S x 3`` float linear albedo, needed by ``settings.albedo == "given"``.

    Raises:
        InputError (a ValueError): bad shapes or values, an empty mask, or a mesh that covers
        no front-facing pixel inside the mask.
    """
    import torch

    from facenormals3d.surface import vertex_normals
    from facenormals3d.render.shading import fit_light_and_albedo, fit_lighting, shade

    start = time.perf_counter()
    settings = settings or RefineSettings()
    settings.check()
    v0_np, f_np, img, m = _check_inputs(vertices, faces, image, mask, float(mm_per_pixel))
    size, dev = img.shape[0], settings.device
    frame = CropFrame(size, float(mm_per_pixel))
    given = None
    if settings.albedo == "given":
        from facenormals3d.render.appearance import srgb8_to_linear

        if albedo_image is None or np.shape(albedo_image) != img.shape:
            raise InputError("albedo_image", f"albedo 'given' needs an {img.shape} albedo image, got "
                             f"{None if albedo_image is None else np.shape(albedo_image)}")
        given = torch.as_tensor(np.asarray(albedo_image, np.float32).reshape(-1, 3), device=dev)
        colors_all = torch.as_tensor(srgb8_to_linear(img).reshape(-1, 3), device=dev)
    else:
        colors_all = torch.as_tensor(img.reshape(-1, 3), dtype=torch.float32, device=dev) / 255.0

    v0 = torch.as_tensor(v0_np, dtype=torch.float32, device=dev)
    f = torch.as_tensor(f_np, device=dev)
    direction = torch.as_tensor(vertex_normals(v0_np, f_np), dtype=torch.float32, device=dev)
    edges_np = _unique_edges(f_np)
    edges = torch.as_tensor(edges_np, device=dev)
    smooth = SmoothSolve(edges_np, len(v0_np),
                         float(settings.step_smoothing) if settings.iterations else 0.0)
    limit = float(settings.displacement_limit_mm)
    params = torch.zeros(len(v0), dtype=torch.float32, device=dev, requires_grad=True)

    def displacement() -> torch.Tensor:
        return smooth(params).clamp(-limit, limit)

    def fit(v_now: np.ndarray):
        """Rasterise and fit light + albedo; returns samples, target, sh, albedo, error."""
        samples = rasterize_crop(v_now, f_np, m, frame, dev, settings.rasterizer)
        if len(samples.pixels) == 0:
            raise InputError("mesh", "covers no front-facing pixel inside the mask: check the "
                             "mm_per_pixel scale and that faces are counter-clockwise")
        target = colors_all[torch.as_tensor(samples.pixels, device=dev)]
        with torch.no_grad():
            normals = pixel_normals(vertex_normals_torch(torch.as_tensor(
                v_now, dtype=torch.float32, device=dev), f), samples)
            if given is not None:
                albedo = given[torch.as_tensor(samples.pixels, device=dev)]
                sh = fit_lighting(normals, target, albedo)
            else:
                sh, albedo = fit_light_and_albedo(normals, target, samples.pixels, size,
                                                  settings.albedo, settings.albedo_sigma_px)
            error = float((shade(normals, sh, albedo) - target).abs().mean())
        return samples, target, sh, albedo, error

    samples, target, sh, albedo, error_before = fit(v0_np)
    rasterizations = 1
    opt = torch.optim.Adam([params], lr=float(settings.lr))
    loop_start = time.perf_counter()
    iterations = int(settings.iterations)
    for it in range(iterations):
        disp = displacement()
        if it > 0 and it % settings.rasterize_every == 0:
            samples, target, sh, albedo, _ = fit(_displaced(v0, direction, disp))
            rasterizations += 1
        verts = v0 + disp[:, None] * direction
        normals = pixel_normals(vertex_normals_torch(verts, f), samples)
        residual = shade(normals, sh, albedo) - target
        loss = torch.sqrt(residual * residual + CHARBONNIER_EPS ** 2).mean()
        loss = loss + settings.smoothness * uniform_laplacian(disp, edges).pow(2).mean()
        loss = loss + settings.magnitude * disp.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loop_seconds = time.perf_counter() - loop_start

    with torch.no_grad():
        disp = displacement()
    if iterations > 0:
        samples, target, sh, albedo, error_after = fit(_displaced(v0, direction, disp))
        rasterizations += 1
        refined = _displaced(v0, direction, disp).astype(np.float32)
    else:
        error_after = error_before
        refined = np.asarray(vertices, dtype=np.float32).copy()
    albedo_img = np.zeros((size * size, 3), dtype=np.float32)
    albedo_img[samples.pixels] = torch.broadcast_to(albedo, target.shape).cpu().numpy()
    pixels = np.zeros(size * size, dtype=bool)
    pixels[samples.pixels] = True
    return RefineResult(
        vertices=refined,
        displacement=disp.detach().cpu().numpy().astype(np.float32),
        sh_coefficients=sh.cpu().numpy().astype(np.float32),
        albedo=albedo_img.reshape(size, size, 3),
        pixels=pixels.reshape(size, size),
        photometric_error_before=error_before,
        photometric_error_after=error_after,
        iterations=iterations,
        seconds=time.perf_counter() - start,
        seconds_per_iteration=loop_seconds / iterations if iterations else 0.0,
        rasterizations=rasterizations,
    )


def _displaced(v0, direction, disp) -> np.ndarray:
    """Current vertices as float64 numpy (no gradient), for rasterisation."""
    return (v0 + disp.detach()[:, None] * direction).cpu().double().numpy()


def _unique_edges(faces: np.ndarray) -> np.ndarray:
    """``E x 2`` int64 undirected edges (i < j) of a triangle mesh ``F x 3``."""
    from facenormals3d.surface import edges

    return edges(faces)[0]

"""De-lighting one fitted face: light from the crop, albedo and specular maps in the model's atlas.

Inputs are what :meth:`facenormals3d.pipeline.Reconstructor._fitted_face` already has: the
256 crop, the detail normals predicted in it, the final mesh (crop frame, mm, x right, y up,
z towards the camera, orthographic view along -z), the atlas raster and the two texel
views (:mod:`facenormals3d.mesh.atlas`) and the photo texture baked with them.

Steps (:func:`estimate_appearance`):

1. fit :class:`~facenormals3d.render.lighting.Lighting` to the linearised crop inside the
   face mask, with the detail normals and shadow rays cast on the mesh
   (:func:`~facenormals3d.render.lighting.fit_lighting`);
2. shade every crop pixel the mesh covers (detail normals in the mask, the mesh's own
   normals outside it) into a diffuse image ``D`` and a specular image ``ks S``;
3. bake ``D`` and ``ks S`` into the atlas with the *same* texel views as the photo texture
   (so a mirrored texel is divided by the shading where its colour came from), and divide:
   ``albedo = (linear(texture) - ks S) / D``; where ``D`` is dark (deep shadow, the far
   side of the terminator: luminance below :attr:`LightingSettings.confident_shading`, the
   mean being 1) the division is unreliable (the fitted model's shadow edge and terminator
   are a little off and dividing by a small wrong shading multiplies the error), so those
   texels blend into a confidence-weighted blur of the well-lit albedo around them;
   a mirror-symmetry prior then evens out the albedo's low frequencies between each texel
   and its mirror texel (:func:`facenormals3d.mesh.atlas.mirror_texels`): what is left of
   the shading there (a side light's gradient, a shadow) is rarely symmetric, skin is;
   written back as 8-bit sRGB;
4. bake ``ks`` into a small atlas: the low-frequency specular map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facenormals3d.frame import CropFrame
from facenormals3d.mesh.atlas import per_channel
from facenormals3d.raster import shadow_visibility
from facenormals3d.render.lighting import (MIN_SHADING, Lighting, LightingSettings, fit_lighting, light_terms,
                                           masked_blur)

#: Height of the specular map (the atlas is twice as wide).
SPECULAR_MAP_HEIGHT = 128
#: The shading is baked at 1 / this of the atlas resolution (then upsampled).
SHADING_DOWNSAMPLE = 4


@dataclass
class Appearance:
    """Light and reflectance of one face (see the module docstring)."""

    lighting: Lighting
    """The photo's light (camera frame, linear RGB, mean diffuse shading 1 per channel)."""
    albedo: np.ndarray
    """``H x W x 3`` uint8 sRGB diffuse albedo in the atlas of the photo texture."""
    specular: np.ndarray
    """``h x w`` float32 specular strength ``ks`` in the same atlas, low resolution."""
    albedo_crop: np.ndarray
    """``S x S x 3`` float32 linear albedo at the fitted crop pixels (0 elsewhere)."""
    pixels: np.ndarray
    """``S x S`` bool: the crop pixels the light was fitted on."""
    info: dict = field(default_factory=dict)
    """Diagnostics: residual, pixel count, seconds."""

    def filled_albedo_crop(self, sigma_px: float = 4.0) -> np.ndarray:
        """``S x S x 3`` float32 linear albedo: :attr:`albedo_crop` on the fitted pixels, a
        normalised blur of it elsewhere (for refinement, whose pixels may differ a little)."""
        size = self.pixels.shape[0]
        pixels = np.flatnonzero(self.pixels)
        flat = self.albedo_crop.reshape(-1, 3).copy()
        rest = np.flatnonzero(~self.pixels.reshape(-1))
        flat[rest] = masked_blur(flat[pixels], pixels, size, sigma_px, at=rest)
        return flat.reshape(size, size, 3)


def srgb8_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear [0, 1] through a 256-entry table."""
    from facenormals3d.data.albedo import srgb_to_linear

    table = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
    return table[np.asarray(image, np.uint8)]


def linear_to_srgb8(image: np.ndarray) -> np.ndarray:
    """float linear [0, 1] -> uint8 sRGB."""
    from facenormals3d.data.albedo import linear_to_srgb8 as convert

    return convert(image)  # clips through its table index


def crop_points(depth: np.ndarray, frame: CropFrame) -> np.ndarray:
    """``S x S x 3`` float32 surface points (mm) of the pixel centres of ``frame`` at crop ``depth`` (z)."""
    index = np.arange(frame.size, dtype=np.float32)
    xx, yy = np.meshgrid(*frame.pixel_centres(index, index))
    return np.stack([xx, yy, depth.astype(np.float32)], axis=-1)


def estimate_appearance(crop: np.ndarray, normals: np.ndarray, mask: np.ndarray, vertices: np.ndarray,
                        faces: np.ndarray, vertex_normals: np.ndarray, hits: tuple, frame: CropFrame,
                        raster, own, mirror, texture: np.ndarray,
                        settings: LightingSettings = LightingSettings(),
                        mirror_texel: np.ndarray | None = None) -> Appearance:
    """Light, albedo atlas and specular map of one face.

    Args:
        crop: ``S x S x 3`` uint8 sRGB face crop.
        normals: ``S x S x 3`` detail normals (camera frame), NaN where unknown.
        mask: ``S x S`` bool, the pixels to fit the light on (face mask, mesh visible).
        vertices, faces, vertex_normals: the final mesh (crop frame, mm).
        hits: ``(depth, triangle, bary)`` of :func:`facenormals3d.raster.orthographic_hits`
            for this mesh.
        frame: the crop frame of the ``S x S`` maps.
        raster, own, mirror: the atlas raster and texel views the texture was baked with.
        texture: ``H x W x 3`` uint8 photo texture (sRGB) in that atlas.
        mirror_texel: ``N`` flat atlas index of each covered texel's mirror texel (-1: none;
            :func:`facenormals3d.mesh.atlas.mirror_texels`), for the symmetry prior
            (:attr:`LightingSettings.symmetry`); None = no symmetry prior.
    """
    from facenormals3d.mesh import atlas
    from facenormals3d.raster import interpolate_hits, raycasting_scene

    t0 = time.perf_counter()
    size = crop.shape[0]
    depth, tri, bary = hits
    covered = tri >= 0
    fit_mask = mask & covered & np.all(np.isfinite(normals), axis=-1)
    pixels = np.flatnonzero(fit_mask)
    # Normals of every covered pixel: the detail normals where known, the mesh's elsewhere.
    n_all = interpolate_hits(vertex_normals, faces, tri, bary)
    n_all = np.where(fit_mask[..., None], np.nan_to_num(normals), np.nan_to_num(n_all))
    n_all /= np.maximum(np.linalg.norm(n_all, axis=-1, keepdims=True), 1e-8)
    points = crop_points(np.nan_to_num(depth), frame)
    linear = srgb8_to_linear(crop).reshape(-1, 3)
    scene = raycasting_scene(vertices, faces)
    flat_n = n_all.reshape(-1, 3)
    flat_p = points.reshape(-1, 3)
    fit = fit_lighting(flat_n[pixels], linear[pixels], pixels, size, flat_p[pixels], scene, settings)

    # Shade every covered pixel with the fitted light.
    cov = np.flatnonzero(covered)
    vis = []
    for light in fit.lighting.lights:
        v = np.ones(len(cov), np.float32)
        lit = flat_n[cov] @ light.direction > 0
        v[lit] = shadow_visibility(scene, flat_p[cov][lit], flat_n[cov][lit].astype(np.float32), light.direction)
        vis.append(v)
    diffuse, spec_unit = light_terms(flat_n[cov], fit.lighting, vis)
    ks = masked_blur(fit.ks[:, None], pixels, size, settings.specular_sigma_px, at=cov)[:, 0]
    shade_img = np.zeros((size * size, 4), np.float32)
    shade_img[cov, :3] = diffuse
    shade_img[cov, 3] = ks * spec_unit
    ks_img = np.zeros((size * size, 1), np.float32)
    ks_img[cov, 0] = ks
    t_fit = time.perf_counter() - t0

    # Shading is baked at a quarter of the atlas resolution and upsampled: the crop it comes
    # from has ~1 pixel per 4 atlas texels on the face anyway.
    import cv2

    coarse = _downsampled(raster, own, mirror, max(raster.height // SHADING_DOWNSAMPLE, 1))
    baked = atlas.bake_image(*coarse, shade_img.reshape(size, size, 4), np.eye(3)[:2])
    baked = cv2.resize(baked, (raster.width, raster.height), interpolation=cv2.INTER_LINEAR)
    tex_lin = srgb8_to_linear(texture)
    albedo = (tex_lin - per_channel(baked[..., 3], 3)) / np.maximum(baked[..., :3], MIN_SHADING)
    conf = _shading_confidence(baked[..., :3], raster, settings)
    albedo, filled = _fill_dark(albedo, conf, raster, settings)
    if mirror_texel is not None and settings.symmetry > 0:
        albedo = _symmetric_levels(albedo, raster, mirror_texel, settings)
    small = _downsampled(raster, own, mirror, SPECULAR_MAP_HEIGHT)
    spec_map = atlas.bake_image(*small, ks_img.reshape(size, size, 1), np.eye(3)[:2])[..., 0]

    albedo_crop = np.zeros((size * size, 3), np.float32)
    albedo_crop[pixels] = (linear[pixels] - fit.specular) / np.maximum(fit.diffuse, MIN_SHADING)
    info = {"pixels": int(len(pixels)), "filled_texels": filled, "residual": fit.residual,
            "directional_lights": len(fit.lighting.lights), "seconds_fit": t_fit,
            "seconds": time.perf_counter() - t0}
    return Appearance(lighting=fit.lighting, albedo=linear_to_srgb8(albedo), specular=spec_map.astype(np.float32),
                      albedo_crop=albedo_crop.reshape(size, size, 3), pixels=fit_mask, info=info)


def _shading_confidence(shading: np.ndarray, raster, settings: LightingSettings) -> np.ndarray:
    """``H x W`` float32 in [0, 1]: how far an atlas texel's diffuse ``shading`` (``H x W x 3``,
    mean 1) can be divided out (:attr:`LightingSettings.confident_shading`); 0 off the raster."""
    lo, hi = settings.confident_shading
    lum = shading @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    conf = np.clip((lum - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32) if hi > 0 \
        else np.ones(lum.shape, np.float32)
    return conf * raster.covered()


def _smooth(grid: np.ndarray, raster, sigma_texels: float) -> np.ndarray:
    """Gaussian blur of an ``H x W x C`` atlas grid with sigma ``sigma_texels`` (at atlas height
    512), run at a quarter of the resolution (the results are smooth by design)."""
    import cv2

    f = 4
    small = cv2.resize(grid.astype(np.float32, copy=False), (max(raster.width // f, 1), max(raster.height // f, 1)),
                       interpolation=cv2.INTER_AREA)
    sigma = sigma_texels * raster.height / 512 / f
    small = cv2.GaussianBlur(small, (0, 0), max(sigma, 0.5))
    return cv2.resize(small, (raster.width, raster.height), interpolation=cv2.INTER_LINEAR).reshape(grid.shape)


def _fill_dark(albedo: np.ndarray, conf: np.ndarray, raster, settings: LightingSettings
               ) -> tuple[np.ndarray, float]:
    """Replace albedo texels whose shading confidence ``conf`` (:func:`_shading_confidence`)
    is below 1 by a confidence-weighted Gaussian blur of the well-lit albedo around them.
    Returns the albedo and the share of covered texels that took any fill."""
    if settings.confident_shading[1] <= 0:
        return albedo, 0.0
    c = per_channel(conf, 3)
    grid = np.empty(albedo.shape[:2] + (4,), np.float32)
    grid[..., :3] = albedo * c
    grid[..., 3] = conf
    big = _smooth(grid, raster, settings.fill_sigma_texels)
    fill = big[..., :3] / per_channel(np.maximum(big[..., 3], 1e-4), 3)
    np.copyto(fill, albedo, where=per_channel(big[..., 3] <= 1e-4, 3))  # no well-lit texel near
    # c * albedo + (1 - c) * fill, in place (the same numbers, fewer full-atlas passes).
    out = c * albedo
    out += (1 - c) * fill
    return out, float(np.mean(conf.reshape(-1)[raster.texel] < 1.0))


def _symmetric_levels(albedo: np.ndarray, raster, mirror_texel: np.ndarray, settings: LightingSettings
                      ) -> np.ndarray:
    """The mirror-symmetry prior (:attr:`LightingSettings.symmetry`) on ``H x W x 3`` linear
    ``albedo``: the local log level ``L`` (blur over the covered texels) of each texel with a
    mirror texel moves towards ``(L + L') / 2``, ``L'`` the mirror texel's; the texel's own
    detail is kept. (Weighting the two sides by their shading confidence was worse on the
    held-out pairs: the filled dark side is already smooth and consistent.)"""
    covered = raster.covered().astype(np.float32)
    log_a = np.log(np.maximum(albedo, 1e-3))
    grid = _smooth(np.concatenate([log_a * per_channel(covered, 3), covered[..., None]], axis=-1), raster,
                   settings.symmetry_sigma_texels)
    # Channel planes (4 x H*W) and flat index gathers: numpy gathers rows of an N x 4 array
    # several times slower than one plane at a time.
    planes = np.moveaxis(grid, -1, 0).reshape(4, -1)
    has = np.flatnonzero(mirror_texel >= 0)
    here, there = raster.texel[has], mirror_texel[has]
    w_here, w_there = planes[3][here], planes[3][there]
    ok = (w_here > 1e-4) & (w_there > 1e-4)
    here, there, w_here, w_there = here[ok], there[ok], w_here[ok], w_there[ok]
    out = np.moveaxis(albedo, -1, 0).reshape(3, -1).copy()
    for c in range(3):
        step = planes[c][there] / w_there - planes[c][here] / w_here
        out[c][here] *= np.exp(settings.symmetry * 0.5 * step)
    return np.ascontiguousarray(np.moveaxis(out.reshape(3, *albedo.shape[:2]), 0, -1))


def _downsampled(raster, own, mirror, height: int):
    """The raster and texel views restricted to every ``f``-th texel row and column, as a
    ``height x 2 height`` raster (for low-resolution maps)."""
    from facenormals3d.mesh.atlas import TexelView

    small, keep = raster.subsampled(max(1, raster.height // height))

    def sub(view):
        return None if view is None else TexelView(crop_xy=view.crop_xy[keep], weight=view.weight[keep])

    return small, sub(own), sub(mirror)

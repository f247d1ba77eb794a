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
from facenormals3d.mesh.atlas import blend, per_channel
from facenormals3d.raster import shadow_visibility
from facenormals3d.render.lighting import (MIN_SHADING, Lighting, LightingSettings, fit_lighting, light_terms,
                                           masked_blur)

#: Height of the specular map (the atlas is twice as wide).
SPECULAR_MAP_HEIGHT = 128
#: The shading is baked at 1 / this of the atlas resolution (then upsampled).
SHADING_DOWNSAMPLE = 4
#: Factor between the atlas and the grid on which the smooth fields of the albedo clean-up
#: (the dark-texel fill, the symmetric level) are worked out: they are Gaussian blurs of
#: sigma >= 8 texels at atlas height 512, >= 16 at the default 1024.
SMOOTH_FACTOR = 4


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
    """uint8 sRGB -> float32 linear [0, 1] through a 256-entry table (OpenCV's LUT: 1.5 ms
    against numpy's indexing 13.6 ms on a 2048 x 1024 texture, the same numbers)."""
    import cv2

    from facenormals3d.data.albedo import srgb_to_linear

    table = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
    image = np.ascontiguousarray(image, np.uint8)
    return cv2.LUT(image, table).reshape(image.shape)


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
    # albedo = (texture - specular) / diffuse, in the texture's linear buffer; the full-atlas
    # temporaries go as soon as they are used (a 2048 x 1024 x 4 float32 grid is 34 MB).
    albedo = srgb8_to_linear(texture)
    albedo -= per_channel(baked[..., 3], 3)
    albedo /= np.maximum(baked[..., :3], MIN_SHADING)
    conf = _shading_confidence(baked[..., :3], raster, settings)
    del baked
    albedo, filled = _fill_dark(albedo, conf, raster, settings)
    del conf
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


def _smooth_small(grid: np.ndarray, raster, sigma_texels: float) -> np.ndarray:
    """An ``H x W (x C)`` atlas grid area-averaged down by :data:`SMOOTH_FACTOR` and blurred
    with a Gaussian of sigma ``sigma_texels`` (atlas texels at height 512): ``h x w x C``
    float32, cell ``(r, c)`` centred on atlas position ``((c + 0.5) f, (r + 0.5) f)``."""
    import cv2

    f = SMOOTH_FACTOR
    small = cv2.resize(grid.astype(np.float32, copy=False), (max(raster.width // f, 1), max(raster.height // f, 1)),
                       interpolation=cv2.INTER_AREA)
    sigma = sigma_texels * raster.height / 512 / f
    small = cv2.GaussianBlur(small, (0, 0), max(sigma, 0.5))
    return small.reshape(small.shape[0], small.shape[1], -1)


def _upsampled(small: np.ndarray, raster) -> np.ndarray:
    """A :func:`_smooth_small` grid back at the atlas size (bilinear): ``H x W x C`` float32."""
    import cv2

    up = cv2.resize(small, (raster.width, raster.height), interpolation=cv2.INTER_LINEAR)
    return up.reshape(raster.height, raster.width, small.shape[2])


def _fill_dark(albedo: np.ndarray, conf: np.ndarray, raster, settings: LightingSettings
               ) -> tuple[np.ndarray, float]:
    """Replace albedo texels whose shading confidence ``conf`` (:func:`_shading_confidence`)
    is below 1 by a confidence-weighted Gaussian blur of the well-lit albedo around them
    (worked out on the :data:`SMOOTH_FACTOR` times smaller grid, where it is smooth anyway,
    and upsampled). Returns the albedo (a new array; ``albedo`` itself when the fill is
    off) and the share of covered texels that took any fill."""
    if settings.confident_shading[1] <= 0:
        return albedo, 0.0
    level = _smooth_small(albedo * per_channel(conf, 3), raster, settings.fill_sigma_texels)
    weight = _smooth_small(conf, raster, settings.fill_sigma_texels)
    fill = _upsampled(level / np.maximum(weight, 1e-4), raster)
    # No well-lit texel near: the texel keeps its own albedo.
    np.copyto(fill, albedo, where=per_channel(_upsampled(weight, raster)[..., 0] <= 1e-4, 3))
    return blend(albedo, fill, conf), float(np.mean(conf.reshape(-1)[raster.texel] < 1.0))


def _symmetric_levels(albedo: np.ndarray, raster, mirror_texel: np.ndarray, settings: LightingSettings
                      ) -> np.ndarray:
    """The mirror-symmetry prior (:attr:`LightingSettings.symmetry`) on ``H x W x 3`` linear
    ``albedo``: the local log level ``L`` (blur over the covered texels) of each texel with a
    mirror texel moves towards ``(L + L') / 2``, ``L'`` the mirror texel's; the texel's own
    detail is kept. (Weighting the two sides by their shading confidence was worse on the
    held-out pairs: the filled dark side is already smooth and consistent.)

    ``L`` is smooth at the scale of :attr:`LightingSettings.symmetry_sigma_texels`, so the
    step ``L' - L`` is worked out per cell of the :data:`SMOOTH_FACTOR` times smaller grid
    (from the mirror texel of the covered texel at the cell's centre; ``L'`` read bilinearly
    there), carried across cells without one (push-pull), upsampled, and applied to the
    covered texels that have a mirror texel. Returns a new array."""
    from facenormals3d.mesh.atlas import push_pull_fill, sample_points

    f = SMOOTH_FACTOR
    sigma = settings.symmetry_sigma_texels
    covered = raster.covered()
    log_a = np.log(np.maximum(albedo, 1e-3))
    np.copyto(log_a, 0.0, where=per_channel(~covered, 3))
    level = _smooth_small(log_a, raster, sigma)
    weight = _smooth_small(covered.astype(np.float32), raster, sigma)
    del log_a
    hs, ws = level.shape[:2]
    small, keep = raster.subsampled(f, f // 2)
    there = mirror_texel[keep]
    r, c = np.divmod(small.texel, small.width)
    cells = np.flatnonzero((there >= 0) & (r < hs) & (c < ws))
    if len(cells) == 0:
        return albedo.copy()
    cell, there = r[cells] * ws + c[cells], there[cells]
    rows, cols = np.divmod(there, raster.width)
    at = np.stack([(cols + 0.5) / f, (rows + 0.5) / f], axis=1).astype(np.float32)
    w_there = sample_points(weight, at, outside=0.0)[:, 0]
    w_here = weight.reshape(-1)[cell]
    ok = (w_here > 1e-4) & (w_there > 1e-4)
    if not ok.any():
        return albedo.copy()
    cell, at, w_here, w_there = cell[ok], at[ok], w_here[ok], w_there[ok]
    step = sample_points(level, at, outside=0.0) / w_there[:, None] \
        - level.reshape(-1, 3)[cell] / w_here[:, None]
    log_factor = np.zeros((hs * ws, 3), np.float32)
    has = np.zeros(hs * ws, np.float32)
    log_factor[cell] = settings.symmetry * 0.5 * step
    has[cell] = 1.0
    log_factor = _upsampled(push_pull_fill(log_factor.reshape(hs, ws, 3), has.reshape(hs, ws)), raster)
    np.copyto(log_factor, 0.0, where=per_channel(_mirror_mask(raster, mirror_texel) == 0, 3))
    return albedo * np.exp(log_factor)


def _mirror_mask(raster, mirror_texel: np.ndarray) -> np.ndarray:
    """``H x W`` uint8: 1 at the covered texels that have a mirror texel."""
    mask = np.zeros(raster.height * raster.width, np.uint8)
    mask[raster.texel[mirror_texel >= 0]] = 1
    return mask.reshape(raster.height, raster.width)


def _downsampled(raster, own, mirror, height: int):
    """The raster and texel views restricted to every ``f``-th texel row and column, as a
    ``height x 2 height`` raster (for low-resolution maps)."""
    from facenormals3d.mesh.atlas import TexelView

    small, keep = raster.subsampled(max(1, raster.height // height))

    def sub(view):
        return None if view is None else TexelView(crop_xy=view.crop_xy[keep], weight=view.weight[keep])

    return small, sub(own), sub(mirror)

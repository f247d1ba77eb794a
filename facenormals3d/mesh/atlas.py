"""Texture-atlas baking for meshes with per-corner UVs: photo texture and tangent-space normal map.

Atlas convention: ``H x W`` images, row 0 at the top; UV (u right, v up, [0, 1]) maps to
the continuous texel position ``(u * W, (1 - v) * H)``; texel (row, col) has its centre at
``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H``.

Mesh frame: the crop frame of :mod:`facenormals3d.face.coarse` (mm, x right, y up, z
towards the camera; orthographic view along -z), so a surface point ``(x, y, z)`` is seen
at crop pixel ``(x / s + S/2, S/2 - y / s)`` in continuous coordinates.

Every texel is written: texels the photo sees on the surface take the photo's colour
(weighted by how squarely the surface faces the camera); texels it does not see take the
mirror-symmetric point's colour where that one is seen; the rest are filled smoothly from
their neighbours (push-pull). Nothing is black unless the photo is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenormals3d.frame import CropFrame
from facenormals3d.raster import cast_down, columns, interpolate, raycasting_scene

log = logging.getLogger(__name__)

#: Normal z (towards the camera) at and below which a surface point counts as edge-on:
#: its texel takes nothing from the photo (the weight ramps up to 1 over the next 0.3).
EDGE_ON_NZ = 0.05

#: Tolerance of the visibility test (mm): a texel within this of the front-most surface is
#: seen (more on steep surfaces, by their slope over one crop pixel).
VISIBILITY_TOLERANCE_MM = 1.5


#: Atlas heights the automatic texture size chooses from (the atlas is twice as wide). The
#: smallest still gives the face ~1.4 texels per crop pixel, the grid of the network's normals
#: that the normal map holds; the largest bounds the memory of a face on a large photo.
AUTO_TEXTURE_SIZES = (512, 1024)

#: Texels per photo pixel (linear, on the face) the automatic texture size asks for: a
#: texture sampled more finely than about twice the photo's pixels only interpolates them.
TEXELS_PER_PHOTO_PIXEL = 2.0


def texel_density(vertices: np.ndarray, faces: np.ndarray, corner_uvs: np.ndarray, height: int = 1) -> float:
    """Texels per unit length of the surface (the vertices' unit, e.g. mm) of the triangles
    ``faces`` (``T x 3``) with per-corner UVs ``corner_uvs`` (``T x 3 x 2``) in a ``2 height x
    height`` atlas: the root of their summed texel area over their summed surface area."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces)
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    t = np.asarray(corner_uvs, np.float64)
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    uv_area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
    return float(height * np.sqrt(2.0 * uv_area / max(area, 1e-12)))


def auto_texture_size(texels_per_unit_at_1: float, photo_pixels_per_unit: float) -> int:
    """The smallest of :data:`AUTO_TEXTURE_SIZES` giving the face at least
    :data:`TEXELS_PER_PHOTO_PIXEL` texels per photo pixel (the largest when none does).

    ``texels_per_unit_at_1``: :func:`texel_density` of the face at height 1;
    ``photo_pixels_per_unit``: photo pixels per the same unit of length on the face (its
    frontal resolution in the photo)."""
    for size in AUTO_TEXTURE_SIZES:
        if size * texels_per_unit_at_1 >= TEXELS_PER_PHOTO_PIXEL * photo_pixels_per_unit:
            return size
    return AUTO_TEXTURE_SIZES[-1]


@dataclass
class AtlasRaster:
    """Which surface point every covered texel of an atlas shows."""

    width: int
    height: int
    texel: np.ndarray
    """``N`` int64 flat indices (row-major) of the covered texels."""
    triangle: np.ndarray
    """``N`` int64 triangle of each covered texel."""
    bary: np.ndarray
    """``N x 3`` float32 barycentric weights of its corners (stored column by column:
    :func:`~facenormals3d.raster.columns`)."""

    _subsampled: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """:meth:`subsampled` results by factor and offset (they depend on the layout alone)."""

    def __post_init__(self):
        self.bary = columns(np.asarray(self.bary, np.float32))

    def covered(self) -> np.ndarray:
        """``height x width`` bool: the texels some triangle covers."""
        mask = np.zeros(self.height * self.width, bool)
        mask[self.texel] = True
        return mask.reshape(self.height, self.width)

    def subsampled(self, factor: int, offset: int = 0) -> tuple["AtlasRaster", np.ndarray]:
        """The texels of rows and columns ``offset``, ``offset + factor``, ... as a
        ``ceil(height / factor) x ceil(width / factor)`` raster (texel ``(r, c)`` there is
        ``(r factor + offset, c factor + offset)`` here), and the ``M`` indices (into this
        raster's ``N`` covered texels) of the texels it keeps. Kept per factor and offset:
        the layout is the same for every face, and working it out over the ~1.7 M covered
        texels of a 2048 x 1024 atlas takes ~25 ms."""
        key = (factor, offset)
        if key not in self._subsampled:
            rows, cols = np.divmod(self.texel, self.width)
            keep = np.flatnonzero((rows % factor == offset) & (cols % factor == offset))
            h, w = -(-self.height // factor), -(-self.width // factor)
            small = AtlasRaster(width=w, height=h, texel=(rows[keep] // factor) * w + cols[keep] // factor,
                                triangle=self.triangle[keep], bary=self.bary[keep])
            self._subsampled[key] = (small, keep)
        return self._subsampled[key]


def rasterize_atlas(corner_uvs: np.ndarray, width: int, height: int) -> AtlasRaster:
    """Rasterise ``T x 3 x 2`` per-corner UVs into a ``height x width`` atlas (texel centres).

    Ray casts a flat copy of the UV layout (open3d), so it takes ~0.2 s for 2 M texels;
    callers keep the result for every face with the same topology.
    """
    uv = np.asarray(corner_uvs, np.float64).reshape(-1, 2)
    pts = np.zeros((len(uv), 3), np.float32)
    pts[:, 0] = uv[:, 0] * width
    pts[:, 1] = uv[:, 1] * height
    faces = np.arange(len(uv), dtype=np.int64).reshape(-1, 3)
    # Texel (row, col) centre at (col + 0.5, height - row - 0.5) in the UV plane (v up).
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5, np.arange(height, dtype=np.float32) + 0.5)
    _, triangle, bary = cast_down(raycasting_scene(pts, faces), cols, height - rows, 1.0)
    ok = (triangle >= 0).ravel()
    return AtlasRaster(width=width, height=height, texel=np.flatnonzero(ok),
                       triangle=triangle.ravel()[ok], bary=bary.reshape(-1, 3)[ok])


#: Bump when :func:`rasterize_atlas` or :func:`mirror_texels` change what they compute.
ATLAS_CACHE_VERSION = 1


def cached_atlas(faces: np.ndarray, corner_uvs: np.ndarray, mirror: np.ndarray, width: int, height: int,
                 cache: Path | None) -> tuple[AtlasRaster, np.ndarray]:
    """:func:`rasterize_atlas` and :func:`mirror_texels` of a UV layout, kept on disk.

    Both take ~1-2 s per process on 2 cores for a 2048 x 1024 atlas, a large share of a cold
    start; they depend only on the layout, so they are stored once in ``cache`` (a folder;
    None = always compute) under a key hashed from ``faces``, ``corner_uvs``, ``mirror``, the
    size and :data:`ATLAS_CACHE_VERSION`. A cache file that cannot be read is recomputed and
    rewritten; one that cannot be written is skipped (the result is the same either way).
    Writes are atomic (temporary file + rename), so parallel processes never read half a file.
    """
    import hashlib
    import os
    import zipfile

    path = None
    if cache is not None:
        h = hashlib.sha256(f"{ATLAS_CACHE_VERSION}:{width}x{height}".encode())
        for a in (faces, corner_uvs, mirror):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        path = Path(cache) / f"atlas-{h.hexdigest()[:20]}.npz"
        try:
            with np.load(path) as z:
                raster = AtlasRaster(width=width, height=height, texel=z["texel"].astype(np.int64),
                                     triangle=z["triangle"].astype(np.int64), bary=z["bary"])
                mirror_texel = z["mirror_texel"].astype(np.int64)
            return raster, mirror_texel
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            log.debug("atlas cache %s not usable; computing it", path)
    raster = rasterize_atlas(corner_uvs, width, height)
    mirror_texel = mirror_texels(raster, faces, corner_uvs, mirror)
    if path is not None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                np.savez(out, texel=raster.texel.astype(np.int32), triangle=raster.triangle.astype(np.int32),
                         bary=raster.bary.astype(np.float32), mirror_texel=mirror_texel.astype(np.int32))
            os.replace(tmp, path)
        except OSError as e:
            log.debug("atlas cache %s not written: %s", path, e)
            tmp.unlink(missing_ok=True)
    return raster, mirror_texel


def mirror_texels(raster: AtlasRaster, faces: np.ndarray, corner_uvs: np.ndarray, mirror: np.ndarray
                  ) -> np.ndarray:
    """``N`` int64: flat atlas index of the texel at the mirror-symmetric surface point of each
    covered texel of ``raster`` (-1 where the mirror triangle is missing or lands on no texel).

    ``faces``: ``T x 3`` triangles; ``corner_uvs``: their ``T x 3 x 2`` UVs; ``mirror``: ``V``
    vertex index at the mirror position (x -> -x) of each vertex. The mirror point of a texel
    (triangle ``t``, barycentrics ``b``) is the triangle made of the mirrored corners, at the
    same barycentrics of the mirrored corners; where the triangulation is not symmetric, the
    mirrored corners' own UVs. ~0.25 s for a 512 x 1024 atlas: callers keep the result.
    """
    f = np.asarray(faces, np.int64)
    uvs = np.asarray(corner_uvs, np.float64)
    m = np.asarray(mirror, np.int64)[f]  # T x 3 mirrored corners
    # Triangle with the same corner set: sort the corners and match them through one key.
    nv = int(f.max()) + 1
    key = np.sort(f, axis=1) @ np.array([nv * nv, nv, 1], np.int64)
    mkey = np.sort(m, axis=1) @ np.array([nv * nv, nv, 1], np.int64)
    order = np.argsort(key)
    pos = np.clip(np.searchsorted(key[order], mkey), 0, len(key) - 1)
    partner = np.where(key[order][pos] == mkey, order[pos], -1)  # T
    t = raster.triangle
    tm = partner[t]
    b = raster.bary.astype(np.float64)
    # Where the triangulation is not symmetric (a quad split the other way) there is no
    # partner: the mirrored corners' own UVs (one per vertex; ambiguous only on seams).
    vertex_uv = np.zeros((nv, 2))
    vertex_uv[f.ravel()] = uvs.reshape(-1, 2)
    uv = np.einsum("nk,nkd->nd", b, vertex_uv[m[t]])
    ok = np.flatnonzero(tm >= 0)
    if len(ok):
        # Corner k of the texel's triangle maps to the partner's corner holding mirror[f[t, k]].
        slot = np.argmax(f[tm[ok]][:, None, :] == m[t[ok]][:, :, None], axis=2)  # n x 3
        uv[ok] = np.einsum("nk,nkd->nd", b[ok], uvs[tm[ok][:, None], slot])
    col = np.floor(uv[:, 0] * raster.width).astype(np.int64)
    row = np.floor((1.0 - uv[:, 1]) * raster.height).astype(np.int64)
    inside = (col >= 0) & (col < raster.width) & (row >= 0) & (row < raster.height)
    flat = np.where(inside, row * raster.width + col, -1)
    covered = raster.covered().ravel()
    return np.where(covered[np.maximum(flat, 0)] & inside, flat, -1)


@dataclass
class TexelView:
    """Where each covered texel's surface point is seen in the crop, and how well."""

    crop_xy: np.ndarray
    """``N x 2`` float32 continuous crop pixel coordinates (x right, y down)."""
    weight: np.ndarray
    """``N`` float32 in [0, 1]: 0 = hidden or edge-on, 1 = seen squarely."""


#: Person probabilities (:meth:`~facenormals3d.face.detect.FaceFinder.person_mask`) from
#: which a texel's view counts not at all / fully: texels that land on the photo's background
#: (the model's ears, neck or scalp outside the real silhouette) are taken from elsewhere.
PERSON_RAMP = (0.5, 0.9)


def on_person(view: "TexelView", person: np.ndarray) -> "TexelView":
    """``view`` with each texel's weight scaled by how surely the crop shows the person where
    the texel lands (``person``: ``S x S`` in [0, 1] on the crop grid; ramp :data:`PERSON_RAMP`)."""
    import dataclasses

    seen = np.flatnonzero(view.weight > 0)  # the others stay 0: sampling only these
    p = sample_points(np.asarray(person, np.float32), view.crop_xy[seen], outside=0.0)[:, 0]
    lo, hi = PERSON_RAMP
    weight = np.zeros_like(view.weight, dtype=np.float32)
    weight[seen] = view.weight[seen] * np.clip((p - lo) / (hi - lo), 0.0, 1.0)
    return dataclasses.replace(view, weight=weight)


def view_texels(raster: AtlasRaster, corners: np.ndarray, vertices: np.ndarray, vertex_normals: np.ndarray,
                zbuffer: np.ndarray, frame: CropFrame, candidates: np.ndarray | None = None) -> TexelView:
    """Project covered texels into the crop and test them against ``zbuffer`` (``S x S`` z, mm,
    on the grid of ``frame``).

    ``corners``: ``N x 3`` vertex indices of each covered texel's triangle corners, e.g.
    ``faces[raster.triangle]`` (or the mirrored vertices, to look up each texel's mirror
    image). ``candidates``: ``N`` bool, texels worth testing (others get weight 0).
    """
    mm_per_pixel = frame.mm_per_pixel
    v = np.asarray(vertices, np.float32)
    per_vertex = np.concatenate([frame.to_pixels(v), v[:, 2:3], np.asarray(vertex_normals, np.float32)[:, 2:3]],
                                axis=1)
    if candidates is None:
        idx, c, b = np.arange(len(corners)), corners, raster.bary
    else:
        idx = np.flatnonzero(candidates)
        c, b = columns(corners, idx), columns(raster.bary, idx)
    q = interpolate(per_vertex, c, b)
    xy, z, n_z = q[:, :2], q[:, 2], q[:, 3]
    z_front = sample_points(np.nan_to_num(zbuffer, nan=-1e6).astype(np.float32), xy, nearest=True,
                            outside=-1e6)[:, 0]
    # A steep surface changes depth by up to tan(angle) * pixel size within one z-buffer pixel.
    slope = np.sqrt(np.clip(1 - n_z ** 2, 0, 1)) / np.maximum(n_z, 0.05)
    seen = z >= z_front - np.maximum(VISIBILITY_TOLERANCE_MM, 1.5 * mm_per_pixel * slope)
    crop_xy = np.zeros((len(corners), 2), np.float32)
    weight = np.zeros(len(corners), np.float32)
    crop_xy[idx] = xy
    weight[idx] = np.clip((n_z - EDGE_ON_NZ) / 0.3, 0.0, 1.0) * seen
    return TexelView(crop_xy=crop_xy, weight=weight)


def facing_texels(raster: AtlasRaster, vertices: np.ndarray, faces: np.ndarray, mirrored: bool = False
                  ) -> np.ndarray:
    """``N`` bool: covered texels whose triangle faces the camera (+z). ``mirrored``: the
    ``faces`` are the mirror images of the atlas's triangles (``mirror[triangles]``), whose
    corners run the other way round."""
    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces)
    nz = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])[:, 2]
    return ((nz < 0) if mirrored else (nz > 0))[raster.triangle]


def bake_texture(raster: AtlasRaster, own: TexelView, mirror: TexelView | None, photo: np.ndarray,
                 crop_to_photo: np.ndarray) -> np.ndarray:
    """The photo unwrapped into the atlas: ``H x W x 3`` uint8.

    ``crop_to_photo``: 2 x 3 affine map from crop pixels to photo pixels (continuous
    coordinates). Samples the full-resolution ``photo`` (``h x w x 3`` uint8) bilinearly.
    """
    colour = bake_image(raster, own, mirror, photo, crop_to_photo)
    colour += 0.5  # (in place: a full atlas is 25 MB of float32)
    return np.clip(colour, 0, 255, out=colour).astype(np.uint8)


def bake_image(raster: AtlasRaster, own: TexelView, mirror: TexelView | None, image: np.ndarray,
               crop_to_image: np.ndarray) -> np.ndarray:
    """:func:`bake_texture` for any ``h x w x C`` image (C <= 4, e.g. float32 shading):
    ``H x W x C`` float32, in the image's own units."""
    colour, weight = _sample_photo(own, image, crop_to_image)
    if mirror is not None:
        # Where the texel itself is not (fully) seen, its mirror image fills in.
        need = np.flatnonzero((weight < 0.999) & (mirror.weight > 0))
        sub = TexelView(crop_xy=mirror.crop_xy[need], weight=mirror.weight[need])
        colour_m, w_m = _sample_photo(sub, image, crop_to_image)
        w_own = weight[need]
        w_mix = (1.0 - w_own) * w_m
        total = w_own + w_mix
        colour[need] = (colour[need] * w_own[:, None] + colour_m * w_mix[:, None]) / np.maximum(total, 1e-6)[:, None]
        weight[need] = total
    channels = colour.shape[1]
    img = np.zeros((raster.height * raster.width, channels), np.float32)
    wmap = np.zeros(raster.height * raster.width, np.float32)
    img[raster.texel] = colour
    wmap[raster.texel] = weight
    del colour, weight  # (the peak is in the fill: at 2048 x 1024, 27 MB less)
    img = img.reshape(raster.height, raster.width, channels)
    wmap = wmap.reshape(raster.height, raster.width)
    filled = push_pull_fill(img, wmap)
    return blend(img, filled, np.clip(wmap * 4.0, 0.0, 1.0), out=filled)  # seen texels keep their colour


def _sample_photo(view: TexelView, photo: np.ndarray, crop_to_photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours (``N x C`` float32) of the seen texels and their weights (0 outside the photo)."""
    colour = np.zeros((len(view.weight), photo.shape[2] if photo.ndim == 3 else 1), np.float32)
    weight = np.zeros(len(view.weight), np.float32)
    idx = np.flatnonzero(view.weight > 0)
    a = np.asarray(crop_to_photo, np.float32)
    xy = view.crop_xy[idx] @ a[:, :2].T + a[:, 2]
    h, w = photo.shape[:2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
    colour[idx] = sample_points(photo, xy)
    weight[idx] = view.weight[idx] * inside
    return colour, weight


def push_pull_fill(image: np.ndarray, weight: np.ndarray, levels: int = 12) -> np.ndarray:
    """Fill ``H x W x C`` ``image`` where ``weight`` (``H x W``, >= 0) is low, from a weighted pyramid.

    Push: halve resolution, averaging colour by weight; pull: fill each level's empty
    texels from the coarser level (``a x + (1 - a) up`` with ``a`` the level's weight, up to
    1, and ``x`` its weighted mean colour: at full resolution that is ``image`` itself).
    Returns ``H x W x C`` float32 defined everywhere (a uniform grey if nothing has weight).
    """
    import cv2

    w = np.clip(weight, 0, 1).astype(np.float32)
    if w.max() <= 0:
        return np.full(image.shape, 128.0, np.float32)
    image = np.asarray(image, np.float32)
    channels = image.shape[2]
    pyramid = [(image * per_channel(w, channels), w)]
    for _ in range(levels):
        cw, ww = pyramid[-1]
        if min(ww.shape) <= 2:
            break
        half = (ww.shape[1] // 2, ww.shape[0] // 2)
        # (reshape: OpenCV drops a single channel's axis)
        pyramid.append((cv2.resize(cw, half, interpolation=cv2.INTER_AREA).reshape(half[1], half[0], -1),
                        cv2.resize(ww, half, interpolation=cv2.INTER_AREA)))
        if len(pyramid) == 2:  # the pull uses `image` itself at full resolution, not its product
            pyramid[0] = (None, w)
    cw, ww = pyramid[-1]
    colour = cw / np.maximum(ww, 1e-8)[..., None]
    colour[ww <= 1e-8] = (cw.reshape(-1, cw.shape[-1]).sum(0) / max(float(ww.sum()), 1e-8))
    for level in range(len(pyramid) - 2, -1, -1):
        cw, ww = pyramid[level]
        up = cv2.resize(colour, (ww.shape[1], ww.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(*ww.shape, channels)
        # The level's weighted mean colour; at full resolution the image (the same wherever
        # the weight is not ~0, and where it is, the blend takes `up`).
        mean = image if level == 0 else cw / per_channel(np.maximum(ww, 1e-8), channels)
        colour = blend(mean, up, np.clip(ww, 0, 1), out=up)
    return colour


#: Weight scale of :func:`blend`: OpenCV divides by the weights' sum plus 1e-5, which a
#: power of two this large makes vanish (an exact scaling, and the sum's rounding).
_BLEND_SCALE = np.float32(2.0 ** 20)


def blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``weight * a + (1 - weight) * b`` for ``H x W x C`` float32 images and an ``H x W``
    float32 ``weight`` in [0, 1]: ``H x W x C`` float32, written into ``out`` when given
    (contiguous float32 of that shape; it may be ``a`` or ``b``: each pixel is read before
    it is written).

    OpenCV's ``blendLinear`` in one pass (measured here at 2048 x 1024 x 3: 4.8 ms against
    22 ms for the numpy expression); the same numbers as numpy's up to float32 rounding
    of ``weight + (1 - weight)`` (tested).
    """
    import cv2

    w = np.ascontiguousarray(weight, np.float32)
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    if out is None:
        return cv2.blendLinear(a, b, w * _BLEND_SCALE, (1 - w) * _BLEND_SCALE).reshape(a.shape)
    if out.shape != a.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be contiguous float32 {a.shape}, got {out.dtype} {out.shape}")
    cv2.blendLinear(a, b, w * _BLEND_SCALE, (1 - w) * _BLEND_SCALE, dst=out)
    return out


def per_channel(weight: np.ndarray, channels: int) -> np.ndarray:
    """``H x W`` ``weight`` (float or bool) repeated into ``H x W x channels``, to multiply
    an image by or to mask it with.

    The same numbers as broadcasting ``weight[..., None]``, but numpy then runs its inner
    loop over the 3 channels of every pixel: measured here on 2048 x 1024 x 3 float32, one
    broadcast product took 30 ms, the product with the repeated weight 6 ms. The repeat is
    OpenCV's channel merge (1.2 ms; numpy's ``repeat`` 4.2 ms).
    """
    import cv2

    w = np.ascontiguousarray(weight)
    if w.ndim != 2 or w.size == 0 or channels < 2 or w.dtype not in (np.float32, np.float64, np.bool_):
        return np.repeat(w[..., None], channels, axis=-1)
    if w.dtype == np.bool_:
        return cv2.merge([w.view(np.uint8)] * channels).view(np.bool_)
    return cv2.merge([w] * channels)


def sample_points(image: np.ndarray, xy: np.ndarray, nearest: bool = False,
                  outside: float | None = None) -> np.ndarray:
    """Sample ``image`` (``H x W`` or ``H x W x C``) at continuous points ``xy`` (``N x 2``,
    pixel centres at +0.5): ``N x C`` (bilinear, or nearest). Outside the image: ``outside``,
    or the nearest edge pixel when None.
    """
    import cv2

    n = len(xy)
    if n == 0:  # OpenCV refuses an empty map
        return np.zeros((0, image.shape[2] if image.ndim == 3 else 1), image.dtype)
    cols = 1024
    pad = (-n) % cols
    m = np.concatenate([np.asarray(xy, np.float32), np.zeros((pad, 2), np.float32)]) - 0.5
    m = m.reshape(-1, cols, 2)  # OpenCV maps must stay under 32767 rows and columns
    border = cv2.BORDER_REPLICATE if outside is None else cv2.BORDER_CONSTANT
    out = cv2.remap(image, m[..., 0], m[..., 1], cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                    borderMode=border, borderValue=0.0 if outside is None else float(outside))
    return out.reshape(len(m) * cols, -1)[:n]


def bake_normal_map(raster: AtlasRaster, own: TexelView, vertices: np.ndarray, faces: np.ndarray,
                    corner_uvs: np.ndarray, vertex_normals: np.ndarray, normals_crop: np.ndarray,
                    confidence_crop: np.ndarray) -> np.ndarray:
    """Tangent-space normal map (OpenGL: +x = +u, +y = +v) of the crop normals on the mesh.

    ``normals_crop``: ``S x S x 3`` camera-space unit normals (NaN where unknown);
    ``confidence_crop``: ``S x S`` in [0, 1], how much to trust them (0 = keep the mesh's
    own normal). Returns ``H x W x 3`` float32 unit vectors, (0, 0, 1) where unseen.
    """
    out = np.zeros((raster.height * raster.width, 3), np.float32)
    out[:, 2] = 1.0
    valid = np.all(np.isfinite(normals_crop), axis=-1)
    conf = np.where(valid, confidence_crop, 0.0).astype(np.float32)
    seen = np.flatnonzero(own.weight > 0)  # sampling only these: ~4x fewer texels
    w = np.zeros(len(own.weight), np.float32)
    w[seen] = sample_points(conf, own.crop_xy[seen], outside=0.0)[:, 0]
    use = np.flatnonzero(w > 1e-3)
    if len(use) == 0:
        return out.reshape(raster.height, raster.width, 3)
    n_pred = sample_points(np.where(valid[..., None], normals_crop, 0).astype(np.float32), own.crop_xy[use],
                           outside=0.0).T.copy()
    # Per texel: the mesh normal n, tangent t and bitangent b made orthonormal (Gram-Schmidt),
    # and the predicted normal in that (t, b, n) basis. Vectors are held as 3 rows (x, y, z)
    # of U texels: on 3 x U rows numpy runs ~20x faster than on U x 3 columns, with the same
    # float32 operations in the same order as the U x 3 form (dot products summed x, y, z).
    tri = raster.triangle[use]
    n = interpolate(np.asarray(vertex_normals, np.float32), np.asarray(faces)[tri], raster.bary[use]).T
    tangent, bitangent = triangle_tangents(np.asarray(vertices, np.float32), np.asarray(faces), corner_uvs)
    t, bt = tangent.T[:, tri], bitangent.T[:, tri]
    n = _unit_rows(n)
    t = _unit_rows(t - n * _dot_rows(t, n))
    bt = _unit_rows(bt - (n * _dot_rows(bt, n) + t * _dot_rows(bt, t)))
    n_pred = _unit_rows(n_pred)
    wu = w[use]
    flat = np.array([0, 0, 1], np.float32)
    ts = np.stack([wu * _dot_rows(basis, n_pred) + (1 - wu) * flat[k] for k, basis in enumerate((t, bt, n))])
    ts[2] = np.maximum(ts[2], 0.05)
    ts /= np.sqrt(_dot_rows(ts, ts))
    out[raster.texel[use]] = ts.T
    return out.reshape(raster.height, raster.width, 3)


def _dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot products of ``3 x N`` vectors: ``(a0 b0 + a1 b1) + a2 b2``, ``N``."""
    return (a[0] * b[0] + a[1] * b[1]) + a[2] * b[2]


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """``3 x N`` vectors scaled to unit length (a zero vector stays zero)."""
    return a / np.maximum(np.sqrt(_dot_rows(a, a)), 1e-8)


def triangle_tangents(vertices: np.ndarray, faces: np.ndarray, corner_uvs: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle tangent (along +u) and bitangent (along +v), ``T x 3`` each, unnormalised."""
    p = vertices[faces]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    uv = np.asarray(corner_uvs, np.float32)
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    inv = np.where(np.abs(det) > 1e-12, 1.0 / np.where(det == 0, 1, det), 0.0)[:, None]
    tangent = (e1 * d2[:, 1:] - e2 * d1[:, 1:]) * inv
    bitangent = (e2 * d1[:, :1] - e1 * d2[:, :1]) * inv
    return tangent.astype(np.float32), bitangent.astype(np.float32)

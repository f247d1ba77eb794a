"""Rendering a fitted face under new light (PyTorch3D rasteriser), light presets, compositing.

:func:`render_lit` rasterises the mesh with :func:`facenormals3d.raster.rasterize`
(PyTorch3D's MeshRasterizer; open3d ray casting on request) in an
:class:`~facenormals3d.raster.OrthoView`, then shades each covered pixel with the
image model of :mod:`facenormals3d.render.lighting`: albedo and specular strength from the
atlas at the interpolated UVs, the normal from the tangent-space normal map on the
interpolated vertex normal, shadow rays cast on the same mesh. Lights are given in the
*view* frame (x right, y up, z towards the viewer), so a light stays where it is in the
picture while the view turns (a head turning under studio lights).

Two ways back into the photo, both over the whole rendered head with a soft edge:
:func:`composite_quotient` multiplies the photo by the ratio of the render under the new light
to the render under the photo's own fitted light (the photo keeps its detail, hair and eyes;
only the light changes), :func:`composite` pastes the render itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.raster import OrthoView
from facenormals3d.render.lighting import DirectionalLight, Lighting, clamped_cosine_sh, light_terms

#: Presets for ``relight --light``: one line of help each, then the light (camera frame).
PRESETS: dict[str, tuple[str, dict]] = {
    "front": ("soft light from the camera", {"ambient": 0.45, "lights": [((0.0, 0.1, 1.0), 0.6)]}),
    "left": ("key light from the subject's right (image left), soft fill",
             {"ambient": 0.3, "lights": [((-0.8, 0.3, 0.5), 0.9)]}),
    "right": ("key light from image right, soft fill", {"ambient": 0.3, "lights": [((0.8, 0.3, 0.5), 0.9)]}),
    "top": ("overhead light", {"ambient": 0.3, "lights": [((0.0, 0.9, 0.45), 0.9)]}),
    "studio": ("three-quarter key with a warm tint and a cool fill",
               {"ambient": 0.25, "lights": [((-0.55, 0.45, 0.7), 0.75, (1.05, 1.0, 0.92)),
                                            ((0.7, 0.0, 0.7), 0.25, (0.9, 0.95, 1.05))]}),
    "dramatic": ("hard low-key side light with deep shadows", {"ambient": 0.08, "lights": [((0.95, 0.15, 0.3), 1.4)]}),
    "sunset": ("warm low light from the side, blue sky fill",
               {"ambient": 0.25, "ambient_color": (0.8, 0.9, 1.15),
                "lights": [((-0.9, 0.05, 0.45), 1.1, (1.25, 0.85, 0.6))]}),
}


def preset_lighting(name: str, shininess: float = 24.0) -> Lighting:
    """The :class:`Lighting` of preset ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(name, f"unknown light preset; choose from {', '.join(PRESETS)}")
    spec = PRESETS[name][1]
    ambient = float(spec["ambient"]) * np.asarray(spec.get("ambient_color", (1.0, 1.0, 1.0)))
    sh = np.zeros((9, 3))
    sh[0] = ambient / 0.28209479177387814  # constant irradiance = ambient
    lights = []
    for entry in spec["lights"]:
        d = np.asarray(entry[0], float)
        color = float(entry[1]) * np.asarray(entry[2] if len(entry) > 2 else (1.0, 1.0, 1.0))
        lights.append(DirectionalLight(d / np.linalg.norm(d), color))
    return Lighting(sh=sh, lights=lights, shininess=shininess)


def direction_lighting(direction: np.ndarray, shininess: float = 24.0) -> Lighting:
    """One white light from ``direction`` (camera frame) plus a soft ambient."""
    d = np.asarray(direction, float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise InputError("--direction", f"needs three numbers X,Y,Z not all zero, got {direction}")
    sh = np.zeros((9, 3))
    sh[0] = 0.3 / 0.28209479177387814
    return Lighting(sh=sh, lights=[DirectionalLight(d / np.linalg.norm(d), np.full(3, 0.9))], shininess=shininess)


def unshadowed_sh(lighting: Lighting) -> np.ndarray:
    """``9 x 3`` SH of the whole light with the directional lights folded in (no shadows)."""
    sh = np.array(lighting.sh, float)
    for light in lighting.lights:
        sh += clamped_cosine_sh(light.direction)[:, None] * light.color[None]
    return sh


@dataclass
class LitRender:
    """A lit render (all ``size x size``, row 0 at the top)."""

    rgb: np.ndarray
    """``x 3`` float32 linear RGB (0 where not covered)."""
    coverage: np.ndarray
    """bool: a front-facing triangle covers the pixel."""
    albedo: np.ndarray
    """``x 3`` float32 linear albedo sampled from the atlas."""


def render_lit(vertices: np.ndarray, faces: np.ndarray, corner_uvs: np.ndarray, albedo: np.ndarray,
               lighting: Lighting, view: OrthoView, normal_map: np.ndarray | None = None,
               specular_map: np.ndarray | None = None, shadows: bool = True, rasterizer: str = "pytorch3d",
               device: str = "cpu") -> LitRender:
    """Render a mesh with an albedo atlas under ``lighting`` (view frame).

    Args:
        vertices, faces: ``V x 3`` mm and ``F x 3`` counter-clockwise triangles (our frame).
        corner_uvs: ``F x 3 x 2`` atlas UVs per corner (u right, v up).
        albedo: ``H x W x 3`` atlas, uint8 sRGB or float linear.
        normal_map: ``H' x W' x 3`` tangent-space unit normals in the same atlas (OpenGL,
            +x = +u, +y = +v), or None for the mesh's own normals.
        specular_map: ``h x w`` specular strength ``ks`` in the same atlas, or None (no specular).
        shadows: cast shadow rays for the directional lights.
        rasterizer: see :func:`facenormals3d.raster.rasterize`.
    """
    from facenormals3d.mesh.atlas import sample_points, triangle_tangents
    from facenormals3d.raster import interpolate, rasterize, raycasting_scene, shadow_visibility
    from facenormals3d.render.appearance import srgb8_to_linear
    from facenormals3d.surface import vertex_normals

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    uvs = np.asarray(corner_uvs, np.float32)
    if uvs.shape != (len(f), 3, 2):
        raise InputError("corner_uvs", f"must be {len(f)} x 3 x 2, got {uvs.shape}")
    p2f, bary = rasterize(v, f, view, device, rasterizer)
    p2f = p2f.cpu().numpy().reshape(-1)
    bary = bary.cpu().numpy().reshape(-1, 3).astype(np.float64)
    cov = np.flatnonzero((p2f >= 0) & (view.facing(v, f)[np.maximum(p2f, 0)] > 0))
    tri, b = p2f[cov], bary[cov]
    corners = f[tri]

    def interp(per_vertex: np.ndarray) -> np.ndarray:
        return interpolate(per_vertex, corners, b)

    uv = interpolate(uvs.reshape(-1, 2).astype(np.float64), 3 * tri[:, None] + np.arange(3), b)
    alb = albedo if np.issubdtype(np.asarray(albedo).dtype, np.floating) else srgb8_to_linear(albedo)
    alb_px = _sample_atlas(np.asarray(alb, np.float32), uv, sample_points)
    vn = interp(vertex_normals(v, f))
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    n = vn
    if normal_map is not None:
        ts = _sample_atlas(np.asarray(normal_map, np.float32), uv, sample_points).astype(np.float64)
        t, bt = (x.astype(np.float64)[tri] for x in triangle_tangents(v.astype(np.float32), f, uvs))
        t -= vn * (t * vn).sum(1, keepdims=True)
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        bt -= vn * (bt * vn).sum(1, keepdims=True) + t * (bt * t).sum(1, keepdims=True)
        bt /= np.maximum(np.linalg.norm(bt, axis=1, keepdims=True), 1e-12)
        n = t * ts[:, :1] + bt * ts[:, 1:2] + vn * ts[:, 2:]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    n_view = n @ view.rotation.T
    vis = None
    if shadows and lighting.lights:
        scene = raycasting_scene(v, f)
        points = interp(v).astype(np.float32)
        vis = []
        for light in lighting.lights:
            d_world = view.rotation.T @ light.direction
            lit = n @ d_world > 0
            vis_l = np.ones(len(cov), np.float32)
            vis_l[lit] = shadow_visibility(scene, points[lit], n[lit].astype(np.float32), d_world)
            vis.append(vis_l)
    diffuse, spec = light_terms(n_view, lighting, vis)
    rgb_px = alb_px * diffuse
    if specular_map is not None:
        ks = _sample_atlas(np.asarray(specular_map, np.float32)[..., None], uv, sample_points)[:, 0]
        rgb_px += (ks * spec)[:, None]
    size = view.size

    def image(values: np.ndarray) -> np.ndarray:
        out = np.zeros((size * size, values.shape[1]), np.float32)
        out[cov] = values
        return out.reshape(size, size, -1)

    coverage = np.zeros(size * size, bool)
    coverage[cov] = True
    return LitRender(rgb=image(np.maximum(rgb_px, 0)), coverage=coverage.reshape(size, size), albedo=image(alb_px))


def _sample_atlas(atlas: np.ndarray, uv: np.ndarray, sample_points) -> np.ndarray:
    """Bilinear samples ``N x C`` of an ``H x W x C`` atlas at ``N x 2`` UVs (v up)."""
    h, w = atlas.shape[:2]
    xy = np.stack([uv[:, 0] * w, (1.0 - uv[:, 1]) * h], axis=1).astype(np.float32)
    return sample_points(atlas, xy).reshape(len(uv), -1)


def soft_alpha(region: np.ndarray, feather_px: float) -> np.ndarray:
    """``S x S`` float32 alpha: 1 well inside ``region`` (bool), falling to 0 at its edge over
    ``feather_px`` pixels (eroded first, so the edge never reaches outside the region). The
    image border counts as an edge: a region cut off by the render's square fades out too."""
    import cv2

    padded = np.pad(region.astype(np.uint8), 1)
    inside = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    return np.clip(inside / max(feather_px, 1e-6), 0.0, 1.0).astype(np.float32)


def composite(photo: np.ndarray, render_srgb: np.ndarray, alpha: np.ndarray, crop_to_photo) -> np.ndarray:
    """Paste a crop-frame render (``R x R x 3`` uint8, with ``R x R`` float ``alpha``) into
    ``photo`` (``h x w x 3`` uint8); ``crop_to_photo`` is the face's
    :class:`~facenormals3d.face.crop.CropTransform` for a render of side R (scaled from S)."""
    from facenormals3d.face.crop import warp_to_photo

    shape = photo.shape[:2]
    layer = warp_to_photo(render_srgb.astype(np.float32), crop_to_photo, shape, order=1)
    a = warp_to_photo(alpha.astype(np.float32), crop_to_photo, shape, order=1)[..., None]
    return np.clip(photo * (1 - a) + layer * a + 0.5, 0, 255).astype(np.uint8)


def shading_quotient(new: LitRender, old: LitRender, max_ratio: float = 3.0, dark: float = 0.4,
                     chroma_sigma: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of two renders of the same view (linear RGB): the face under the new light over the
    face under the photo's light, and where to trust it.

    The ratio is the per-pixel luminance ratio times a smooth colour ratio (a normalised blur
    of the per-channel ratio's chromaticity, sigma ``chroma_sigma`` of the render side), so the
    fitted light's per-channel wiggles do not tint the photo in blotches. Returns
    ``(ratio R x R x 3 float32 in [0, max_ratio], 1 where not covered; confidence R x R
    float32 in [0, 1])``. Where the photo's render is dark (below ``dark`` times its mean
    luminance: the mouth socket, nostrils, deep shadows) the photo holds too little signal
    to relight and the model too little to trust: the confidence fades to 0."""
    import cv2

    if new.rgb.shape != old.rgb.shape:
        raise InputError("shading quotient", f"renders differ in shape: {new.rgb.shape} vs {old.rgb.shape}")
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    cov = new.coverage & old.coverage
    ratio = np.ones(new.rgb.shape, np.float32)
    confidence = np.zeros(cov.shape, np.float32)
    if not cov.any():
        return ratio, confidence
    lum_old, lum_new = old.rgb @ luma, new.rgb @ luma
    level = float(lum_old[cov].mean()) + 1e-6
    floor = 0.05 * level
    lum_ratio = lum_new / np.maximum(lum_old, floor)
    # Chromaticity change per pixel (1 = same colour), blurred over the covered pixels.
    chroma = (np.maximum(new.rgb, floor) / np.maximum(lum_new, floor)[..., None]) \
        / (np.maximum(old.rgb, floor) / np.maximum(lum_old, floor)[..., None])
    weight = cov.astype(np.float32)
    sigma = max(chroma_sigma * cov.shape[0], 0.5)
    num = cv2.GaussianBlur(np.where(cov[..., None], chroma, 0).astype(np.float32), (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    chroma = num / np.maximum(den, 1e-6)
    ratio[cov] = np.clip(lum_ratio[cov, None] * chroma[cov], 0.0, max_ratio)
    confidence[cov] = np.clip(lum_old[cov] / (dark * level), 0.0, 1.0)
    return ratio, confidence


def composite_quotient(photo: np.ndarray, ratio: np.ndarray, alpha: np.ndarray, crop_to_photo) -> np.ndarray:
    """``photo`` (``h x w x 3`` uint8, sRGB) relit by a crop-frame shading ``ratio`` (``R x R x 3``,
    :func:`shading_quotient`) faded in by ``alpha`` (``R x R``): in linear RGB,
    ``photo * (1 + alpha (ratio - 1))``. ``crop_to_photo`` as in :func:`composite`."""
    from facenormals3d.face.crop import warp_to_photo
    from facenormals3d.render.appearance import linear_to_srgb8, srgb8_to_linear

    shape = photo.shape[:2]
    r = warp_to_photo((ratio - 1.0).astype(np.float32), crop_to_photo, shape, order=1)
    a = warp_to_photo(alpha.astype(np.float32), crop_to_photo, shape, order=1)[..., None]
    return linear_to_srgb8(srgb8_to_linear(photo) * (1.0 + a * r))

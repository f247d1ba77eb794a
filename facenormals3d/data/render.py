"""Ray casting (open3d ``RaycastingScene``, CPU) and numpy shading of one face crop.

Only the crop's pixels are cast: one ray per pixel centre through the crop camera
(:class:`facenormals3d.data.geometry.Camera`). Rays have direction z = -1, so a hit's
ray parameter is its depth: the positive distance along the optical axis in mm.

Lighting model (linear RGB, per hit pixel)::

    diffuse  = albedo * shading
    shading  = E_env(n) * ao + sum_i I_i * c_i * wrap(n . l_i) * vis_i
    specular = spec_weight * (sum_i I_i * c_i * vis_i * pi * GGX(n, l_i, v) * (n . l_i)
                              + env_spec * F(n . v) * E_env(n))

``E_env`` is an order-2 spherical-harmonics irradiance written as ``a + b.n + n^T M n``
per channel; ``wrap`` is a per-channel wrapped Lambert (red light bleeds further into
the terminator, a cheap stand-in for subsurface scattering); ``vis_i`` comes from one
shadow ray per pixel and light (jittered inside the light's cone for soft area lights);
``ao`` is precomputed per vertex on the neutral mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.raster import barycentric, raycasting_scene, shadow_visibility


def _o3d():
    import open3d as o3d

    return o3d


def vertex_ambient_occlusion(vertices: np.ndarray, triangles: np.ndarray, n_rays: int = 48,
                             max_distance: float = 60.0, seed: int = 7) -> np.ndarray:
    """``N`` float32 fraction of cosine-weighted rays (up to ``max_distance`` mm) that escape."""
    from facenormals3d.data.geometry import vertex_normals

    o3d = _o3d()
    v = np.asarray(vertices, dtype=np.float32)
    n = vertex_normals(v, triangles)
    scene = raycasting_scene(v, triangles)
    rng = np.random.default_rng(seed)
    # Cosine-weighted directions around +z, rotated onto each normal with a tangent frame.
    u1, u2 = rng.random(n_rays), rng.random(n_rays)
    local = np.stack([np.sqrt(u1) * np.cos(2 * np.pi * u2), np.sqrt(u1) * np.sin(2 * np.pi * u2),
                      np.sqrt(1 - u1)], axis=1).astype(np.float32)
    helper = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1, 0, 0]], np.float32), np.array([[0, 1, 0]], np.float32))
    t1 = np.cross(n, helper)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-12)
    t2 = np.cross(n, t1)
    dirs = (local[None, :, :1] * t1[:, None] + local[None, :, 1:2] * t2[:, None] + local[None, :, 2:] * n[:, None])
    origins = np.broadcast_to((v + 0.3 * n)[:, None], dirs.shape)
    rays = np.concatenate([origins, dirs], axis=-1).reshape(-1, 6).astype(np.float32)
    hit = scene.test_occlusions(o3d.core.Tensor(rays), tfar=max_distance).numpy()
    return (1.0 - hit.reshape(len(v), n_rays).mean(axis=1)).astype(np.float32)


@dataclass
class Hits:
    """Where the crop's rays met the mesh."""

    hit: np.ndarray
    """``H x W`` bool, a surface was hit."""
    depth: np.ndarray
    """``H x W`` float32 depth in mm (distance along the optical axis), 0 where nothing was hit."""
    index: np.ndarray
    """``P`` int64 flat pixel index of each hit (row-major), P = hit.sum()."""
    triangle: np.ndarray
    """``P`` int64 triangle hit."""
    bary: np.ndarray
    """``P x 3`` float32 barycentric weights of the triangle's corners."""
    points: np.ndarray
    """``P x 3`` float32 camera-frame hit points (mm)."""
    view: np.ndarray
    """``P x 3`` float32 unit vectors from the surface to the camera."""
    geo_normal: np.ndarray
    """``P x 3`` float32 unit triangle normals facing the camera."""
    vertex_normals: np.ndarray | None = None
    """``N x 3`` unit vertex normals of the mesh (set by the caller, camera frame)."""
    corners: np.ndarray | None = None
    """``P x 3`` vertex indices of each hit's triangle (set by the caller)."""


def cast(scene, directions: np.ndarray) -> Hits:
    """Cast one ray per pixel from the camera centre along ``H x W x 3`` directions (z = -1).

    The engine's own hit handling (hits only, one thread, triangle normals for the view) on
    :func:`facenormals3d.raster.raycasting_scene`; weights by :func:`~facenormals3d.raster.barycentric`.
    """
    o3d = _o3d()
    h, w, _ = directions.shape
    d = directions.reshape(-1, 3)
    rays = np.zeros((len(d), 6), dtype=np.float32)
    rays[:, 3:] = d
    ans = scene.cast_rays(o3d.core.Tensor(rays), nthreads=1)
    t = ans["t_hit"].numpy()
    hit = np.isfinite(t)
    index = np.flatnonzero(hit)
    # np.take on rows is several times faster than fancy indexing here (43k of 65k rows).
    bary = barycentric(np.take(ans["primitive_uvs"].numpy(), index, axis=0))
    dh = np.take(d, index, axis=0).astype(np.float32, copy=False)
    th = t[index]
    points = dh * th[:, None]
    view = dh * (-1.0 / np.sqrt(np.einsum("ij,ij->i", dh, dh)))[:, None]
    ng = np.take(ans["primitive_normals"].numpy(), index, axis=0)
    ng *= np.where(np.einsum("ij,ij->i", ng, view) < 0, np.float32(-1), np.float32(1))[:, None]
    depth = np.zeros(h * w, dtype=np.float32)
    depth[index] = th
    return Hits(hit=hit.reshape(h, w), depth=depth.reshape(h, w), index=index,
                triangle=ans["primitive_ids"].numpy()[index].astype(np.int64), bary=bary,
                points=points.astype(np.float32, copy=False), view=view.astype(np.float32, copy=False),
                geo_normal=ng.astype(np.float32, copy=False))


#: Lighting set-ups and how often they are drawn.
LIGHTING_KINDS = ("studio", "sun", "overcast", "neon", "window", "hdr")
LIGHTING_P = (0.4, 0.14, 0.1, 0.1, 0.13, 0.13)


def _light(rng: np.random.Generator, az_deg: float, el_deg: float, color, intensity: float, cone: float) -> dict:
    az, el = np.radians(az_deg), np.radians(el_deg)
    return {"direction": [float(np.sin(az) * np.cos(el)), float(np.sin(el)), float(np.cos(az) * np.cos(el))],
            "color": [float(c) for c in color], "intensity": float(intensity), "cone_deg": float(cone)}


def _environment(rng: np.random.Generator, ambient: float, tint: np.ndarray, contrast: float) -> dict:
    """SH-style environment ``a + b.n + n^T M n`` with a mostly-up bright direction."""
    b_dir = rng.normal(size=3)
    b_dir[1] = abs(b_dir[1]) * 0.7 + 0.3  # sky above more often than not
    b = b_dir / np.linalg.norm(b_dir) * rng.uniform(0.0, 0.8) * contrast
    m = rng.normal(0, 0.12 * contrast, (3, 3))
    m = 0.5 * (m + m.T)
    m -= np.eye(3) * np.trace(m) / 3
    return {"a": (ambient * tint).tolist(), "b": (ambient * np.outer(tint, b)).tolist(),
            "m": (ambient * tint[:, None, None] * m[None]).tolist()}


def sample_lighting(rng: np.random.Generator) -> dict:
    """Random environment + lights (camera frame), JSON-friendly.

    Kinds: ``studio`` (0-3 soft or hard lights, the original set-up, 15 % low-key),
    ``sun`` (one hard, bright, warm light and a blue sky fill), ``overcast`` (a bright
    environment from above, no lights), ``neon`` (two saturated coloured lights from
    opposite sides), ``window`` (one large soft side light, dim room), ``hdr`` (a
    high-contrast environment, bright sky against dark ground, plus one light).
    """
    kind = str(rng.choice(LIGHTING_KINDS, p=LIGHTING_P))
    low_key = bool(kind == "studio" and rng.random() < 0.15)
    tint = np.exp(rng.normal(0, [0.08, 0.03, 0.1]))
    lights = []
    if kind == "studio":
        env = _environment(rng, 0.1 if low_key else float(rng.uniform(0.4, 1.2)), tint, 1.0)
        n_lights = 1 if low_key else int(rng.choice(4, p=[0.2, 0.4, 0.28, 0.12]))
        for _ in range(n_lights):
            az = rng.uniform(60, 100) * rng.choice([-1, 1]) if (low_key or rng.random() < 0.2) \
                else rng.uniform(-110, 110)
            temp = rng.normal(0, 0.12)
            color = np.exp(np.array([temp, 0.0, -temp]) + rng.normal(0, 0.03, 3))
            lights.append(_light(rng, az, rng.uniform(-25, 65), color,
                                 rng.uniform(2.0, 5.0) if low_key else rng.uniform(0.4, 3.0),
                                 0.0 if rng.random() < 0.4 else rng.uniform(2.0, 15.0)))
    elif kind == "sun":
        env = _environment(rng, float(rng.uniform(0.15, 0.5)), tint * np.array([0.8, 0.95, 1.3]), 1.0)
        lights.append(_light(rng, rng.uniform(-120, 120), rng.uniform(10, 75), [1.15, 1.0, 0.82],
                             rng.uniform(3.0, 7.0), 0.3))
    elif kind == "overcast":
        env = _environment(rng, float(rng.uniform(0.8, 1.6)), tint, 1.3)
    elif kind == "neon":
        env = _environment(rng, float(rng.uniform(0.05, 0.3)), tint, 1.0)
        hue = rng.uniform(0, 2 * np.pi)
        for side, shift in ((-1, 0.0), (1, rng.uniform(2.0, 4.2))):
            color = 0.15 + np.clip(np.cos(hue + shift + np.array([0.0, 2.09, 4.19])), 0, None) * 1.6
            lights.append(_light(rng, side * rng.uniform(40, 110), rng.uniform(-20, 40), color,
                                 rng.uniform(1.0, 3.5), rng.uniform(3.0, 20.0)))
    elif kind == "window":
        env = _environment(rng, float(rng.uniform(0.1, 0.4)), tint, 1.0)
        lights.append(_light(rng, rng.choice([-1, 1]) * rng.uniform(35, 95), rng.uniform(-5, 30),
                             np.exp(rng.normal(0, 0.05, 3)) * [1.0, 1.0, 1.08], rng.uniform(1.5, 4.0), 25.0))
    else:  # hdr
        env = _environment(rng, float(rng.uniform(0.4, 1.0)), tint, 2.2)
        lights.append(_light(rng, rng.uniform(-110, 110), rng.uniform(0, 70), np.exp(rng.normal(0, 0.1, 3)),
                             rng.uniform(1.0, 4.0), rng.uniform(0.5, 6.0)))
    return {"kind": kind, "env": env, "lights": lights, "low_key": low_key,
            "roughness": float(rng.uniform(0.35, 0.7)), "specular": float(rng.uniform(0.1, 0.7)),
            "sss_wrap": float(rng.uniform(0.0, 1.0))}


def env_irradiance(env: dict, n: np.ndarray) -> np.ndarray:
    """``P x 3`` irradiance ``a + b.n + n^T M n`` per channel (clipped at a small floor)."""
    a, b, m = (np.asarray(env[k], dtype=np.float32) for k in ("a", "b", "m"))
    # n^T M_c n through the six quadratic monomials: one small matrix product.
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    mono = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)
    coef = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]], axis=0)
    e = a[None] + n @ b.T + mono @ coef
    return np.maximum(e, 0.05 * a[None]).astype(np.float32)


def _cone_jitter(rng: np.random.Generator, direction: np.ndarray, cone_deg: float, count: int) -> np.ndarray:
    """``count x 3`` float32 unit directions uniform-ish inside a cone around ``direction``."""
    d = (direction / np.linalg.norm(direction)).astype(np.float32)
    if cone_deg <= 0:
        return np.broadcast_to(d, (count, 3))
    helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    t1 = np.cross(d, helper)
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(d, t1)
    r = np.float32(np.tan(np.radians(cone_deg))) * np.sqrt(rng.random(count)).astype(np.float32)
    phi = (rng.random(count) * (2 * np.pi)).astype(np.float32)
    out = d[None] + (r * np.cos(phi))[:, None] * t1.astype(np.float32) + (r * np.sin(phi))[:, None] * t2.astype(np.float32)
    return out / np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]


def _soften(values: np.ndarray, known: np.ndarray, hits: Hits, sigma: float) -> np.ndarray:
    """Blur per-hit ``values`` over the image grid, averaging only ``known`` ones (``P`` bool).

    A normalised convolution: soft shadow edges, and values filled in where none was
    computed. Returns ``P`` float32.
    """
    from facenormals3d.data.blur import gaussian_blur

    h, w = hits.hit.shape
    grid = np.zeros((h * w, 2), dtype=np.float32)
    grid[hits.index, 0] = values * known
    grid[hits.index, 1] = known
    out = gaussian_blur(grid.reshape(h, w, 2), sigma, truncate=2.5).reshape(-1, 2)
    num, den = np.take(out, hits.index, axis=0).T
    return (num / np.maximum(den, 1e-6)).astype(np.float32)


def shade(rng: np.random.Generator, scene, hits: Hits, normals: np.ndarray, spec_weight: np.ndarray,
          ao: np.ndarray, lighting: dict, shadows: bool = True,
          roughness: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse shading ``P x 3`` (multiply by albedo) and specular radiance ``P x 3``.

    Args:
        normals: ``P x 3`` unit shading normals (with detail), camera frame.
        spec_weight: ``P`` per-pixel specular strength (lips, eyes, T-zone shine).
        ao: ``P`` ambient occlusion in [0, 1].
        lighting: from :func:`sample_lighting`.
        shadows: cast shadow rays (off: every light is unoccluded).
        roughness: ``P`` per-pixel GGX roughness (default: ``lighting["roughness"]``
            everywhere). Below 0.2 (wet eyes, lips) the environment's bright direction
            also shows as a sharp reflection (a catch-light).
    """
    v = hits.view
    nv = np.clip(np.einsum("ij,ij->i", normals, v), 1e-3, 1.0)
    e_env = env_irradiance(lighting["env"], normals)
    shading = e_env * ao[:, None]
    fresnel_v = 0.028 + 0.972 * (1 - nv) ** 5
    rough = np.full(len(nv), lighting["roughness"], np.float32) if roughness is None \
        else np.asarray(roughness, dtype=np.float32)
    # Glossy reflection of the (low-frequency) environment, approximated by its irradiance
    # around the normal: at this blur the reflected and normal directions see the same sky.
    spec = (0.5 * (1 - rough) * fresnel_v)[:, None] * e_env
    wet = np.flatnonzero(rough < 0.2)
    if len(wet):
        b = np.asarray(lighting["env"]["b"], dtype=np.float32)
        bright = b.sum(axis=0)
        if np.linalg.norm(bright) > 1e-6:
            bright /= np.linalg.norm(bright)
            nw, vw = normals[wet], v[wet]
            r = 2 * np.einsum("ij,ij->i", nw, vw)[:, None] * nw - vw
            lobe = np.exp((r @ bright - 1.0) / (0.01 + rough[wet] ** 2))
            level = np.asarray(lighting["env"]["a"], np.float32) + np.linalg.norm(b, axis=1)
            spec[wet] += (3.0 * fresnel_v[wet] * lobe)[:, None] * level[None]
    alpha2 = rough ** 4
    wrap = lighting["sss_wrap"] * np.array([0.35, 0.15, 0.1], dtype=np.float32)
    h_img, w_img = hits.hit.shape
    checker = np.take((np.add.outer(np.arange(h_img), np.arange(w_img)) % 2 == 0).ravel(), hits.index)
    for light in lighting["lights"]:
        ld = np.asarray(light["direction"], dtype=np.float64)
        ld = (ld / np.linalg.norm(ld)).astype(np.float32)
        radiance = (light["intensity"] * np.asarray(light["color"], dtype=np.float32)).astype(np.float32)
        nl = normals @ ld
        vis = np.ones(len(nl), dtype=np.float32)
        # Shadow rays only where both the shading normal and the facet face the light: the
        # wrap-around zone and the terminator (n.l ~ 0) get so little light that their
        # visibility does not matter, and their grazing rays would hit their own facets.
        test = (nl > 0) & (hits.geo_normal @ ld > 0.02)
        if shadows and test.any():
            # Half the pixels (a checkerboard) cast rays; the normalised blur fills the rest.
            traced = test & checker
            idx = np.flatnonzero(traced)
            dirs = _cone_jitter(rng, ld, light["cone_deg"], len(idx))
            vis[idx] = shadow_visibility(scene, np.take(hits.points, idx, axis=0),
                                         np.take(hits.geo_normal, idx, axis=0), dirs, nthreads=1)
            vis = np.where(test, _soften(vis, traced | ~test, hits, 0.7 + 0.12 * light["cone_deg"]), 1.0)
        # Wrapped Lambert per channel: (n.l + w) / (1 + w), clipped at 0.
        wrapped = np.maximum(nl[:, None] * (1 / (1 + wrap))[None] + (wrap / (1 + wrap))[None], 0)
        shading += wrapped * (vis[:, None] * radiance[None])
        h = ld[None] + v
        h /= np.sqrt(np.einsum("ij,ij->i", h, h))[:, None]
        nh = np.clip(np.einsum("ij,ij->i", normals, h), 0, 1)
        lh = np.clip(h @ ld, 0.05, 1)
        d = alpha2 / (np.float32(np.pi) * (nh * nh * (alpha2 - 1) + 1) ** 2)
        f = 0.028 + 0.972 * (1 - lh) ** 5
        s = np.float32(np.pi) * d * f * np.maximum(nl, 0) * vis / (4 * lh * lh)
        spec += s[:, None] * radiance[None]
    spec *= (lighting["specular"] * spec_weight)[:, None]
    return shading.astype(np.float32), spec.astype(np.float32)


#: Diffusion of light under the skin per channel (mm): red scatters furthest.
SSS_RADIUS_MM = (2.2, 0.9, 0.5)
#: Share of each channel's shading that is scattered (the rest stays local).
SSS_MIX = (0.55, 0.35, 0.25)


def subsurface(shading: np.ndarray, skin: np.ndarray, hits: Hits, mm_per_px: float,
               strength: float = 1.0) -> np.ndarray:
    """Soften the diffuse shading of skin like light diffusing under it (``P x 3`` float32).

    Per channel, ``(1 - m_c) E + m_c blur_c(E)`` with a Gaussian of :data:`SSS_RADIUS_MM`
    (converted to crop pixels with ``mm_per_px``) over skin pixels only (``skin``: ``P``
    bool); ``m_c = strength * SSS_MIX[c]``. Shadow edges and fine bumps blur most in red,
    as on real skin. Non-skin pixels are unchanged.
    """
    out = shading.copy()
    if not skin.any() or strength <= 0:
        return out
    for c in range(3):
        sigma = SSS_RADIUS_MM[c] / max(mm_per_px, 1e-3)
        if sigma < 0.3:
            continue
        blurred = _soften(shading[:, c], skin, hits, sigma)
        m = np.float32(min(1.0, strength * SSS_MIX[c]))
        out[:, c] = np.where(skin, (1 - m) * shading[:, c] + m * blurred, shading[:, c])
    return out

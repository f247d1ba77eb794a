"""Glasses for the synthetic faces: a 3-D frame and lenses placed on the head, drawn over the render.

The glasses are built in the face model's frame (mm; x toward the subject's left, y up,
z forward) from the sample's own deformed head: the lenses sit a vertex distance in front of
the eyes, tilted (pantoscopic tilt) and wrapped; the bridge passes in front of the nose; the
arms run back along the temples to the ears, following the head's width. The camera then
sees them in perspective: on a profile the far lens hides behind the nose and the arms
show along the side of the head. Visibility is a depth test against the head's depth map
(frames point by point, lenses pixel by pixel through their planes). A hard key light casts
the frame's shadow onto the skin (rays from the frame along the light, through the head's
ray-casting scene).

Ground truth: frames and clear lenses keep the skin's normals and the face mask, as hair
does (the network learns to see through them); the dark lenses of sunglasses hide the eyes
and leave the mask (:attr:`GlassesLayer.hides`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.data.effects import capsule_coverage
from facenormals3d.data.geometry import Camera
from facenormals3d.data.render import env_irradiance
from facenormals3d.raster import cast

#: Frame materials and how often they are drawn (rimless: lenses, bridge and arms only).
KINDS = ("plastic", "metal", "rimless")
KINDS_P = (0.5, 0.35, 0.15)
#: Metal tints (linear RGB albedo): gold, silver, gunmetal, black.
METALS = ((0.9, 0.65, 0.3), (0.85, 0.85, 0.85), (0.35, 0.35, 0.38), (0.05, 0.05, 0.05))
_RIM_POINTS = 48


@dataclass(frozen=True)
class Lens:
    """One lens: a superellipse ``|u/a|^n + |v/b|^n <= 1`` in its plane (model frame, mm)."""

    centre: np.ndarray
    """3 float64."""
    u: np.ndarray
    """3 float64 unit axis toward the subject's left."""
    v: np.ndarray
    """3 float64 unit axis up the lens."""
    a: float
    b: float
    n: float


@dataclass(frozen=True)
class GlassesShape:
    """The frame's centre lines (model frame, mm): each polyline ``K x 3`` float64."""

    lenses: tuple[Lens, Lens]
    rims: tuple[np.ndarray, ...]
    """Closed rims (first point repeated at the end); empty when rimless."""
    rim_mm: np.ndarray
    """``K`` the rims' thickness at each rim point (mm): thicker along the top for browline frames."""
    bridge: np.ndarray
    arms: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class GlassesLayer:
    """What the glasses did to the image, ``S x S`` float32 maps in [0, 1]."""

    hides: np.ndarray
    """How much of each pixel the glasses hide from the face's ground truth (dark lenses)."""
    frame: np.ndarray
    """Visible frame coverage (frames keep the skin's ground truth under them)."""
    lens: np.ndarray
    """Visible lens coverage (clear or dark)."""
    shadow: np.ndarray
    """The frame's cast shadow on the skin (how much of the key light it takes away)."""


def sample_glasses(rng: np.random.Generator) -> dict:
    """A random pair of glasses (JSON-friendly): shape, placement, material, lenses."""
    kind = str(rng.choice(KINDS, p=KINDS_P))
    sun = bool(rng.random() < 0.2)
    if kind == "metal":
        albedo = np.asarray(METALS[int(rng.integers(len(METALS)))]) * rng.uniform(0.8, 1.0)
    else:
        albedo = rng.random(3) ** 2.2 * rng.uniform(0.03, 0.5)
    return {
        "kind": kind, "sun": sun,
        "half_width_mm": float(rng.uniform(21, 28)),
        "aspect": float(rng.uniform(0.55, 0.9)),
        "squareness": float(rng.uniform(2.0, 3.2) if kind == "metal" else rng.uniform(2.0, 5.0)),
        "bridge_mm": float(rng.uniform(7.5, 11.0)),
        "vertex_mm": float(rng.uniform(11, 16)),
        "raise_mm": float(rng.uniform(-1, 4)),
        "tilt_deg": float(rng.uniform(4, 12)),
        "wrap_deg": float(rng.uniform(0, 8)),
        "rim_mm": float(rng.uniform(0.7, 1.4) if kind != "plastic" else rng.uniform(2.5, 5.0)),
        "browline": float(rng.uniform(0.2, 1.2) if kind == "plastic" and rng.random() < 0.5 else 0.0),
        "arm_mm": float(rng.uniform(1.0, 1.6) if kind != "plastic" else rng.uniform(2.5, 4.5)),
        "albedo": [float(c) for c in albedo],
        "gloss": float(rng.uniform(0.6, 1.5) if kind == "metal" else rng.uniform(0.1, 0.7)),
        "tint": [float(c) for c in np.exp(rng.normal(0, 0.08, 3))
                 * (rng.uniform(0.03, 0.15) if sun else rng.uniform(0.85, 1.0))],
        # Sunglasses: dark, a third of them mirrored; clear lenses reflect a little.
        "reflect": float((rng.uniform(0.4, 1.0) if rng.random() < 0.33 else rng.uniform(0.03, 0.2)) if sun
                         else rng.uniform(0.02, 0.25)),
        "streak": float(rng.uniform(-1, 1)),
    }


def _rotation_xy(tilt: float, yaw: float) -> np.ndarray:
    """Rotation about x by ``tilt`` then about y by ``yaw`` (radians), 3 x 3."""
    ct, st, cy, sy = np.cos(tilt), np.sin(tilt), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return ry @ rx


def _rim(lens: Lens, angles: np.ndarray) -> np.ndarray:
    """Points ``K x 3`` of the lens outline at parameter ``angles`` (radians, 0 = +u)."""
    c, s = np.cos(angles), np.sin(angles)
    e = 2.0 / lens.n
    lu = lens.a * np.sign(c) * np.abs(c) ** e
    lv = lens.b * np.sign(s) * np.abs(s) ** e
    return lens.centre + lu[:, None] * lens.u + lv[:, None] * lens.v


def _clearance(vertices: np.ndarray, points: np.ndarray, thickness_mm: float) -> float:
    """How far (mm, >= 0) ``K x 3`` model-frame points must move forward (+z) to lie a frame's
    thickness plus 1 mm in front of the head's surface straight behind them."""
    need = 0.0
    front = vertices[vertices[:, 2] > 0]
    for p in points:
        near = front[(np.abs(front[:, 0] - p[0]) < 3) & (np.abs(front[:, 1] - p[1]) < 3)]
        if len(near):
            need = max(need, float(near[:, 2].max()) + thickness_mm + 1.0 - p[2])
    return need


def build_glasses(style: dict, vertices: np.ndarray, landmarks: np.ndarray) -> GlassesShape:
    """Place the glasses ``style`` on one head.

    Args:
        style: from :func:`sample_glasses`.
        vertices: ``N x 3`` the deformed head in the model frame (mm).
        landmarks: 68 vertex indices (iBUG order) into ``vertices``.
    """
    lm = vertices[landmarks]
    eyes = (lm[36:42].mean(axis=0), lm[42:48].mean(axis=0))  # subject's right (-x), left (+x)
    mid = 0.5 * (eyes[0] + eyes[1])
    a = style["half_width_mm"]
    b = a * style["aspect"]
    gap = style["bridge_mm"]
    lenses = []
    for side in (-1, 1):
        rot = _rotation_xy(np.radians(style["tilt_deg"]), side * np.radians(style["wrap_deg"]))
        centre = np.array([side * (gap + a), mid[1] + style["raise_mm"], mid[2] + style["vertex_mm"]])
        lenses.append(Lens(centre=centre, u=rot[:, 0], v=rot[:, 1], a=a, b=b, n=style["squareness"]))
    angles = np.linspace(0, 2 * np.pi, _RIM_POINTS + 1)
    # Large lenses would cut into the brows or cheeks: move the pair forward until every rim
    # point clears the face in front of it.
    rim_mm = style["rim_mm"] * (1.0 + style["browline"] * np.clip(np.sin(angles), 0, None))
    push = max(_clearance(vertices, _rim(lens, angles), float(rim_mm.max())) for lens in lenses)
    if push > 0:
        lenses = [Lens(centre=lens.centre + np.array([0.0, 0.0, push]), u=lens.u, v=lens.v, a=a, b=b, n=lens.n)
                  for lens in lenses]
    rims = () if style["kind"] == "rimless" else tuple(_rim(lens, angles) for lens in lenses)
    # Bridge: from the right lens's inner top to the left lens's, arching over the nose and
    # passing in front of it.
    ends = (_rim(lenses[0], np.array([np.radians(35)]))[0], _rim(lenses[1], np.array([np.radians(145)]))[0])
    top = 0.5 * (ends[0] + ends[1])
    near = (np.abs(vertices[:, 0]) < 4) & (np.abs(vertices[:, 1] - top[1]) < 4)
    nose_z = float(vertices[near, 2].max()) if near.any() else top[2]
    control = np.array([0.0, top[1] + 2.0, max(top[2], nose_z + style["rim_mm"] + 1.0)])
    t = np.linspace(0, 1, 9)[:, None]
    bridge = (1 - t) ** 2 * ends[0] + 2 * t * (1 - t) * control + t ** 2 * ends[1]
    # Arms: from each lens's outer edge back along the temple into the ear's root, hugging the
    # head in front of the ear (the ear itself sticks out further and hides the arm's end).
    ear_z = float(0.5 * (lm[0, 2] + lm[16, 2]))
    arms = []
    for lens, side in zip(lenses, (-1, 1)):
        hinge = _rim(lens, np.array([0.0 if side > 0 else np.pi]))[0]
        z = np.linspace(hinge[2] - 2.0, ear_z - 30.0, 14)
        y = np.linspace(hinge[1], mid[1] - 3.0, len(z))
        x = np.linspace(abs(hinge[0]) + 1.0, abs(hinge[0]) + 6.0, len(z))
        for k in np.flatnonzero(z > ear_z - 10.0):
            band = (side * vertices[:, 0] > 0) & (np.abs(vertices[:, 1] - y[k]) < 6) & (np.abs(vertices[:, 2] - z[k]) < 4)
            if band.any():
                x[k] = max(x[k], float(np.abs(vertices[band, 0]).max()) + 0.5 * style["arm_mm"] + 1.0)
        x = np.maximum.accumulate(x)  # the arm never bends back into the head
        arms.append(np.concatenate([hinge[None], np.stack([side * x, y, z], axis=1)]))
    return GlassesShape(lenses=(lenses[0], lenses[1]), rims=rims, rim_mm=rim_mm, bridge=bridge,
                        arms=(arms[0], arms[1]))


def _key_light(lighting: dict) -> dict | None:
    """The brightest light, if any."""
    if not lighting["lights"]:
        return None
    return max(lighting["lights"], key=lambda light: light["intensity"] * max(light["color"]))


def _visible(points_cam: np.ndarray, uv: np.ndarray, depth: np.ndarray, tolerance_mm: float = 1.5) -> np.ndarray:
    """``K`` bool: the camera-frame points lie inside the crop and in front of the head."""
    h, w = depth.shape
    px = np.floor(uv).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    head = depth[np.clip(px[:, 1], 0, h - 1), np.clip(px[:, 0], 0, w - 1)]
    return inside & (-points_cam[:, 2] > 0) & ((head <= 0) | (-points_cam[:, 2] < head + tolerance_mm))


def _tube_radiance(tangent: np.ndarray, style: dict, lighting: dict) -> tuple[np.ndarray, np.ndarray]:
    """Body and highlight radiance (``3`` each) of a frame segment along camera-frame unit
    ``tangent``: a glossy tube lit by the environment (facing the camera) and the lights."""
    albedo = np.asarray(style["albedo"], dtype=np.float32)
    view = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    normal = view - float(view @ tangent) * tangent
    normal = (normal / max(float(np.linalg.norm(normal)), 1e-6)).astype(np.float32)
    irradiance = env_irradiance(lighting["env"], normal[None])[0]
    highlight = np.zeros(3, dtype=np.float32)
    for light in lighting["lights"]:
        ld = np.asarray(light["direction"], dtype=np.float32)
        ld /= np.linalg.norm(ld)
        radiance = light["intensity"] * np.asarray(light["color"], dtype=np.float32)
        irradiance = irradiance + radiance * 0.7 * float(np.sqrt(max(1.0 - float(tangent @ ld) ** 2, 0.0)))
        h = (ld + view) / max(float(np.linalg.norm(ld + view)), 1e-6)
        highlight += radiance * style["gloss"] * float(max(1.0 - float(tangent @ h) ** 2, 0.0)) ** 40
    metal = style["kind"] == "metal"
    return albedo * irradiance, highlight * (albedo if metal else 0.5)


def _draw_polyline(points_cam: np.ndarray, cam: Camera, depth: np.ndarray, thickness_mm, style: dict,
                   lighting: dict, cover: np.ndarray, colour: np.ndarray) -> None:
    """Draw one frame polyline (``K x 3`` camera frame; ``thickness_mm`` a number or ``K``) as
    shaded capsules into ``cover`` (``S x S``) and ``colour`` (``S x S x 3``), in place;
    hidden segments are skipped."""
    radius_mm = 0.5 * np.broadcast_to(np.asarray(thickness_mm, dtype=np.float64), len(points_cam))
    uv = cam.project(points_cam)
    seen = _visible(points_cam, uv, depth)
    for k in range(len(points_cam) - 1):
        if not (seen[k] and seen[k + 1]):
            continue
        seg = points_cam[k + 1] - points_cam[k]
        tangent = (seg / max(float(np.linalg.norm(seg)), 1e-6)).astype(np.float32)
        body, highlight = _tube_radiance(tangent, style, lighting)
        dist = -0.5 * (points_cam[k, 2] + points_cam[k + 1, 2])
        r_px = max(0.5 * (radius_mm[k] + radius_mm[k + 1]) * cam.focal / dist, 0.35)
        drawn = capsule_coverage(cover.shape, uv[k], uv[k + 1], r_px)
        if drawn is None:
            continue
        box, cov = drawn
        # The highlight: a thin line on the side of the tube that faces up in the image.
        side = np.array([-(uv[k + 1] - uv[k])[1], (uv[k + 1] - uv[k])[0]])
        side = side / max(float(np.linalg.norm(side)), 1e-6)
        side = side if side[1] < 0 else -side
        _, shine = capsule_coverage(cover.shape, uv[k] + side * 0.45 * r_px, uv[k + 1] + side * 0.45 * r_px,
                                    0.3 * r_px, box=box)
        new = body[None, None] + shine[..., None] * highlight
        take = cov > cover[box]
        colour[box] = np.where(take[..., None], new, colour[box])
        cover[box] = np.maximum(cover[box], cov)


def _draw_lens(lens: Lens, cam: Camera, depth: np.ndarray, style: dict, level: float,
               img: np.ndarray) -> np.ndarray:
    """Tint and reflect through one lens (in place on ``img``); returns its visible coverage ``S x S``."""
    size = depth.shape[0]
    centre = cam.to_camera(lens.centre[None])[0]
    u, v = lens.u @ cam.rotation.T, lens.v @ cam.rotation.T
    normal = np.cross(u, v)
    rays = cam.ray_directions().reshape(-1, 3).astype(np.float64)
    dn = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(dn) > 1e-3, (centre @ normal) / dn, -1.0)
    p = rays * t[:, None] - centre
    lu, lv = (p @ u) / lens.a, (p @ v) / lens.b
    f = (np.abs(lu) ** lens.n + np.abs(lv) ** lens.n) ** (1.0 / lens.n) - 1.0
    mm_per_px = np.maximum(t, 1.0) / cam.focal
    cov = np.clip(0.5 - f * lens.a / mm_per_px, 0.0, 1.0)
    head = depth.reshape(-1)
    cov = np.where((t > 0) & ((head <= 0) | (t < head)), cov, 0.0).reshape(size, size).astype(np.float32)
    if not cov.any():
        return cov
    # Reflected sky (bright toward the top of the lens, stronger at grazing angles) and a streak.
    fresnel = 1.0 + 3.0 * (1.0 - np.clip(np.abs(dn) / np.linalg.norm(rays, axis=1), 0, 1)) ** 5
    glow = (np.clip(0.6 - 0.5 * lv, 0, 1) + 0.8 * np.exp(-((lu + style["streak"] * lv) / 0.15) ** 2)) * fresnel
    glow = glow.reshape(size, size).astype(np.float32)
    inside = cov[..., None]
    img *= 1 - inside * (1 - np.asarray(style["tint"], dtype=np.float32))
    img += inside * (style["reflect"] * level * glow[..., None])
    return cov


def _shadow(shape: GlassesShape, style: dict, cam: Camera, depth: np.ndarray, scene, lighting: dict) -> np.ndarray:
    """``S x S`` share of the key light the frame takes away from the skin (0 without a hard key light)."""
    out = np.zeros(depth.shape, dtype=np.float32)
    key = _key_light(lighting)
    if key is None or key["cone_deg"] > 10.0:
        return out
    ld = np.asarray(key["direction"], dtype=np.float64)
    ld /= np.linalg.norm(ld)
    ambient = float(np.mean(lighting["env"]["a"]))
    strength = 0.8 * key["intensity"] / (key["intensity"] + ambient + 0.3)
    for line, radius in [(r, style["rim_mm"]) for r in shape.rims] + [(shape.bridge, style["rim_mm"])] \
            + [(arm, style["arm_mm"]) for arm in shape.arms]:
        p = cam.to_camera(line)
        rays = np.concatenate([p, np.broadcast_to(-ld, p.shape)], axis=1).astype(np.float32)
        t, _, _ = cast(scene, rays)
        q = p - ld * np.where(np.isfinite(t), t, 0.0)[:, None]
        uv = cam.project(q)
        ok = np.isfinite(t) & _visible(q, uv, depth, tolerance_mm=2.0)
        for k in range(len(p) - 1):
            if ok[k] and ok[k + 1] and np.linalg.norm(q[k + 1] - q[k]) < 12.0:
                blur_mm = 0.5 * radius + float(t[k]) * np.tan(np.radians(key["cone_deg"]))
                r_px = max(blur_mm * cam.focal / -q[k, 2], 0.5)
                drawn = capsule_coverage(out.shape, uv[k], uv[k + 1], r_px)
                if drawn is not None:
                    np.maximum(out[drawn[0]], drawn[1] * strength, out=out[drawn[0]])
    return out * (depth > 0)


def draw_glasses(style: dict, shape: GlassesShape, cam: Camera, depth: np.ndarray, scene, lighting: dict,
                 img: np.ndarray) -> GlassesLayer:
    """Draw the glasses into ``img`` (``S x S x 3`` linear, in place).

    Args:
        style: from :func:`sample_glasses`; shape: :func:`build_glasses` on this head.
        cam: the render camera; depth: ``S x S`` the head's depth (mm, 0 = background).
        scene: the head's ray-casting scene (camera frame), for the cast shadow.
        lighting: the render's lighting in the image's exposure (camera frame).
    """
    level = float(np.percentile(img, 90))
    shadow = _shadow(shape, style, cam, depth, scene, lighting)
    img *= 1.0 - shadow[..., None]
    lens = np.maximum(*(_draw_lens(lens, cam, depth, style, level, img) for lens in shape.lenses))
    cover = np.zeros(depth.shape, dtype=np.float32)
    colour = np.zeros(depth.shape + (3,), dtype=np.float32)
    for rim in shape.rims:
        _draw_polyline(cam.to_camera(rim), cam, depth, shape.rim_mm, style, lighting, cover, colour)
    _draw_polyline(cam.to_camera(shape.bridge), cam, depth, style["rim_mm"], style, lighting, cover, colour)
    for arm in shape.arms:
        _draw_polyline(cam.to_camera(arm), cam, depth, style["arm_mm"], style, lighting, cover, colour)
    img += cover[..., None] * (colour - img)
    hides = lens * (1.0 - cover) if style["sun"] else np.zeros_like(lens)
    return GlassesLayer(hides=hides.astype(np.float32), frame=cover, lens=lens, shadow=shadow)

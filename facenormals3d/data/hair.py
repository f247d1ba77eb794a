"""Hair as alpha layers with their own shading: scalp hair (with volume and long hair),
fringes, beards, moustaches, eyebrow strands and eyelashes.

Hair is drawn in image space over the rendered head, as a coverage ``alpha`` (the
fraction of a pixel that strands hide) and the hair's own linear radiance. Strands follow
a flow field: scalp hair and fringes radiate from a crown point above the forehead;
beards and moustaches run down the face; eyebrow hairs slant outward and up. Along a
strand the coverage is constant, across strands it follows a random 1-D profile of
several octaves, so strands show as fine parallel streaks with gaps.

Ground truth under hair (the one place this is decided)
    The normal map keeps the **skin's** normals under hair, and the face mask keeps
    those pixels: the network is asked for the face surface behind the hair, which is
    what the mesh needs. The sample's ``hair`` map (``S x S`` float in [0, 1], this
    module's ``alpha``) says how much of each pixel hair hides, so training can
    down-weight those pixels (``TrainConfig.w_hair``) and evaluation can score them apart.

Shading (linear RGB, per hair pixel): environment irradiance at the hair mass's normal,
Kajiya-Kay diffuse ``sin(T, L)`` and two specular lobes (a white primary and a tinted,
broader secondary) around the strand tangent ``T``; gaps between strands are darker (a
stand-in for self-shadowing inside the hair volume). No cast shadows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenormals3d.data import textures as tx
from facenormals3d.data.albedo import BROW_SHADE, REGIONS, scalp_weight
from facenormals3d.data.blur import gaussian_blur
from facenormals3d.data.ict import PART_FACE, PART_FACE_OUTER, PART_HEAD
from facenormals3d.data.render import env_irradiance

#: Scalp styles and how often they are drawn (for a non-bald appearance).
STYLES = ("short", "medium", "long")
STYLE_P = (0.45, 0.25, 0.30)


@dataclass
class HairLayer:
    """Hair over the whole crop (``S`` = crop side)."""

    alpha: np.ndarray
    """``S x S`` float32 coverage in [0, 1]."""
    radiance: np.ndarray
    """``S x S x 3`` float32 linear radiance of the hair (meaningful where alpha > 0)."""


def sample_hair(rng: np.random.Generator, app: dict) -> dict:
    """Random hair style of one person (JSON-friendly); ``app`` from ``sample_appearance``."""
    style = "none" if app["bald"] else str(rng.choice(STYLES, p=STYLE_P))
    male_ish = app["stubble"] > 0 or rng.random() < 0.3
    beard = "none"
    if male_ish and rng.random() < 0.45:
        beard = str(rng.choice(["full", "goatee", "moustache", "chin_strap"], p=[0.45, 0.2, 0.2, 0.15]))
    return {
        "style": style,
        "volume_mm": float(rng.uniform(3, 10) if style == "short" else rng.uniform(8, 28)),
        # Where the hair mass ends, in face lengths above the chin (chin 0, nose bridge 1).
        "end_level": float({"short": rng.uniform(1.0, 1.4), "medium": rng.uniform(0.1, 0.8),
                            "long": rng.uniform(-2.0, -0.4)}.get(style, 2.0)),
        "fringe": bool(style != "none" and rng.random() < 0.35),
        "fringe_mm": float(rng.uniform(-4, 25)),
        # Waviness: the strands' sideways swing in pixels (of a 256 crop) and its period.
        "curl_px": float(rng.uniform(1.0, 3.5) if rng.random() < 0.3 else rng.uniform(0.0, 1.0)),
        "curl_period_px": float(rng.uniform(40, 120)),
        # Profile samples per pixel across the strands (about 2 per strand at 3).
        "strand_rate": float(rng.uniform(2.0, 4.0)),
        "density": float(rng.uniform(0.8, 1.0)),
        "shine": float(rng.uniform(0.03, 0.25)),
        "beard_hair_mm": float(rng.uniform(2.0, 8.0)),
        "beard": beard, "beard_density": float(rng.uniform(0.5, 1.0)),
        "crown_shift": float(rng.uniform(-0.25, 0.25)),
        "brow_strands": float(rng.uniform(0.3, 0.8)),
        "lashes": float(rng.uniform(0.5, 0.95)),
    }


def _strand_profile(rng: np.random.Generator, n: int = 2048) -> np.ndarray:
    """``n`` (a power of two) float32 periodic 1-D profile in [0, 1]: several octaves of smoothed noise."""
    out = np.zeros(n, dtype=np.float64)
    k = np.fft.rfftfreq(n, 1.0 / n)
    for f0, weight in ((n / 6, 0.5), (n / 20, 0.3), (n / 80, 0.2)):
        spec = np.fft.rfft(rng.standard_normal(n)) * np.exp(-0.5 * (k / f0) ** 2)
        band = np.fft.irfft(spec, n)
        out += weight * band / (band.std() + 1e-12)
    return (0.5 + 0.5 * np.tanh(1.4 * out)).astype(np.float32)


def _lookup(profile: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """Linear, wrapping lookup of a periodic profile (length a power of two) at
    real-valued ``coord`` (any shape); float32 out."""
    n = len(profile)
    c = np.asarray(coord, dtype=np.float32)
    f = np.floor(c)
    t = c - f
    i0 = f.astype(np.int64) & (n - 1)  # wraps negatives too (two's complement)
    return profile[i0] * (1 - t) + profile[(i0 + 1) & (n - 1)] * t


def _face_frame(lm2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Image-space face frame from ``68 x 2`` crop landmarks: (chin, up unit vector, face length px)."""
    chin, bridge = lm2d[8].astype(np.float64), lm2d[27].astype(np.float64)
    up = bridge - chin
    length = float(np.linalg.norm(up))
    return chin, up / max(length, 1e-6), max(length, 1e-6)


def _shade(lobes: dict, n: np.ndarray, t_img: np.ndarray, base: np.ndarray, lighting: dict,
           shine: float) -> np.ndarray:
    """``P x 3`` linear radiance of hair with mass normals ``n`` (``P x 3``, camera frame),
    image-plane strand directions ``t_img`` (``P x 2``, x right, y down) and albedo ``base``
    (``P x 3``). Kajiya-Kay diffuse and specular per light, plus the environment."""
    if len(n) == 0:
        return np.zeros((0, 3), dtype=np.float32)
    t = np.stack([t_img[:, 0], -t_img[:, 1], np.zeros(len(t_img), np.float32)], axis=1)
    t -= np.einsum("ij,ij->i", t, n)[:, None] * n
    t /= np.maximum(np.sqrt(np.einsum("ij,ij->i", t, t)), 1e-6)[:, None]
    out = env_irradiance(lighting["env"], n) * 0.8
    view = np.array([0, 0, 1], dtype=np.float32)
    spec = np.zeros(len(n), dtype=np.float32)
    spec2 = np.zeros(len(n), dtype=np.float32)
    for light in lighting["lights"]:
        ld = np.asarray(light["direction"], dtype=np.float32)
        ld /= np.linalg.norm(ld)
        radiance = light["intensity"] * np.asarray(light["color"], dtype=np.float32)
        tl = t @ ld
        facing = tx.smoothstep(-0.3, 0.3, n @ ld)
        out += (np.sqrt(np.clip(1 - tl * tl, 0, 1)) * facing)[:, None] * radiance[None] * 0.7
        h = ld + view
        h /= np.linalg.norm(h)
        th = t @ h
        sin_th = np.sqrt(np.clip(1 - th * th, 0, 1))
        spec += facing * sin_th ** lobes["p1"] * float(np.max(radiance))
        spec2 += facing * sin_th ** lobes["p2"] * float(np.max(radiance))
    return out * base + shine * (0.35 * spec[:, None] + 0.25 * spec2[:, None] * base / max(float(base.max()), 1e-3))


def render_hair(rng: np.random.Generator, style: dict, app: dict, size: int, hit: np.ndarray,
                index: np.ndarray, parts: np.ndarray, rest: np.ndarray, normals: np.ndarray,
                regions: np.ndarray, lm_rest: np.ndarray, lm2d: np.ndarray,
                mm_per_px: float, lighting: dict) -> HairLayer:
    """The hair layer of one sample: scalp hair, then face hair, then eyelashes, each
    composited over the last.

    Args:
        style: from :func:`sample_hair`; app: from ``sample_appearance``.
        size: crop side ``S``.
        hit: ``S x S`` bool, the head was hit; ``index``: ``P`` flat indices of the hits.
        parts: ``P`` part labels; rest: ``P x 3`` neutral-frame positions (mm);
        normals: ``P x 3`` smooth camera-frame normals of the head at the hits.
        regions: ``P x len(albedo.REGIONS)`` interpolated region weights.
        lm_rest: ``68 x 3`` neutral landmarks (mm); lm2d: ``68 x 2`` crop landmarks (px).
        mm_per_px: size of a crop pixel on the face (mm).
        lighting: from ``render.sample_lighting``.
    """
    look = _Look(base=np.asarray(app["hair"], dtype=np.float32), profile=_strand_profile(rng),
                 lobes={"p1": float(rng.uniform(60, 200)), "p2": float(rng.uniform(8, 25))},
                 lighting=lighting, shine=style["shine"])
    alpha = np.zeros(size * size, dtype=np.float32)
    radiance = np.zeros((size * size, 3), dtype=np.float32)
    frame = _face_frame(lm2d)
    if style["style"] != "none":
        alpha, radiance = _scalp_hair(look, style, app, size, hit, index, parts, rest, lm_rest, frame, mm_per_px)

    # Face hair on the skin: beards / moustaches (down the face) and eyebrow strands.
    x, y = rest[:, 0], rest[:, 1]
    rate = style["strand_rate"] / mm_per_px  # profile samples per mm across the hairs
    skin = (parts == PART_FACE) | (parts == PART_FACE_OUTER) | (parts == PART_HEAD)
    beard = _beard_alpha(style, rest, lm_rest, regions[:, REGIONS.index("lips")], skin, look.profile, rate)
    # Eyebrow hairs slant outward and up from the nose.
    brow_coord = (np.abs(x) * 0.8 - y * 0.6) * rate
    brows = (regions[:, REGIONS.index("brows")] * app["brow_density"] * style["brow_strands"]
             * _lookup(look.profile, brow_coord))
    face_alpha = np.maximum(beard, brows).astype(np.float32)
    sel = np.flatnonzero(face_alpha > 0.01)
    if len(sel):
        chin, up, _ = frame
        along = -up if style["beard"] != "none" else np.array([-up[1], up[0]])
        t_img = np.broadcast_to(along.astype(np.float32), (len(sel), 2))
        strands = _lookup(look.profile, x[sel] * rate + 500.0)[:, None]
        # Brows take the albedo's darker brow shade; beards are a little darker than the scalp.
        shade = np.where(beard[sel] >= brows[sel], 0.8, BROW_SHADE)[:, None]
        col = look.base[None] * shade * (0.5 + 0.7 * strands)
        rad = _shade(look.lobes, normals[sel].astype(np.float32), t_img, col, lighting, 0.5 * look.shine)
        _over(alpha, radiance, index[sel], face_alpha[sel], rad)
    # Eyelashes: a dark fringe along the lid margins, over the lid and the eyeball's edge.
    lashes = _lash_alpha(rest, lm_rest, style["lashes"])
    sel = np.flatnonzero(lashes > 0.01)
    if len(sel):
        dark = np.broadcast_to(look.base[None] * 0.25 + np.float32(0.004), (len(sel), 3))
        _over(alpha, radiance, index[sel], lashes[sel], dark)
    return HairLayer(alpha=np.clip(alpha, 0, 1).reshape(size, size).astype(np.float32),
                     radiance=radiance.reshape(size, size, 3))


@dataclass
class _Look:
    """What all hair of one person shares: albedo, strand profile, highlights, lights."""

    base: np.ndarray
    profile: np.ndarray
    lobes: dict
    lighting: dict
    shine: float


def _over(alpha: np.ndarray, radiance: np.ndarray, at: np.ndarray, a_new: np.ndarray, rad_new: np.ndarray) -> None:
    """Composite a layer (coverage ``a_new``, radiance ``rad_new`` at flat pixels ``at``)
    over ``alpha`` / ``radiance`` (``S*S`` and ``S*S x 3``, straight colour), in place."""
    a_old = alpha[at]
    total = a_new + a_old * (1 - a_new)
    radiance[at] = (rad_new * a_new[:, None] + radiance[at] * (a_old * (1 - a_new))[:, None]) \
        / np.maximum(total, 1e-6)[:, None]
    alpha[at] = total


def _scalp_hair(look: _Look, style: dict, app: dict, size: int, hit: np.ndarray, index: np.ndarray,
                parts: np.ndarray, rest: np.ndarray, lm_rest: np.ndarray, frame: tuple,
                mm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Scalp hair, fringe and hair volume: ``S*S`` coverage and ``S*S x 3`` radiance.

    Strands radiate from a crown point above the forehead (image space). The mass covers
    the scalp (and, with a fringe, the forehead down to a ragged edge), reaches past the
    skull by the hair's thickness and, for medium and long styles, falls beside the face
    down to ``end_level``; it never covers face or eye pixels except for the fringe.
    """
    import cv2

    chin, up, face_len = (np.float32(v) if np.isscalar(v) else np.asarray(v, np.float32) for v in frame)
    right = np.array([-up[1], up[0]], dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    pix = np.stack([xx.ravel(), yy.ravel()], axis=1)
    level = ((pix - chin) @ up / face_len).astype(np.float32)  # 0 at the chin, 1 at the bridge
    skin = (parts == PART_FACE) | (parts == PART_FACE_OUTER) | (parts == PART_HEAD)
    face_part = (parts == PART_FACE) | (parts == PART_FACE_OUTER)
    profile = look.profile
    unit = size / 256.0
    crown = chin + up * face_len * 1.9 + right * face_len * style["crown_shift"]
    rel = pix - crown
    dist = np.sqrt(np.einsum("ij,ij->i", rel, rel)) + 1e-3
    theta = np.arctan2(rel @ right, -(rel @ up))  # 0 straight down from the crown
    theta += style["curl_px"] * unit / dist * np.sin(dist / (style["curl_period_px"] * unit) * 2 * np.pi + 3.0 * theta)
    # Across strands the profile advances ``strand_rate`` samples per pixel at 80 px (of a
    # 256 crop) from the crown, where the forehead hair is.
    strands = _lookup(profile, theta * style["strand_rate"] * 80.0 * unit)
    on_head = np.zeros(size * size, dtype=np.float32)
    w = scalp_weight(app, rest, lm_rest) * skin
    if style["fringe"]:
        brow_y = float(lm_rest[17:27, 1].max())
        ragged = 8.0 * (_lookup(profile, theta[index] * 20.0 * unit) - 0.5)
        w = np.maximum(w, face_part * tx.smoothstep(-2, 2, rest[:, 1] - brow_y - style["fringe_mm"] + ragged))
    on_head[index] = w
    thick = style["volume_mm"] / mm_per_px
    scalp_px = (on_head.reshape(size, size) > 0.5).astype(np.uint8)
    d_out = cv2.distanceTransform(1 - scalp_px, cv2.DIST_L2, 3).ravel()
    ragged_out = thick * (0.6 + 0.8 * _lookup(profile, theta * 25.0 * unit))
    around = tx.smoothstep(ragged_out, 0.6 * ragged_out, d_out) * scalp_px.any()
    if style["end_level"] < 1.0:  # medium and long hair falls beside the face and the neck
        d_head = cv2.distanceTransform(1 - hit.astype(np.uint8), cv2.DIST_L2, 3).ravel()
        side = tx.smoothstep(2.2 * thick + 4, 1.2 * thick, d_head) * tx.smoothstep(1.3, 0.9, level)
        around = np.maximum(around, side)
    around *= tx.smoothstep(style["end_level"] - 0.15 * _lookup(profile, theta * 7.0) - 0.1,
                            style["end_level"] + 0.05, level)
    allowed = np.ones(size * size, dtype=np.float32)
    allowed[index] = (parts == PART_HEAD).astype(np.float32)  # ears, neck, scalp; never face or eyes
    mass = np.maximum(on_head, around * allowed)
    # Inside the mass hair is nearly opaque (strands show in the shading); toward its edges
    # the gaps between strands open up.
    alpha = (np.clip(mass * 1.5 - 0.5 * (1 - strands) - 0.1, 0, 1) * style["density"]).astype(np.float32)
    # The hair mass's normal: from a blurred silhouette (a soft dome over the head).
    height = gaussian_blur(np.maximum(mass, hit.ravel() * 0.6).reshape(size, size), max(2.0, 0.6 * thick + 2))
    gy, gx = np.gradient(height)
    n_mass = np.stack([-gx.ravel() * size * 0.15, gy.ravel() * size * 0.15, np.ones(size * size)], axis=1)
    n_mass = (n_mass / np.linalg.norm(n_mass, axis=1, keepdims=True)).astype(np.float32)
    radiance = np.zeros((size * size, 3), dtype=np.float32)
    sel = np.flatnonzero(alpha > 0.01)
    t_img = (rel[sel] / dist[sel, None]).astype(np.float32)
    col = look.base[None] * (0.6 + 0.8 * strands[sel, None]) * (0.45 + 0.55 * strands[sel, None])
    radiance[sel] = _shade(look.lobes, n_mass[sel], t_img, col, look.lighting, look.shine)
    return alpha, radiance


def _beard_alpha(style: dict, rest: np.ndarray, lm_rest: np.ndarray, lips: np.ndarray, skin: np.ndarray,
                 profile: np.ndarray, rate: float) -> np.ndarray:
    """``P`` float32 beard / moustache coverage on the skin (neutral-frame regions from the
    landmarks), as short hairs: bands ``beard_hair_mm`` long down the face, each with its
    own shift of the strand profile (band edges jittered per strand)."""
    if style["beard"] == "none":
        return np.zeros(len(rest), dtype=np.float32)
    x, y = rest[:, 0], rest[:, 1]
    eye_w = float(lm_rest[45, 0] - lm_rest[36, 0])
    nose_y, mouth_y, chin_y = float(lm_rest[33, 1]), float(lm_rest[51, 1]), float(lm_rest[8, 1])
    moustache = (tx.smoothstep(nose_y - 1, nose_y - 4, y) * tx.smoothstep(mouth_y - 1, mouth_y + 1.5, y)
                 * tx.smoothstep(0.38 * eye_w, 0.3 * eye_w, np.abs(x)))
    kind = style["beard"]
    if kind == "full":
        region = np.maximum(moustache, tx.smoothstep(nose_y + 6, nose_y - 6, y)
                            * tx.smoothstep(0.8 * eye_w, 0.65 * eye_w, np.abs(x)))
    elif kind == "goatee":
        lower = tx.smoothstep(float(lm_rest[57, 1]) + 1, float(lm_rest[57, 1]) - 2, y)
        region = np.maximum(moustache, lower * tx.smoothstep(0.3 * eye_w, 0.22 * eye_w, np.abs(x)))
    elif kind == "chin_strap":
        region = tx.smoothstep(mouth_y - 8, mouth_y - 14, y) * tx.smoothstep(0.8 * eye_w, 0.7 * eye_w, np.abs(x))
    else:
        region = moustache
    region = region * (1 - lips) * tx.smoothstep(chin_y - 45, chin_y - 20, y) * skin * style["beard_density"]
    band = np.floor(y / style["beard_hair_mm"] + _lookup(profile, x * rate * 0.7 + 911.0))
    return (region * np.clip(0.45 + 1.0 * _lookup(profile, x * rate + band * 137.0), 0, 1)).astype(np.float32)


def _lash_alpha(rest: np.ndarray, lm_rest: np.ndarray, strength: float) -> np.ndarray:
    """``P`` float32 eyelash coverage: a band along each upper lid margin (landmarks
    36-39, 42-45, neutral frame, mm), thickest mid-lid and thinning to the corners, and a
    fainter, thinner one along the lower margin."""
    out = np.zeros(len(rest), dtype=np.float32)
    xy = rest[:, :2]
    for upper, lower in (((36, 37, 38, 39), (39, 40, 41, 36)), ((42, 43, 44, 45), (45, 46, 47, 42))):
        for chain, width, weight in ((upper, 1.1, 1.0), (lower, 0.5, 0.45)):
            pts = lm_rest[list(chain), :2].astype(np.float64)
            for k, (a, b) in enumerate(zip(pts[:-1], pts[1:])):
                idx = tx.near_segment(xy, a, b, 2.5)
                if len(idx) == 0:
                    continue
                d, t = tx.segment_distance(xy[idx], a, b)
                along = (k + t) / (len(pts) - 1)  # 0 at one corner, 1 at the other
                taper = np.sin(np.pi * np.clip(along, 0, 1)) ** 0.5
                w = strength * weight * taper * tx.smoothstep(width * taper + 0.3, 0.2, d)
                out[idx] = np.maximum(out[idx], w)
    return out

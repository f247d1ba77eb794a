"""Procedural albedo (linear RGB reflectance) for skin, lips, brows, stubble, hair and eyes.

Regions are placed from the neutral mesh's landmarks: every hit pixel carries the
neutral-frame position of its surface point (mm), so a region drawn on the neutral face
stays on the same skin whatever the identity, expression or pose. Random texture comes
from the UV noise bank (:mod:`facenormals3d.data.textures`).

Skin tone is drawn uniformly over a 6-step ladder from very light to very dark
(interpolated in linear RGB), then varied in hue, redness and blotchiness.
"""

from __future__ import annotations

import functools

import numpy as np

from facenormals3d.data import textures as tx
from facenormals3d.data.ict import (PART_EYE_SOCKET, PART_EYEBALL, PART_FACE, PART_FACE_OUTER, PART_HEAD, PART_MOUTH, PART_TEETH,
                                    PART_TONGUE)

#: sRGB skin tones from very light (index 0) to very dark (index 5).
SKIN_LADDER_SRGB = np.array([[236, 200, 180], [220, 172, 142], [196, 142, 108],
                             [160, 108, 74], [110, 70, 46], [60, 38, 28]], dtype=np.float64)
#: sRGB hair colours: black, dark brown, brown, auburn, blond, grey.
HAIR_SRGB = np.array([[20, 16, 14], [48, 32, 24], [92, 62, 42], [120, 56, 30],
                      [190, 150, 100], [150, 145, 140]], dtype=np.float64)
#: Brow colour as a fraction of the scalp hair's (linear).
BROW_SHADE = 0.5
#: sRGB iris colours: dark brown, brown, hazel, green, blue, grey.
IRIS_SRGB = np.array([[50, 30, 20], [100, 60, 30], [120, 100, 50], [80, 110, 70],
                      [70, 110, 160], [120, 130, 140]], dtype=np.float64)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _srgb8_table(gamma: float, levels: int = 4096) -> np.ndarray:
    x = (np.arange(levels, dtype=np.float32) + 0.5) / levels
    return np.clip(np.round(np.power(linear_to_srgb(x), gamma) * 255), 0, 255).astype(np.uint8)


def linear_to_srgb8(c: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Linear [0, 1] -> 8-bit sRGB (optionally raised to ``gamma``) through a 4096-entry table.

    4096 linear steps are finer than 8-bit sRGB needs even in the darks, and a table
    lookup is much cheaper than a power per value.
    """
    table = _srgb8_table(round(float(gamma), 3))
    idx = np.clip(np.asarray(c, dtype=np.float32) * len(table), 0, len(table) - 1).astype(np.int32)
    return table[idx]


def sample_appearance(rng: np.random.Generator) -> dict:
    """Random appearance parameters of one person (JSON-friendly)."""
    tone = float(rng.uniform(0.0, 5.0))
    lo = int(min(tone, 4))
    skin = srgb_to_linear(SKIN_LADDER_SRGB[lo] / 255) ** (1 - (tone - lo)) * \
        srgb_to_linear(SKIN_LADDER_SRGB[lo + 1] / 255) ** (tone - lo)
    skin = skin * np.exp(rng.normal(0, [0.06, 0.05, 0.08]))
    hair_i = int(rng.choice(6, p=[0.3, 0.25, 0.15, 0.07, 0.13, 0.1]))
    hair = srgb_to_linear(HAIR_SRGB[hair_i] / 255) * np.exp(rng.normal(0, 0.15, 3))
    iris = srgb_to_linear(IRIS_SRGB[int(rng.integers(6))] / 255) * np.exp(rng.normal(0, 0.15, 3))
    lipstick = srgb_to_linear(rng.uniform([90, 10, 20], [220, 90, 120]) / 255) if rng.random() < 0.15 else None
    return {
        "skin_tone": tone, "skin": skin.tolist(), "hair": hair.tolist(), "iris": iris.tolist(),
        "redness": float(rng.uniform(0.0, 1.0)), "blotch": float(rng.uniform(0.02, 0.08)),
        "freckles": float(rng.uniform(0.2, 0.7)) if rng.random() < 0.25 * (1 - tone / 6) else 0.0,
        "brow_density": float(rng.uniform(0.4, 1.0)), "stubble": float(rng.uniform(0.2, 0.9)) if rng.random() < 0.3 else 0.0,
        "hairline_mm": float(rng.uniform(48, 75)), "bald": bool(rng.random() < 0.1),
        "lipstick": None if lipstick is None else lipstick.tolist(), "pupil": float(rng.uniform(0.3, 0.5)),
        "eyeshadow": srgb_to_linear(rng.uniform(40, 200, 3) / 255).tolist() if rng.random() < 0.12 else None,
        "blush": float(rng.uniform(0.1, 0.35)) if rng.random() < 0.2 else 0.0,
        "moles": rng.uniform([-60, -70], [60, 60], size=(int(rng.poisson(1.5)), 2)).tolist(),
    }


def _inside_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of ``P x 2`` points against an ``M x 2`` polygon."""
    inside = np.zeros(len(p), dtype=bool)
    x, y = p[:, 0], p[:, 1]
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        cross = (a[1] > y) != (b[1] > y)
        xs = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-12)
        inside ^= cross & (x < xs)
    return inside


def _polyline_distance(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    d = np.full(len(p), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        d = np.minimum(d, tx.segment_distance(p, a, b)[0])
    return d


#: Channels of :func:`vertex_regions`.
REGIONS = ("front", "cheeks", "nose", "eye_ring", "lid", "lips", "brows", "stubble", "t_zone")


def vertex_regions(neutral: np.ndarray, landmarks: np.ndarray, vertex_front: np.ndarray) -> np.ndarray:
    """``N x len(REGIONS)`` float32 soft region weights on the neutral mesh, from its landmarks.

    Regions are smooth at the mesh's resolution (2-3 mm on the face), so they are built
    once per vertex and interpolated per pixel. ``vertex_front`` (``N`` bool) marks
    vertices of the face parts, so regions never land on the back of the head.
    """
    lm = neutral[landmarks].astype(np.float64)
    xy = neutral[:, :2].astype(np.float64)
    front = vertex_front.astype(np.float64)
    eye_w = float(lm[45, 0] - lm[36, 0])
    out = np.zeros((len(neutral), len(REGIONS)), dtype=np.float64)
    out[:, 0] = front
    out[:, 1] = np.exp(-((np.abs(xy[:, 0]) - 0.45 * eye_w) ** 2 + (xy[:, 1] - lm[30, 1]) ** 2) / (2 * 18.0 ** 2))
    out[:, 2] = np.exp(-np.sum((xy - lm[30, :2]) ** 2, axis=1) / (2 * 10.0 ** 2))
    brow_low = float(lm[17:27, 1].min())
    for a, b in ((36, 39), (42, 45)):
        c = 0.5 * (lm[a, :2] + lm[b, :2])
        ring = np.exp(-np.sum((xy - c) ** 2, axis=1) / (2 * 9.0 ** 2))
        out[:, 3] = np.maximum(out[:, 3], ring)
        out[:, 4] = np.maximum(out[:, 4], ring * tx.smoothstep(c[1], c[1] + 4, xy[:, 1])
                               * tx.smoothstep(brow_low + 2, brow_low - 3, xy[:, 1]))
    out[:, 5] = _inside_polygon(xy, lm[48:60, :2])
    for brow in (lm[17:22, :2], lm[22:27, :2]):
        d = _polyline_distance(xy, brow + np.array([0.0, -1.0]))
        # Thicker toward the nose: the stroke radius grows from 2.5 to 4.5 mm.
        along = np.clip((np.abs(xy[:, 0]) - abs(brow[:, 0]).min()) / (np.ptp(brow[:, 0]) + 1e-9), 0, 1)
        radius = 4.5 - 2.0 * along
        out[:, 6] = np.maximum(out[:, 6], tx.smoothstep(radius + 1.0, radius - 1.0, d))
    zone = tx.smoothstep(lm[33, 1] - 4, lm[33, 1] - 10, xy[:, 1]) * (1 - out[:, 5])
    zone *= tx.smoothstep(0.75 * eye_w, 0.55 * eye_w, np.abs(xy[:, 0]))
    out[:, 7] = zone * tx.smoothstep(lm[8, 1] - 25, lm[8, 1] - 5, xy[:, 1])
    out[:, 8] = np.exp(-(xy[:, 0] / 14.0) ** 2) * (xy[:, 1] > lm[33, 1])
    out[:, 1:] *= front[:, None]
    return out.astype(np.float32)


def albedo(app: dict, parts: np.ndarray, rest: np.ndarray, regions: np.ndarray, iris_coord: np.ndarray,
           noise: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear RGB albedo and a specular weight for each hit pixel.

    Args:
        app: parameters from :func:`sample_appearance`.
        parts: ``P`` int part labels (``facenormals3d.data.ict.PART_*``).
        rest: ``P x 3`` neutral-frame position of each pixel's surface point (mm).
        regions: ``P x len(REGIONS)`` interpolated :func:`vertex_regions`.
        iris_coord: ``P`` iris coordinate (< 1 on the iris, inf off the eyes).
        noise: ``P x C`` noise bank values (:func:`facenormals3d.data.textures.lookup`).
        lm: ``68 x 3`` neutral landmarks (mm).

    Returns:
        ``P x 3`` float32 albedo in [0, 1] and ``P`` float32 specular weight.
    """
    # Contiguous rows: every region is used several times, and strided columns are slow.
    reg = np.ascontiguousarray(regions.T, dtype=np.float32)
    r = {name: reg[i] for i, name in enumerate(REGIONS)}
    skin_parts = (parts == PART_FACE) | (parts == PART_FACE_OUTER) | (parts == PART_HEAD)
    nz = {c: np.ascontiguousarray(noise[:, c]) for c in (tx.BLOTCH, tx.MID, tx.STREAK, tx.FINE)}

    def mix(col: np.ndarray, w: np.ndarray, target) -> None:
        """``col = col * (1 - w) + w * target`` in place (``w``: ``P``)."""
        col += w[:, None] * (target - col)

    shade = (1.0 + app["blotch"] * nz[tx.BLOTCH]) * (1.0 + 0.04 * nz[tx.MID]) * (1.0 - 0.15 * r["eye_ring"])
    red = app["redness"] * (0.6 * r["cheeks"] + 0.5 * r["nose"])
    tint = red[:, None] * np.array([0.10, -0.12, -0.10], dtype=np.float32)
    if app["blush"]:
        tint += (app["blush"] * r["cheeks"])[:, None] * np.array([0.05, -0.25, -0.18], dtype=np.float32)
    tint += 1.0
    col = tint * (shade[:, None] * np.asarray(app["skin"], dtype=np.float32)[None])
    if app["eyeshadow"] is not None:
        mix(col, 0.7 * r["lid"], np.asarray(app["eyeshadow"], dtype=np.float32))
    if app["freckles"]:
        spots = tx.smoothstep(1.2, 2.0, noise[:, tx.FRECKLE]) * app["freckles"] * r["front"] * (0.3 + r["cheeks"] + r["nose"])
        col *= 1.0 - np.clip(0.35 * spots, 0, 0.6)[:, None] * np.array([1.0, 1.06, 1.1], dtype=np.float32)
    xy = rest[:, :2]
    for m in app["moles"]:
        idx = tx.near_segment(xy, np.asarray(m), np.asarray(m), 4.0)
        d2 = np.sum((xy[idx] - np.asarray(m)) ** 2, axis=1)
        col[idx] *= (1.0 - 0.6 * np.exp(-d2 / (2 * 1.2 ** 2)) * r["front"][idx])[:, None]
    spec = 0.6 + 0.4 * r["front"] + 0.5 * r["t_zone"] + 0.8 * r["lips"]
    hair = np.asarray(app["hair"], dtype=np.float32)
    lip_col = col * np.array([0.85, 0.5, 0.55], dtype=np.float32) if app["lipstick"] is None \
        else np.asarray(app["lipstick"], dtype=np.float32)[None]
    mix(col, r["lips"], lip_col)
    # Brows are darker than the scalp hair (most visibly for blond and grey hair).
    mix(col, app["brow_density"] * r["brows"] * np.clip(0.65 + 0.5 * nz[tx.STREAK], 0, 1), BROW_SHADE * hair)
    if app["stubble"]:
        # Stubble darkens (short hairs over skin), even for light hair colours.
        w = app["stubble"] * r["stubble"] * np.clip(0.5 + 0.6 * nz[tx.FINE], 0, 1) * 0.6
        mix(col, w, np.minimum(hair, 0.5 * col))
    # Scalp hair above a wavy hairline and over the back/top of the head.
    if not app["bald"]:
        w = scalp_weight(app, rest, lm) * skin_parts
        strands = np.clip(1.0 + 0.2 * nz[tx.STREAK] + 0.1 * nz[tx.FINE], 0.5, 1.6)[:, None] * hair
        mix(col, w, strands)
        spec = spec * (1 - w) + 0.3 * w
    col[parts == PART_MOUTH] = np.array([0.22, 0.04, 0.04])
    col[parts == PART_TEETH] = np.array([0.55, 0.5, 0.4])
    col[parts == PART_TONGUE] = np.array([0.4, 0.1, 0.1])
    col[parts == PART_EYE_SOCKET] = np.asarray(app["skin"]) * np.array([1.0, 0.6, 0.6])
    eye = parts == PART_EYEBALL
    if eye.any():
        col[eye], spec[eye] = _eye_albedo(app, iris_coord[eye], noise[eye]), 1.5
    return np.clip(col, 0.0, 1.0).astype(np.float32), spec.astype(np.float32)


def scalp_weight(app: dict, rest: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """``P`` float32 in [0, 1]: how much of each pixel's surface lies in the scalp's hair.

    Above a smooth wavy hairline (``app["hairline_mm"]`` above the brows, drawn on the
    neutral face: the scalp's UVs are stretched) and over the back of the head above the
    ears. ``rest``: ``P x 3`` neutral-frame positions (mm); ``lm``: ``68 x 3`` neutral
    landmarks. Zero everywhere for a bald appearance.
    """
    if app["bald"]:
        return np.zeros(len(rest), dtype=np.float32)
    brow_y = float(lm[17:27, 1].max())
    x, y = np.ascontiguousarray(rest[:, 0]), np.ascontiguousarray(rest[:, 1])
    wave = 3.0 * np.sin(0.12 * x + app["hairline_mm"]) + 1.5 * np.sin(0.31 * x + 2 * app["hairline_mm"])
    line = brow_y + app["hairline_mm"] + wave - 0.004 * x ** 2
    back = rest[:, 2] < float(lm[0, 2]) - 15.0
    ears_y = float(lm[0, 1]) + 15.0
    return np.maximum(tx.smoothstep(line - 4, line + 4, y),
                      back * tx.smoothstep(ears_y - 5, ears_y + 15, y)).astype(np.float32)


def _eye_albedo(app: dict, r: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Sclera, iris (with a darker limbal ring) and pupil from the iris coordinate ``r``."""
    sclera = np.array([0.42, 0.36, 0.33]) * (1 - 0.08 * np.clip(noise[:, [tx.MID]], 0, 2))
    iris = np.asarray(app["iris"]) * (0.75 + 0.25 * np.clip(noise[:, [tx.FINE]], -1, 1))
    limbus = np.exp(-((r - 1.0) / 0.08) ** 2)[:, None]
    iris = iris * (1 - 0.6 * limbus)
    t_iris = tx.smoothstep(1.06, 0.96, r)[:, None]
    t_pupil = tx.smoothstep(app["pupil"] + 0.04, app["pupil"] - 0.04, r)[:, None]
    e = sclera * (1 - t_iris) + iris * t_iris
    return e * (1 - t_pupil) + 0.01 * t_pupil

"""Around the head: photographic backgrounds and the shoulders with their clothes.

Photographic backgrounds are random crops of the photos scikit-image ships inside its
package (``skimage.data``; nothing is downloaded). The astronaut portrait is left out:
the project tests on it as a real photo. Grey-level photos are tinted; every crop is
scaled, flipped, colour-jittered and later defocused like the procedural backgrounds.

The shoulders are a 2-D shape below the chin in the face's own frame (from the crop's
landmarks), shaded as a soft horizontal cylinder with cloth folds, with a neckline that
shows skin. They are drawn behind the head: the head's pixels overwrite them.
"""

from __future__ import annotations

import functools

import numpy as np

from facenormals3d.data import textures as tx
from facenormals3d.data.render import env_irradiance

#: ``skimage.data`` photos used as backgrounds (the astronaut portrait is a test photo).
PHOTO_NAMES = ("camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "brick",
               "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "clock", "horse", "cat")


@functools.lru_cache(maxsize=1)
def photo_bank(max_side: int = 384) -> tuple[np.ndarray, ...]:
    """The background photos as float32 linear RGB ``h x w x 3`` (longer side <= ``max_side``).

    Read once per process (``skimage.data`` reads files inside the installed package);
    photos that cannot be read are skipped, so the tuple may be empty.
    """
    import cv2

    from facenormals3d.data.albedo import srgb_to_linear

    try:
        import skimage.data as sd
    except ImportError:
        return ()
    out = []
    for name in PHOTO_NAMES:
        try:
            img = np.asarray(getattr(sd, name)())
        except Exception:  # noqa: BLE001 - a missing or unreadable bundled photo is just skipped
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.float32) / (255.0 if img.max() > 1 else 1.0)
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        out.append(srgb_to_linear(img).astype(np.float32))
    return tuple(out)


def photo_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict] | None:
    """``size x size x 3`` float32 linear crop of a bundled photo, or None when none is available."""
    import cv2

    bank = photo_bank()
    if not bank:
        return None
    k = int(rng.integers(len(bank)))
    img = bank[k]
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = img[y0:y0 + side, x0:x0 + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
    grey = bool(np.ptp(crop[::8, ::8], axis=2).max() < 1e-3)
    tint = np.exp(rng.normal(0, 0.5 if grey else 0.15, 3)).astype(np.float32)
    out = out * tint * np.float32(rng.uniform(0.4, 1.6))
    return out.astype(np.float32), {"photo": PHOTO_NAMES[k] if k < len(PHOTO_NAMES) else k, "grey": grey}


def sample_clothes(rng: np.random.Generator) -> dict:
    """Random clothing (JSON-friendly)."""
    return {"color": (rng.random(3) ** 2.2 * rng.uniform(0.1, 0.9)).tolist(),
            "neckline": str(rng.choice(["crew", "v", "open", "collar"], p=[0.35, 0.25, 0.2, 0.2])),
            "width": float(rng.uniform(2.4, 3.4)), "drop": float(rng.uniform(0.55, 0.9)),
            "folds": float(rng.uniform(0.0, 0.4)), "fold_freq": float(rng.uniform(3, 12))}


def draw_shoulders(clothes: dict, img: np.ndarray, lm2d: np.ndarray,
                   skin: np.ndarray, lighting: dict) -> np.ndarray:
    """Draw shoulders and clothes into ``img`` (``S x S x 3`` linear, in place); returns their ``S x S`` coverage.

    ``lm2d``: ``68 x 2`` crop landmarks; ``skin``: linear RGB skin albedo (3).
    """
    size = img.shape[0]
    chin, bridge = lm2d[8].astype(np.float64), lm2d[27].astype(np.float64)
    up = bridge - chin
    length = max(float(np.linalg.norm(up)), 1e-6)
    up /= length
    right = np.array([-up[1], up[0]])
    base = chin - up * length * clothes["drop"]  # where the neck meets the shoulders
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    rel_x, rel_y = xx - base[0], yy - base[1]
    a = (rel_x * right[0] + rel_y * right[1]) / length      # across, in face lengths
    b = -(rel_x * up[0] + rel_y * up[1]) / length           # down from the neck base
    half = clothes["width"] / 2
    top = 0.12 + 0.45 * np.clip(np.abs(a) / half, 0, 1) ** 2
    top += np.where(np.abs(a) < 0.3, -0.25, 0)  # the neck column rises above the shoulders
    cover = tx.smoothstep(top - 0.02, top + 0.02, b) * tx.smoothstep(half + 0.05, half - 0.05, np.abs(a))
    if not cover.any():
        return cover.astype(np.float32)
    # A soft cylinder: the normal turns sideways toward the edges, up along the shoulder line.
    nx = np.clip(a / half, -1, 1) * 0.85
    ny = np.clip(0.6 - 2.0 * (b - top), -0.2, 0.6)
    n = np.stack([nx, ny, np.ones_like(nx)], axis=-1).reshape(-1, 3)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    n = n.astype(np.float32)
    shade = env_irradiance(lighting["env"], n)
    for light in lighting["lights"]:
        ld = np.asarray(light["direction"], dtype=np.float32)
        ld /= np.linalg.norm(ld)
        shade += np.maximum(n @ ld, 0)[:, None] * (light["intensity"] * np.asarray(light["color"], np.float32))[None]
    shade = shade.reshape(size, size, 3)
    cloth = np.asarray(clothes["color"], dtype=np.float32)
    folds = 1.0 + clothes["folds"] * np.sin(clothes["fold_freq"] * (a + 0.3 * b) + 2.0 * np.sin(3.0 * b))
    neck_skin = np.abs(a) < 0.28
    if clothes["neckline"] == "v":
        neck_skin = np.abs(a) < 0.28 * np.clip(1.0 - (b - 0.1) / 0.7, 0, 1) + 0.02
    elif clothes["neckline"] == "open":
        neck_skin = np.abs(a) < np.clip(0.6 - 0.4 * b, 0.1, 0.6)
    elif clothes["neckline"] == "collar":
        neck_skin = (np.abs(a) < 0.22 * np.clip(1.0 - (b - 0.05) / 0.5, 0, 1)) & (b > 0.05)
    albedo = np.where(neck_skin[..., None] & (b < 0.9)[..., None], np.asarray(skin, np.float32)[None, None],
                      cloth[None, None] * folds[..., None])
    color = albedo * shade
    img += cover[..., None] * (color - img)
    return cover.astype(np.float32)

"""What happens around and after the face: background clutter, occluders, the camera.

Everything works on the whole ``S x S`` crop in linear RGB until :func:`camera` encodes
to 8-bit sRGB. Occluders are drawn over the face and returned as a coverage map so the
ground-truth mask can drop the pixels they hide.
"""

from __future__ import annotations

import io

import numpy as np

from facenormals3d.data.blur import gaussian_blur


def _resize(img: np.ndarray, size: int, cubic: bool = False) -> np.ndarray:
    """``h x w x C`` float32 -> ``size x size x C`` (bilinear or bicubic, OpenCV)."""
    import cv2

    out = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (size, size),
                     interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)
    return out.reshape(size, size, -1)


def background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """``size x size x 3`` float32 linear-RGB clutter behind the head, and what was drawn.

    Drawn at half resolution and upsampled: backgrounds are mostly out of focus, and it
    halves the cost.
    """
    full = size
    size = max(8, size // 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = (rng.random(3) ** 2.2).astype(np.float32), (rng.random(3) ** 2.2).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.float32(np.cos(ang)) + (yy - 0.5) * np.float32(np.sin(ang)), 0, 1)[..., None]
    img = c0 + t * (c1 - c0)
    kind = str(rng.choice(["photo", "room", "bokeh", "plain", "noise", "shapes", "stripes"],
                          p=[0.4, 0.12, 0.08, 0.06, 0.12, 0.16, 0.06]))
    drawn: dict = {}
    if kind == "photo":
        from facenormals3d.data.scene import photo_background

        photo = photo_background(rng, size)
        if photo is None:
            kind = "noise"
        else:
            img, drawn = photo
    if kind == "room":
        # A wall and a floor split at a horizon, a bright window or door, vertical edges.
        horizon = rng.uniform(0.5, 1.2)
        floor = rng.random(3) ** 2.2 * 0.6
        img = np.where((yy > horizon + 0.1 * (xx - 0.5) * rng.normal())[..., None], floor, img)
        for _ in range(int(rng.integers(1, 4))):
            x0, w = rng.uniform(-0.2, 1.0), rng.uniform(0.05, 0.4)
            y0, h = rng.uniform(-0.3, 0.4), rng.uniform(0.3, 0.9)
            bright = (rng.random(3) ** 2.2) * rng.uniform(1.0, 4.0)
            img = np.where(((xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h))[..., None], bright, img)
    elif kind == "bokeh":
        img = img * np.float32(rng.uniform(0.05, 0.3))
        for _ in range(int(rng.integers(10, 60))):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.02, 0.08)
            disk = np.clip((r - np.hypot(xx - cx, yy - cy)) * size, 0, 1)[..., None]
            img = img + disk * (rng.random(3) ** 2.2 * rng.uniform(0.3, 2.0))
    elif kind == "noise":
        # Smooth noise: random cells, bicubic upsampling.
        n = _resize(rng.random((cells := int(rng.integers(4, 24)), cells, 3)), size, cubic=True)
        img *= 0.4 + 1.2 * n
    elif kind == "shapes":
        for _ in range(int(rng.integers(3, 18))):
            col = rng.random(3) ** 2.2
            cx, cy, rx, ry = rng.uniform(-0.1, 1.1), rng.uniform(-0.1, 1.1), rng.uniform(0.03, 0.4), rng.uniform(0.03, 0.4)
            if rng.random() < 0.5:
                inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            else:
                inside = (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
            img[inside] = col
    elif kind == "stripes":
        freq = rng.uniform(4, 30)
        a2 = rng.uniform(0, np.pi)
        s = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * (xx * np.cos(a2) + yy * np.sin(a2))))
        img = img * (1 - s[..., None]) + (rng.random(3) ** 2.2) * s[..., None]
    faces = int(rng.random() < 0.25) * int(rng.integers(1, 3))
    for _ in range(faces):
        img = _face_like(rng, img, xx, yy)
    blur = float(rng.uniform(0, 4) if rng.random() < 0.7 else 0)
    if blur > 0.6:
        img = gaussian_blur(img, blur / 2)
    img = img.astype(np.float32) * np.float32(rng.uniform(0.2, 1.0))
    return _resize(img, full), {"kind": kind, "blur": blur, "faces": faces, **drawn}


def _face_like(rng: np.random.Generator, img: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Paint a crude face (skin oval, shaded, dark eyes, brows and mouth) near an edge.

    Photos of people often have other people behind them; the network should not call
    every face-like blob the subject.
    """
    from facenormals3d.data.albedo import SKIN_LADDER_SRGB, srgb_to_linear

    skin = srgb_to_linear(SKIN_LADDER_SRGB[int(rng.integers(len(SKIN_LADDER_SRGB)))] / 255) * rng.uniform(0.3, 1.0)
    cx, cy = rng.choice([rng.uniform(-0.05, 0.2), rng.uniform(0.8, 1.05)]), rng.uniform(0.0, 1.0)
    rx = rng.uniform(0.08, 0.2)
    ry = rx * rng.uniform(1.2, 1.45)
    dx, dy = (xx - cx) / rx, (yy - cy) / ry
    oval = dx ** 2 + dy ** 2 < 1
    shade = np.clip(1.0 - 0.35 * (dx * rng.uniform(-1, 1) + dy * 0.5), 0.3, 1.3)
    out = img.copy()
    out[oval] = shade[oval][:, None] * skin
    dark = skin * 0.15
    for ex in (-0.38, 0.38):
        out[((dx - ex) / 0.16) ** 2 + ((dy + 0.12) / 0.07) ** 2 < 1] = dark
        out[(np.abs(dx - ex) < 0.2) & (np.abs(dy + 0.33) < 0.035)] = dark
    out[(np.abs(dx) < 0.28) & (np.abs(dy - 0.5) < 0.04)] = skin * 0.35
    return out


def capsule_coverage(shape: tuple[int, int], a: np.ndarray, b: np.ndarray, radius: float,
                     box: tuple[slice, slice] | None = None) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Anti-aliased coverage of a capsule (segment ``ab`` in pixels, grown by ``radius`` px)
    in an image of ``shape`` (rows, columns).

    Returns ``(box, coverage)``: the row and column slices of the capsule's bounding box
    (or of ``box`` when given) and the coverage in [0, 1] over it; None when the box is
    empty (the capsule lies off the image). Only the box is evaluated: strands are thin.
    """
    h, w = shape
    if box is None:
        lo = np.floor(np.minimum(a, b) - radius - 1).astype(int)
        hi = np.ceil(np.maximum(a, b) + radius + 1).astype(int)
        box = (slice(max(lo[1], 0), min(hi[1], h)), slice(max(lo[0], 0), min(hi[0], w)))
    y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    ab = b - a
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0, 1)
    d = np.hypot(xx - a[0] - t * ab[0], yy - a[1] - t * ab[1])
    return box, np.clip(radius + 0.5 - d, 0, 1)


def _capsule(cover: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
    """Draw :func:`capsule_coverage` into ``cover`` (``S x S``, max, in place)."""
    drawn = capsule_coverage(cover.shape, a, b, radius)
    if drawn is not None:
        np.maximum(cover[drawn[0]], drawn[1], out=cover[drawn[0]])


def occluders(rng: np.random.Generator, size: int, landmarks: np.ndarray, skin: np.ndarray,
              rate: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Random opaque occluders over the face: coverage ``S x S`` in [0, 1] and colour ``S x S x 3``.

    With probability ``rate`` a hand-like blob with fingers placed near one of the crop's
    ``68 x 2`` landmarks. (Hair is drawn by :mod:`facenormals3d.data.hair`, glasses by
    :mod:`facenormals3d.data.glasses`.)
    """
    cover = np.zeros((size, size), dtype=np.float32)
    color = np.zeros((size, size, 3), dtype=np.float32)
    drawn: list[str] = []
    if rng.random() >= rate:
        return cover, color, drawn
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    drawn.append("hand")
    tone = np.asarray(skin) * np.exp(rng.normal(0, 0.2, 3))
    c = landmarks[int(rng.integers(68))] + rng.normal(0, 20, 2) * size / 256
    ang = rng.uniform(0, 2 * np.pi)
    dirv = np.array([np.cos(ang), np.sin(ang)])
    unit = size / 256
    _capsule(cover, c, c - dirv * 60 * unit, 28 * unit)
    side = np.array([-dirv[1], dirv[0]])
    for k in range(4):
        base = c + side * (k - 1.5) * 13 * unit
        _capsule(cover, base, base + dirv * rng.uniform(30, 55) * unit, 6 * unit)
    shade = 0.6 + 0.4 * np.clip((xx - c[0]) * side[0] + (yy - c[1]) * side[1], -40, 40)[..., None] / 80
    color[:] = tone * (0.7 + 0.3 * shade)
    return cover.astype(np.float32), color, drawn


def camera(rng: np.random.Generator, linear: np.ndarray, enabled: bool = True) -> tuple[np.ndarray, dict]:
    """Sensor and encoding: colour cast, blur, lens effects, noise, gamma, sharpening, JPEG
    -> ``S x S x 3`` uint8 sRGB."""
    from facenormals3d.data.albedo import linear_to_srgb8

    img = linear
    params: dict = {}
    gamma = 1.0
    if enabled:
        cast = np.exp(rng.normal(0, [0.08, 0.02, 0.1])).astype(np.float32)
        img = img * cast
        sigma = float(rng.uniform(0.35, 1.6) if rng.random() < 0.3 else 0.35)
        img = gaussian_blur(img, sigma, truncate=3.0)
        img, params["lens"] = lens_effects(rng, img)
        noise = float(rng.uniform(0.0, 0.03))
        # Uniform noise with the standard deviation asked for (cheaper than Gaussian; the
        # blur and JPEG that follow make the shape of its distribution moot).
        grain = rng.integers(-127, 128, size=img.shape, dtype=np.int8).astype(np.float32)
        grain *= np.float32(np.sqrt(3) / 127 * noise)
        # Shot-noise-like: the grain grows with the square root of the signal.
        level = np.clip(img, 0, 1)
        level += np.float32(0.02)
        np.sqrt(level, out=level)
        level *= grain
        img += level
        gamma = float(rng.uniform(0.85, 1.15))
        params.update({"color_cast": cast.tolist(), "blur_sigma": sigma, "noise": noise, "gamma": gamma})
    else:
        img = gaussian_blur(img, 0.35, truncate=3.0)
    u8 = linear_to_srgb8(img, gamma)
    if enabled and rng.random() < 0.25:
        # In-camera sharpening (unsharp mask on the encoded image), halos included.
        import cv2

        amount = float(rng.uniform(0.3, 1.2))
        soft = cv2.GaussianBlur(u8, (0, 0), float(rng.uniform(0.8, 2.0)))
        u8 = cv2.addWeighted(u8, 1 + amount, soft, -amount, 0)
        params["sharpen"] = amount
    if enabled and rng.random() < 0.6:
        from PIL import Image

        quality = int(rng.integers(30, 96))
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=quality)
        u8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        params["jpeg_quality"] = quality
    return u8, params


def lens_effects(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, dict]:
    """One of: nothing (55 %), defocus (a disk kernel), motion blur (a line kernel), a low
    resolution source (downscaled 2-5x and back up), then vignetting (30 %), on an
    ``S x S x 3`` float32 linear image. Returns the image and what was done."""
    import cv2

    size = img.shape[0]
    kind = str(rng.choice(["none", "defocus", "motion", "lowres"], p=[0.55, 0.15, 0.15, 0.15]))
    params: dict = {"kind": kind}
    if kind == "defocus":
        r = float(rng.uniform(1.0, 4.0)) * size / 256
        k = int(np.ceil(r)) * 2 + 1
        yy, xx = np.mgrid[0:k, 0:k] - k // 2
        kernel = np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1).astype(np.float32)
        img = cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
        params["radius_px"] = r
    elif kind == "motion":
        length = float(rng.uniform(3.0, 12.0)) * size / 256
        ang = float(rng.uniform(0, np.pi))
        k = int(np.ceil(length)) | 1
        kernel = np.zeros((k, k), dtype=np.float32)
        c = k // 2
        for t in np.linspace(-0.5, 0.5, 4 * k):
            kernel[int(round(c + t * length * np.sin(ang))), int(round(c + t * length * np.cos(ang)))] += 1
        img = cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
        params.update(length_px=length, angle=ang)
    elif kind == "lowres":
        factor = float(rng.uniform(2.0, 5.0))
        small = max(8, int(size / factor))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)
        params["factor"] = factor
    img = img.reshape(size, size, -1)
    if rng.random() < 0.3:
        yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
        strength = float(rng.uniform(0.2, 0.6))
        centre = rng.uniform(-0.3, 0.3, 2)
        img = img * (1 - strength * ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2))[..., None].astype(np.float32)
        params["vignette"] = strength
    return np.maximum(img, 0).astype(np.float32), params

"""The coordinate and file conventions every stage of facenormals3d follows.

Images
    RGB. On disk and in numpy: ``H x W x 3``, ``uint8`` or ``float32`` in [0, 1].
    In torch: ``B x 3 x H x W`` float32 in [0, 1]. Pixel (u, v) = (column, row); the
    centre of the top-left pixel is (0.5, 0.5) in continuous image coordinates.

Face crop
    Square, 256 x 256, chosen from landmarks by :func:`facenormals3d.face.crop.crop_from_points`.
    A 2 x 3 similarity matrix ``A`` maps photo pixels to crop pixels (``crop = A @ [u, v, 1]``);
    its inverse maps back. Both are saved with every crop.

Normals
    Camera space, right-handed, OpenGL style: x to the right of the image, y up, z towards
    the camera (out of the screen). Unit length. A face seen from the front has n_z > 0.
    On disk: RGB = (n + 1) / 2 in a 16-bit PNG (``*_normals.png``) plus a separate 8-bit
    mask PNG (255 = face); float arrays as ``.npy`` (``H x W x 3`` float32, NaN outside
    the mask). Pixels outside the mask are stored as RGB 0 in the PNG.

Depth / height
    ``z`` towards the camera, so nearer is larger (height field). Orthographic unless
    camera intrinsics are given. Units: millimetres in the mesh stage.

Meshes
    Right-handed, y up, z towards the camera (the viewer looks along -z), millimetres.
    Metric scale is fixed by the mediapipe canonical face geometry: landmark x/y in the
    crop are converted to millimetres with the scale that makes the subject's mean
    inter-ocular distance (outer eye corners) equal to :data:`MEAN_OUTER_EYE_DISTANCE_MM`.

Evaluation landmarks
    The 7 NoW points are iBUG-68 indices :data:`NOW_IBUG68` (right eye outer/inner, left
    eye inner/outer, nose bottom, right and left mouth corner) as a 7 x 3 float array in
    mesh coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError

#: iBUG-68 indices of the 7 NoW landmarks (eye corners, nose bottom, mouth corners).
NOW_IBUG68 = (36, 39, 42, 45, 33, 48, 54)

#: Mean adult distance between the outer eye corners (exocanthion to exocanthion), mm.
#: Farkas' anthropometric tables give about 88-91 mm (ex-ex) for adults; we use 90 mm.
MEAN_OUTER_EYE_DISTANCE_MM = 90.0

CROP_SIZE = 256


def check_normals(normals: np.ndarray, name: str = "normals") -> np.ndarray:
    """Return ``normals`` as float32 ``H x W x 3``; raise :class:`InputError` on a bad shape."""
    arr = np.asarray(normals)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(name, f"expected an H x W x 3 normal map, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def normalize(normals: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Scale vectors along the last axis to unit length (zero vectors become NaN)."""
    n = np.asarray(normals, dtype=np.float32)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(length > eps, n / np.maximum(length, eps), np.nan).astype(np.float32)


def normals_to_rgb16(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Encode unit normals ``H x W x 3`` as ``uint16`` RGB = (n + 1) / 2 * 65535.

    Pixels outside ``mask`` (or non-finite) are 0.
    """
    n = check_normals(normals)
    valid = np.all(np.isfinite(n), axis=-1)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    # The same float32 steps as (clip((n + 1) / 2) * 65535).round(), in place (2 M texels).
    rgb = np.nan_to_num(n)
    rgb += 1.0
    rgb *= 0.5
    np.clip(rgb, 0.0, 1.0, out=rgb)
    rgb *= 65535.0
    np.round(rgb, out=rgb)
    out = rgb.astype(np.uint16)
    out[~valid] = 0
    return out


def rgb_to_normals(rgb: np.ndarray) -> np.ndarray:
    """Decode an 8- or 16-bit RGB normal image to unit float32 normals ``H x W x 3``.

    All-zero pixels (the "outside" marker) decode to NaN.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(None, f"expected an RGB normal image, got shape {arr.shape}")
    arr = arr[..., :3]
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0 if arr.dtype == np.uint8 else 1.0
    n = arr.astype(np.float32) / scale * 2.0 - 1.0
    n = normalize(n)
    n[np.all(arr == 0, axis=-1)] = np.nan
    return n


def read_normal_map(path: str | Path) -> np.ndarray:
    """Read a normal map written by this tool (``.npy`` float or ``.png`` 8/16-bit).

    Returns float32 ``H x W x 3`` unit normals, NaN where unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() == ".npy":
            n = np.load(path, allow_pickle=False)
            return normalize(check_normals(n, str(path)))
        return rgb_to_normals(read_rgb_any_depth(path))
    except InputError as err:
        raise InputError(path, err.reason) from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read normal map ({err})") from None


def write_normal_png(path: str | Path, normals: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Write normals as a 16-bit RGB PNG (no atomic rename: see :mod:`facenormals3d.outputs`)."""
    write_rgb16_png(path, normals_to_rgb16(normals, mask))


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an ``H x W`` or ``H x W x 3/4`` uint8 PNG (:func:`facenormals3d.png.encode_png`;
    no atomic rename: see :mod:`facenormals3d.outputs`)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected an H x W (x C) uint8 image, got {arr.dtype} {arr.shape}")
    _write_encoded(path, arr)


def write_rgb16_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an ``H x W x 3`` uint16 RGB PNG (:func:`facenormals3d.png.encode_png`)."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 uint16, got {arr.dtype} {arr.shape}")
    _write_encoded(path, arr)


def _write_encoded(path: str | Path, arr: np.ndarray) -> None:
    from facenormals3d.png import write_png_to

    with open(path, "wb") as out:
        write_png_to(out, arr)


def read_rgb_any_depth(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG as ``H x W x 3`` RGB keeping 16-bit precision when the file has it."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(path, "not a readable image")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., 2::-1])


def normals_to_preview(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """8-bit RGB picture of a normal map for people: (n + 1) / 2, black outside."""
    return (normals_to_rgb16(normals, mask) >> 8).astype(np.uint8)

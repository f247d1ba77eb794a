"""The 7 NoW evaluation landmarks: reading them and catching order mistakes.

Order (iBUG-68 indices 36, 39, 42, 45, 33, 48, 54, see :data:`facenormals3d.conventions.NOW_IBUG68`):

====  ==========================================  ===============================
row   point                                       in a frontal image
====  ==========================================  ===============================
0     subject's right eye, outer corner           leftmost eye corner
1     subject's right eye, inner corner
2     subject's left eye, inner corner
3     subject's left eye, outer corner            rightmost eye corner
4     nose bottom (subnasale)
5     subject's right mouth corner                left mouth corner
6     subject's left mouth corner                 right mouth corner
====  ==========================================  ===============================

:func:`check_landmarks` refuses sets that are not 7 x 3 and finite, that have coincident
or collinear points, and sets whose order is implausible in a way that works in any frame:
with ``x`` = row 3 - row 0 and ``up`` = eye centre - mouth centre, the eye corners must
be ordered 0 < 1 < 2 < 3 along ``x``, the mouth corners 5 < 6, and the nose bottom must lie
in front of (towards ``x cross up``) the other six points, as on every real face. A
left/right-mirrored set, or eyes swapped with the mouth, fails the last test.

Files: ``.npy`` (7 x 3), text (7 lines of 3 numbers, separated by spaces or commas; ``#``
comments allowed) or MeshLab picked points ``.pp`` (the NoW scan landmarks' format).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.similarity import check_point_set

NAMES = ("right eye outer", "right eye inner", "left eye inner", "left eye outer",
         "nose bottom", "right mouth corner", "left mouth corner")


def load_landmarks(path: str | Path, unit_scale: float = 1.0) -> np.ndarray:
    """Read and check a 7 x 3 landmark file; returns float64 ``7 x 3`` times ``unit_scale``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "landmark file not found")
    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".pp":
            arr = _read_picked_points(path.read_text(errors="replace"))
        else:
            lines = [ln.split("#")[0].strip() for ln in path.read_text(errors="replace").splitlines()]
            rows = [[float(x) for x in re.split(r"[,\s;]+", ln) if x] for ln in lines if ln]
            if len({len(r) for r in rows}) > 1:
                raise InputError(path, "landmark rows have different numbers of values")
            arr = np.array(rows, dtype=np.float64)
    except InputError:
        raise
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read landmarks ({err})") from None
    return check_landmarks(arr, str(path)) * float(unit_scale)


def _read_picked_points(text: str) -> np.ndarray:
    pts = []
    for tag in re.findall(r"<point\b[^>]*>", text):
        attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', tag))
        if attrs.get("active", "1") == "0":
            continue
        pts.append([float(attrs["x"]), float(attrs["y"]), float(attrs["z"])])
    return np.array(pts, dtype=np.float64)


def check_landmarks(landmarks: np.ndarray, source: str = "landmarks") -> np.ndarray:
    """Return ``landmarks`` as float64 ``7 x 3`` or raise :class:`InputError` saying why."""
    lm = check_point_set(landmarks, 7, source, "NoW landmarks", flat_ratio=1e-2)
    span = float(np.linalg.norm(lm.max(0) - lm.min(0)))
    dist = np.linalg.norm(lm[:, None] - lm[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    i, j = np.unravel_index(np.argmin(dist), dist.shape)
    if dist[i, j] < 1e-3 * span:
        raise InputError(source, f"landmarks {i} ({NAMES[i]}) and {j} ({NAMES[j]}) coincide")
    x = lm[3] - lm[0]
    x /= np.linalg.norm(x)
    along = lm @ x
    if not (along[0] < along[1] < along[2] < along[3]):
        raise InputError(source, "eye corners are not in the order right-outer, right-inner, "
                                 "left-inner, left-outer (rows 0-3, iBUG 36, 39, 42, 45)")
    if not along[5] < along[6]:
        raise InputError(source, "mouth corners are swapped relative to the eye corners "
                                 "(rows 5, 6 must be iBUG 48, 54)")
    up = lm[:4].mean(0) - lm[5:].mean(0)
    forward = np.cross(x, up)
    norm = np.linalg.norm(forward)
    if norm < 1e-9 * span:
        raise InputError(source, "eye corners and mouth corners are degenerate (no face plane)")
    forward /= norm
    others = np.delete(lm, 4, axis=0).mean(0)
    if float((lm[4] - others) @ forward) <= 0.0:
        raise InputError(source, "nose bottom is not in front of the eye and mouth corners: the "
                                 "landmarks look mirrored (left/right swapped) or eyes and mouth are "
                                 "swapped, or the surface is flat")
    return lm


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """3 x 3 rotation whose rows are the face's x (to the image right), up and forward axes.

    ``face_frame(lm) @ p`` expresses a point in a frame where the face looks down +z with y
    up, our mesh convention; used to render scans from the front whatever their frame.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    x = lm[3] - lm[0]
    x /= np.linalg.norm(x)
    up = lm[:4].mean(0) - lm[5:].mean(0)
    up -= (up @ x) * x
    up /= np.linalg.norm(up)
    return np.stack([x, up, np.cross(x, up)])

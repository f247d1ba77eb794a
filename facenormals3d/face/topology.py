"""Index sets into the mediapipe 478-point face mesh and their iBUG-68 counterparts.

The mediapipe indices are those of its published face-mesh annotations (silhouette,
lips, eyes, brows); 468-477 are the refined iris points.
"""

from __future__ import annotations

import functools

import numpy as np

N_LANDMARKS = 478
N_MESH_POINTS = 468

#: Face outline, clockwise from the top of the forehead (mediapipe "silhouette").
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
             378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
             162, 21, 54, 103, 67, 109)

#: Inner lip contour (mouth opening), right corner to left corner over the top, back below.
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
              324, 318, 402, 317, 14, 87, 178, 88, 95)

#: Semantic points used to choose the face crop, in the same order in both schemes.
#: Jaw ends at ear level, chin, brow ends, eye corners, nose bottom, mouth corners.
CROP_POINTS_IBUG68 = (0, 16, 8, 17, 21, 22, 26, 36, 39, 42, 45, 33, 48, 54)
CROP_POINTS_MEDIAPIPE = (234, 454, 152, 70, 107, 336, 300, 33, 133, 362, 263, 2, 61, 291)

#: The 7 NoW landmarks (iBUG 36, 39, 42, 45, 33, 48, 54) as mediapipe indices.
NOW_MEDIAPIPE = (33, 133, 362, 263, 2, 61, 291)

#: Outer eye corners (subject's right, subject's left): sets the metric scale.
OUTER_EYE_CORNERS_MEDIAPIPE = (33, 263)
OUTER_EYE_CORNERS_IBUG68 = (36, 45)


def check_landmarks(points: np.ndarray, n: int, name: str = "landmarks") -> np.ndarray:
    """Return ``points`` as float64 ``n x D`` (D = 2 or 3) or raise ``ValueError``."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] not in (2, 3):
        raise ValueError(f"{name}: expected {n} x 2 or {n} x 3, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: non-finite coordinates")
    return arr

#: 3-cycles of the tesselation edge graph that are not faces: each covers a degree-3
#: vertex whose three real triangles already tile it (nose wings; checked on real landmarks).
SPURIOUS_TRIANGLES = ((279, 294, 358), (49, 64, 129))

#: Eye openings as (upper, lower) contours from outer to inner corner; closed with a strip
#: so the coarse face has no holes in the eyes (the face mask includes the eyes).
EYE_CONTOURS = (
    ((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133)),
    ((263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362)),
)
#: Inner lip contours (upper, lower), right to left corner; closed the same way.
MOUTH_CONTOURS = ((78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
                  (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308))


@functools.lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """Triangles of the 468-point face mesh with eyes and mouth closed, ``F x 3`` int64.

    Built from mediapipe's bundled tesselation (an edge list): every 3-cycle is a face
    except :data:`SPURIOUS_TRIANGLES`; the eye and mouth openings are closed by strips.
    Winding is consistent and counter-clockwise seen from the camera (x right, y up),
    so normals computed with the right-hand rule point towards the camera.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    nbrs: dict[int, set[int]] = {}
    for a, b in edges:
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in nbrs[a] & nbrs[b]}
    tris -= set(SPURIOUS_TRIANGLES)
    for upper, lower in EYE_CONTOURS + (MOUTH_CONTOURS,):
        tris |= set(_strip(upper, lower))
    return _orient(sorted(tris))


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Triangles between two polylines sharing their end points."""
    out = []
    for i in range(len(upper) - 1):
        for tri in ((upper[i], lower[i], upper[i + 1]), (upper[i + 1], lower[i], lower[i + 1])):
            if len(set(tri)) == 3:
                out.append(tuple(sorted(tri)))
    return out


def _orient(tris: list[tuple[int, ...]]) -> np.ndarray:
    """Make winding consistent by walking across shared edges (breadth first)."""
    from collections import deque

    edge_faces: dict[tuple[int, int], list[int]] = {}
    for f, (a, b, c) in enumerate(tris):
        for e in ((a, b), (b, c), (a, c)):
            edge_faces.setdefault(e, []).append(f)
    oriented: list[tuple[int, int, int] | None] = [None] * len(tris)
    for seed in range(len(tris)):
        if oriented[seed] is not None:
            continue
        oriented[seed] = tris[seed]
        queue = deque([seed])
        while queue:
            f = queue.popleft()
            a, b, c = oriented[f]
            for u, v in ((a, b), (b, c), (c, a)):
                for g in edge_faces[tuple(sorted((u, v)))]:
                    if oriented[g] is not None:
                        continue
                    x, y, z = tris[g]
                    # A neighbour must traverse the shared edge as v -> u.
                    same = (u, v) in ((x, y), (y, z), (z, x))
                    oriented[g] = (x, z, y) if same else (x, y, z)
                    queue.append(g)
    arr = np.array(oriented, dtype=np.int64)
    # Global sign: the walk starting from the sorted first triangle comes out clockwise
    # seen from the camera for mediapipe's layout (checked on real landmarks in the tests).
    return np.ascontiguousarray(arr[:, ::-1])

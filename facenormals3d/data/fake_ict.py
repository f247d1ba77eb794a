"""A tiny stand-in for the ICT FaceKit folder (same file names and formats), for tests and demos.

The "head" is an ellipsoid (80 x 110 x 95 mm semi-axes) with a UV-sphere topology; its
front half is the "Face" part (the mask region), the back half "Head and Neck". The 68
landmarks are the front vertices nearest a simple frontal iBUG-68 template; identity
modes and expressions are smooth deformations. It has no eyes, mouth or teeth. Files are
in centimetres like the real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Ellipsoid semi-axes (x, y, z) in mm.
RADII_MM = (80.0, 110.0, 95.0)


def ibug68_template() -> np.ndarray:
    """``68 x 2`` rough frontal iBUG-68 layout in mm (x to the subject's left, y up)."""
    pts = []
    for k in range(17):  # jaw, subject's right ear to left ear over the chin
        a = np.pi * k / 16
        pts.append((-68 * np.cos(a), 10 - 75 * np.sin(a)))
    for k in range(5):  # right brow, outer to inner
        pts.append((-55 + 10.5 * k, 35 + 4 * np.sin(np.pi * k / 4)))
    for k in range(5):  # left brow, inner to outer
        pts.append((13 + 10.5 * k, 35 + 4 * np.sin(np.pi * (4 - k) / 4)))
    pts += [(0, 25), (0, 15), (0, 5), (0, -5)]  # nose bridge to tip
    pts += [(-14, -15), (-7, -17), (0, -18), (7, -17), (14, -15)]  # nose bottom
    for cx, order in ((-32, (-45, -20)), (32, (20, 45))):  # eyes: corner, top x2, corner, bottom x2
        x0, x1 = order
        pts += [(x0, 20), (x0 + 0.33 * (x1 - x0), 25), (x0 + 0.66 * (x1 - x0), 25), (x1, 20),
                (x0 + 0.66 * (x1 - x0), 16), (x0 + 0.33 * (x1 - x0), 16)]
    outer = [(-25, -40), (-15, -33), (-5, -31), (0, -32), (5, -31), (15, -33), (25, -40),
             (15, -48), (5, -50), (0, -50), (-5, -50), (-15, -48)]
    inner = [(-20, -40), (-5, -38), (0, -38), (5, -38), (20, -40), (5, -42), (0, -42), (-5, -42)]
    pts += outer + inner
    return np.array(pts, dtype=np.float64)


def _mesh(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, list[list[int]], bool]:
    """Ellipsoid vertices (mm), UVs and quads/triangles ordered front first, and the split."""
    rx, ry, rz = RADII_MM
    verts = [(0.0, ry, 0.0)]
    uvs = []
    for i in range(1, n_lat):
        theta = np.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * np.pi * j / n_lon  # phi = 0 faces +z (the front)
            verts.append((rx * np.sin(theta) * np.sin(phi), ry * np.cos(theta), rz * np.sin(theta) * np.cos(phi)))
    verts.append((0.0, -ry, 0.0))
    verts = np.array(verts)
    # u = 0.5 faces front: the seam (u wraps 1 -> 0) is at the back of the head.
    uvs = np.array([[0.5 + np.arctan2(v[0] / rx, v[2] / rz) / (2 * np.pi), 0.5 + 0.5 * v[1] / ry]
                    for v in verts])

    def ring(i: int, j: int) -> int:
        return 1 + (i - 1) * n_lon + (j % n_lon)

    polys = []
    for j in range(n_lon):  # counter-clockwise seen from outside
        polys.append([0, ring(1, j), ring(1, j + 1)])
        for i in range(1, n_lat - 1):
            polys.append([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)])
        polys.append([len(verts) - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    front = [p for p in polys if verts[p].mean(axis=0)[2] > 0]
    back = [p for p in polys if verts[p].mean(axis=0)[2] <= 0]
    return verts, uvs, front + back, len(front)


def _write_obj(path: Path, verts_mm: np.ndarray, uvs: np.ndarray, polys: list[list[int]]) -> None:
    lines = ["# fake ICT-layout mesh (facenormals3d tests)"]
    lines += [f"v {x / 10:.6f} {y / 10:.6f} {z / 10:.6f}" for x, y, z in verts_mm]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    # The UV seam is ignored: a fake needs valid indices, not a perfect unwrap.
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in p) for p in polys]
    path.write_text("\n".join(lines) + "\n")


def write_fake_ict(folder: str | Path, n_identities: int = 3,
                   expressions: tuple[str, ...] = ("jawOpen", "mouthSmile_L", "mouthSmile_R"),
                   n_lat: int = 40, n_lon: int = 56) -> Path:
    """Write a fake ICT FaceKit folder; return its path."""
    folder = Path(folder)
    fx = folder / "FaceXModel"
    fx.mkdir(parents=True, exist_ok=True)
    verts, uvs, polys, n_front = _mesh(n_lat, n_lon)
    _write_obj(fx / "generic_neutral_mesh.obj", verts, uvs, polys)
    x, y, z = verts.T
    modes = [np.stack([0.06 * x, 0 * y, 0 * z], 1),                                 # wider
             np.stack([0 * x, 0.05 * y, 0 * z], 1),                                 # longer
             np.stack([0 * x, 0 * y, 12 * np.exp(-(x ** 2 + (y + 5) ** 2) / 300) * (z > 0)], 1)]  # nose
    for k in range(n_identities):
        _write_obj(fx / f"identity{k:03d}.obj", verts + modes[k % len(modes)] * (1 + k // len(modes)), uvs, polys)
    for name in expressions:
        d = np.zeros_like(verts)
        if name == "jawOpen":
            d[:, 1] = -10 * np.clip((-30 - y) / 80, 0, 1) * (z > 0)
        else:
            side = -1 if name.endswith("_R") else 1
            d[:, 1] = 4 * np.exp(-((x - side * 25) ** 2 + (y + 40) ** 2) / 200) * (z > 0)
        _write_obj(fx / f"{name}.obj", verts + d, uvs, polys)
    template = ibug68_template()
    front_idx = np.flatnonzero(z > 0.2 * RADII_MM[2])
    lms = [int(front_idx[np.argmin(np.sum((verts[front_idx, :2] - p) ** 2, axis=1))]) for p in template]
    (fx / "vertex_indices.json").write_text(json.dumps(
        {"expressions": list(expressions), "fitting_expressions": list(expressions),
         "idx_to_landmark_verts": lms}))
    n_v, n_p = len(verts), len(polys)
    (folder / "README.md").write_text(
        "# fake ICT-FaceKit (facenormals3d tests)\n\n"
        "| Ordinal#| Geometry name | Vertex indices | Polygon indices | #Vertices | #Faces |\n"
        "|---|---|---|---|---|---|\n"
        f"| n/a | All | [0:{n_v - 1}] | [0:{n_p - 1}] | {n_v} | {n_p} |\n"
        f"| #0 | Face | [0:{n_v - 1}] | [0:{n_front - 1}] | {n_v} | {n_front} |\n"
        f"| #1 | Head and Neck | [0:{n_v - 1}] | [{n_front}:{n_p - 1}] | {n_v} | {n_p - n_front} |\n")
    return folder

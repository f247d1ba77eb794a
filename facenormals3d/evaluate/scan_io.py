"""Reading scans and predicted meshes for evaluation, and writing coloured results.

Units: every loader multiplies coordinates by ``unit_scale`` (1 for mm, 10 for cm, 1000
for m, see :data:`UNIT_TO_MM`), so everything downstream is in millimetres.

Scans are point sets: only their vertices are scored (faces, when present, are kept for
pictures). What the scan loader does with awkward files (each is logged and listed in
:attr:`Scan.notes`):

* no vertices, unreadable file: :class:`InputError`;
* vertices with NaN/inf coordinates: dropped with a warning, with every face that uses
  them; a scan where all are non-finite is refused;
* exactly duplicated vertices: merged into one (a point counted twice would weigh twice);
  faces are re-indexed and faces that collapse are dropped;
* no faces (a point cloud, PLY or OBJ with only ``v`` lines): accepted.

The point-count limit is applied after cropping (:func:`subsample`). Predicted meshes must
have faces (distances are to their triangles) and no NaN vertex.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError

log = logging.getLogger("facenormals3d")

#: Factor that converts each supported unit to millimetres.
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


@dataclass
class Scan:
    """A ground-truth scan in millimetres."""

    points: np.ndarray
    """``N x 3`` float64 vertices."""
    faces: np.ndarray | None
    """``F x 3`` int64 faces into ``points``, or None for a point cloud."""
    notes: list[str] = field(default_factory=list)
    """What was repaired while loading (dropped NaNs, merged duplicates, ...)."""


def _load_geometry(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import trimesh

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as err:  # noqa: BLE001 - trimesh raises many types for bad files
        raise InputError(path, f"cannot read mesh/point cloud ({type(err).__name__}: {err})") from None
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.geometry.values() if len(getattr(g, "vertices", [])) > 0]
        if not geoms:
            raise InputError(path, "no vertices")
        if all(isinstance(g, trimesh.Trimesh) for g in geoms):
            loaded = trimesh.util.concatenate(geoms)
        else:
            return np.concatenate([np.asarray(g.vertices, np.float64) for g in geoms]), None
    verts = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = getattr(loaded, "faces", None)
    faces = None if faces is None or len(faces) == 0 else np.asarray(faces, dtype=np.int64)
    if verts.ndim != 2 or len(verts) == 0:
        raise InputError(path, "no vertices")
    return verts.reshape(-1, 3), faces


def load_scan(path: str | Path, unit_scale: float = 1.0) -> Scan:
    """Load a scan (PLY/OBJ/... via trimesh) as a :class:`Scan` in mm (see module doc)."""
    path = Path(path)
    verts, faces = _load_geometry(path)
    notes = []
    finite = np.all(np.isfinite(verts), axis=1)
    if not finite.any():
        raise InputError(path, "all vertices are NaN or infinite")
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} vertices with NaN/inf coordinates")
        remap = np.cumsum(finite) - 1
        if faces is not None:
            faces = remap[faces[np.all(finite[faces], axis=1)]]
        verts = verts[finite]
    uniq, first, inverse = np.unique(verts, axis=0, return_index=True, return_inverse=True)
    if len(uniq) < len(verts):
        notes.append(f"merged {len(verts) - len(uniq)} duplicate vertices")
        order = np.argsort(first)  # keep the file's vertex order
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        verts = uniq[order]
        if faces is not None:
            faces = rank[inverse.ravel()][faces]
            faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
                          & (faces[:, 0] != faces[:, 2])]
    if faces is not None and len(faces) == 0:
        faces = None
    for note in notes:
        log.warning("%s: %s", path, note)
    return Scan(points=verts * float(unit_scale), faces=faces, notes=notes)


def load_mesh(path: str | Path, unit_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Load a predicted mesh: ``(V x 3 float64 mm, F x 3 int64)``; refuses point clouds and NaNs."""
    path = Path(path)
    verts, faces = _load_geometry(path)
    if faces is None:
        raise InputError(path, "the prediction has no faces (scan-to-mesh distances need triangles)")
    bad = ~np.all(np.isfinite(verts), axis=1)
    if bad.any():
        raise InputError(path, f"{int(bad.sum())} vertices have NaN/inf coordinates")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise InputError(path, "face indices out of range")
    return verts * float(unit_scale), faces


def subsample(n_points: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Indices of the points kept when a scan has more than ``max_points`` points.

    Rule: a uniform random subset of exactly ``max_points`` indices, drawn without
    replacement by ``numpy.random.default_rng(seed)`` and sorted; every index when
    ``n_points <= max_points``. Uniform sampling keeps the distance statistics unbiased;
    the fixed seed keeps results reproducible.
    """
    if n_points <= max_points:
        return np.arange(n_points)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_points, size=max_points, replace=False))


def write_colored_ply(path: str | Path, points: np.ndarray, colors: np.ndarray,
                      faces: np.ndarray | None = None, quality: np.ndarray | None = None) -> None:
    """Write a binary little-endian PLY (mesh, or point cloud when ``faces`` is None) with
    float x y z, uchar red green blue and an optional float ``quality`` per vertex (MeshLab
    shows it as a colour map). Not atomic by itself: call inside a staging folder."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if quality is not None:
        fields.append(("quality", "<f4"))
    vert = np.empty(len(points), dtype=fields)
    for k, name in enumerate("xyz"):
        vert[name] = points[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vert[name] = colors[:, k]
    if quality is not None:
        vert["quality"] = quality
    props = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
    header += [f"property {props[t]} {n}" for n, t in fields]
    n_faces = 0 if faces is None else len(faces)
    if n_faces:
        header += [f"element face {n_faces}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        if n_faces:
            face = np.empty(n_faces, dtype=[("n", "u1"), ("i", "<i4", (3,))])
            face["n"] = 3
            face["i"] = faces
            fh.write(face.tobytes())

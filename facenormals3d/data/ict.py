"""Read an ICT FaceKit folder (the public repository's layout) into arrays, once.

Layout read (``DIR`` is the repository root a user cloned)::

    DIR/README.md                          topology tables: "| #k | Name | [a:b] | [c:d] | ..."
    DIR/FaceXModel/generic_neutral_mesh.obj  neutral head: v, vt, f (quads/triangles), cm
    DIR/FaceXModel/identityNNN.obj          identity shape modes (same topology), NNN = 000..
    DIR/FaceXModel/<expression>.obj         one blendshape per name in vertex_indices.json
    DIR/FaceXModel/vertex_indices.json      "expressions" (names), "idx_to_landmark_verts" (68)

Identity and expression files hold full meshes; the model stores their differences to
the neutral mesh, so ``neutral + sum(c_k * identity_k) + sum(w_j * expression_j)`` is a
face (identity coefficients ~ N(0, 1): the modes are already scaled by their standard
deviation; expression weights in [0, 1]).

Real-time rendering shells (eyelashes, eye occlusion, lacrimal fluid, eye blend meshes)
are dropped: they are transparency tricks with no true surface; so are the hidden inner
iris shells. Units become millimetres.

Parsing 150+ OBJ files takes seconds, so the result is cached as an uncompressed .npz in
:func:`cache_dir` (``$FACENORMALS3D_CACHE`` or ``~/.cache/facenormals3d``), keyed by the
folder's absolute path and the size/mtime of every file read; loading the cache takes
well under a second. The cache lives outside the project: it is derived from the model
and must never be committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError

#: Bump when the cached arrays change meaning.
CACHE_VERSION = 6
#: ICT files are in centimetres; everything here is in millimetres.
CM_TO_MM = 10.0
#: Geometry names (README tables) that are dropped: real-time shading shells with no true
#: surface, and the iris shells, which sit inside the sclera's cornea and are never seen
#: (the iris is painted on the sclera from :attr:`ICTModel.iris`).
DROPPED_PARTS = ("Lacrimal fluid", "Eye blend", "Eye occlusion", "Eyelashes", "Iris")

#: Triangle part labels (``ICTModel.triangle_parts``).
PART_FACE = 0
"""Narrow face area: forehead to chin, cheek to cheek (the face mask region)."""
PART_FACE_OUTER = 1
"""The rest of the ICT "Face" geometry: temples, sides, under the jaw."""
PART_HEAD = 2
"""Head and neck (scalp, ears, neck)."""
PART_MOUTH = 3
"""Mouth socket (the inside of the cheeks and lips)."""
PART_TEETH = 4
PART_EYE_SOCKET = 5
PART_EYEBALL = 6
PART_TONGUE = 7
"""Gums and tongue."""
PART_NAMES = ("face", "face_outer", "head", "mouth", "teeth", "eye_socket", "eyeball", "tongue")

_ROW = re.compile(r"^\|\s*#\d+\s*\|\s*([^|]+?)\s*\|\s*\[(\d+):(\d+)\]\s*\|\s*\[(\d+):(\d+)\]")


@dataclass
class ICTModel:
    """The parts of the ICT FaceKit model the renderer uses (dropped shells removed)."""

    folder: str
    """The folder it was read from."""
    neutral: np.ndarray
    """``N x 3`` float32 neutral vertices, mm, model frame (x to the subject's left, y up, z out of the face)."""
    identity_basis: np.ndarray
    """``K x N x 3`` float32 identity mode offsets in mm per unit coefficient."""
    expression_basis: np.ndarray
    """``E x N x 3`` float32 blendshape offsets in mm at weight 1."""
    expression_names: tuple[str, ...]
    """Blendshape names, in ``expression_basis`` order."""
    triangles: np.ndarray
    """``T x 3`` int32 vertex indices (quads split in two), counter-clockwise seen from outside."""
    triangle_uvs: np.ndarray
    """``T x 3 x 2`` float32 texture coordinates of each triangle corner (v up, [0, 1])."""
    triangle_parts: np.ndarray
    """``T`` int8 part labels (``PART_*``)."""
    landmarks: np.ndarray
    """``68`` int32 vertex indices of the iBUG/Multi-PIE 68 landmarks."""
    iris: np.ndarray
    """``N`` float32: angular distance from the iris centre / iris radius on eyeball vertices (inf elsewhere)."""
    vertex_ao: np.ndarray
    """``N`` float32 ambient occlusion of the neutral mesh (1 = open sky)."""

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])


def cache_dir() -> Path:
    """Where derived caches go: ``$FACENORMALS3D_CACHE`` or ``~/.cache/facenormals3d``."""
    env = os.environ.get("FACENORMALS3D_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "facenormals3d"


def load_ict(folder: str | Path, use_cache: bool = True) -> ICTModel:
    """Load (and on first use parse and cache) the ICT FaceKit model in ``folder``.

    Raises :class:`InputError` naming the missing or malformed file.
    """
    files = _model_files(Path(folder))
    key = _cache_key(Path(folder), files)
    path = cache_dir() / f"ict-{key}.npz"
    if use_cache and path.is_file():
        try:
            return _from_npz(path, str(folder))
        except (OSError, ValueError, KeyError):
            pass  # a stale or truncated cache is rebuilt below
    model = _parse(Path(folder), files)
    if use_cache:
        from facenormals3d.outputs import atomic_write

        arrays = {k: v for k, v in model.__dict__.items() if isinstance(v, np.ndarray)}
        arrays["expression_names"] = np.array(model.expression_names)
        atomic_write(path, lambda p: np.savez(p, **arrays))
    return model


def _from_npz(path: Path, folder: str) -> ICTModel:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    names = tuple(str(s) for s in data.pop("expression_names"))
    return ICTModel(folder=folder, expression_names=names, **data)


def _model_files(folder: Path) -> dict:
    """Check the layout; return the paths of every file to read."""
    if not folder.is_dir():
        raise InputError(folder, "ICT FaceKit folder not found (expected the ICT-FaceKit repository root)")
    fx = folder / "FaceXModel"
    if not fx.is_dir():
        raise InputError(folder, "not an ICT FaceKit folder: FaceXModel/ is missing")
    readme = folder / "README.md"
    neutral = fx / "generic_neutral_mesh.obj"
    indices = fx / "vertex_indices.json"
    for p in (readme, neutral, indices):
        if not p.is_file():
            raise InputError(p, "missing from the ICT FaceKit folder")
    identities = []
    while (fx / f"identity{len(identities):03d}.obj").is_file():
        identities.append(fx / f"identity{len(identities):03d}.obj")
    if not identities:
        raise InputError(fx / "identity000.obj", "missing: no identity shape modes (identityNNN.obj)")
    try:
        meta = json.loads(indices.read_text())
        names = [str(n) for n in meta["expressions"]]
        lms = [int(i) for i in meta["idx_to_landmark_verts"]]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(indices, f"malformed: needs 'expressions' and 'idx_to_landmark_verts' ({err})") from None
    if len(lms) != 68:
        raise InputError(indices, f"'idx_to_landmark_verts' must list 68 vertices, has {len(lms)}")
    expressions = [fx / f"{n}.obj" for n in names]
    for p in expressions:
        if not p.is_file():
            raise InputError(p, "missing: expression blendshape listed in vertex_indices.json")
    return {"readme": readme, "neutral": neutral, "indices": indices, "identities": identities,
            "expressions": expressions, "expression_names": names, "landmarks": lms}


def _cache_key(folder: Path, files: dict) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}|{folder.resolve()}".encode())
    for p in [files["readme"], files["neutral"], files["indices"], *files["identities"], *files["expressions"]]:
        st = p.stat()
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read_obj_vertices(path: Path) -> np.ndarray:
    """``N x 3`` float64 of the ``v`` lines of an OBJ file."""
    try:
        data = path.read_bytes()
        rows = [ln[2:] for ln in data.split(b"\n") if ln.startswith(b"v ")]
        arr = np.array(b" ".join(rows).split(), dtype=np.float64)
        return arr.reshape(len(rows), -1)[:, :3]
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read OBJ vertices ({err})") from None


def _read_obj_topology(path: Path) -> tuple[np.ndarray, list[list[int]], list[list[int]]]:
    """Texture coordinates ``M x 2`` and per-polygon vertex / texture index lists (0-based)."""
    uvs, polys, poly_uvs = [], [], []
    for ln in path.read_text().splitlines():
        if ln.startswith("vt "):
            uvs.append(ln.split()[1:3])
        elif ln.startswith("f "):
            corners = [c.split("/") for c in ln.split()[1:]]
            polys.append([int(c[0]) - 1 for c in corners])
            poly_uvs.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
    if not polys:
        raise InputError(path, "no faces (f lines) in the neutral mesh")
    return np.array(uvs, dtype=np.float64).reshape(-1, 2), polys, poly_uvs


def read_part_ranges(readme: Path) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """Geometry name -> ((first vertex, last vertex), (first polygon, last polygon)), inclusive."""
    ranges = {}
    for ln in readme.read_text(errors="replace").splitlines():
        m = _ROW.match(ln.strip())
        if m:
            a, b, c, d = (int(g) for g in m.groups()[1:])
            ranges.setdefault(m.group(1), ((a, b), (c, d)))
    if "Face" not in ranges:
        raise InputError(readme, "no topology table with a 'Face' row ('| #0 | Face | [a:b] | [c:d] |')")
    return ranges


def _parse(folder: Path, files: dict) -> ICTModel:
    neutral = _read_obj_vertices(files["neutral"])
    n = len(neutral)
    uvs, polys, poly_uvs = _read_obj_topology(files["neutral"])
    ranges = read_part_ranges(files["readme"])
    labels = np.full(len(polys), -1, dtype=np.int8)
    part_of = {"Face": PART_FACE_OUTER, "Head and Neck": PART_HEAD, "Mouth socket": PART_MOUTH,
               "Gums and tongue": PART_TONGUE, "Teeth": PART_TEETH, "Eye socket left": PART_EYE_SOCKET,
               "Eye socket right": PART_EYE_SOCKET, "Eyeball left": PART_EYEBALL,
               "Eyeball right": PART_EYEBALL}
    for name, part in part_of.items():
        if name in ranges:
            c, d = ranges[name][1]
            labels[c:d + 1] = part
    narrow = ranges.get("Narrow face area", ranges["Face"])[1]
    labels[narrow[0]:narrow[1] + 1] = PART_FACE
    for name, (_, (c, d)) in ranges.items():
        if any(name.startswith(drop) for drop in DROPPED_PARTS):
            labels[c:d + 1] = -1
    # Split polygons into a fan of triangles, keeping each triangle's part label.
    tris, tri_uv, tri_part = [], [], []
    for poly, puv, lab in zip(polys, poly_uvs, labels):
        if lab < 0:
            continue
        for k in range(1, len(poly) - 1):
            tris.append((poly[0], poly[k], poly[k + 1]))
            tri_uv.append((puv[0], puv[k], puv[k + 1]))
            tri_part.append(lab)
    tris = np.array(tris, dtype=np.int64)
    tri_uv = np.array(tri_uv, dtype=np.int64)
    if tris.max() >= n or (len(uvs) and tri_uv.max() >= len(uvs)):
        raise InputError(files["neutral"], "a face refers to a vertex or texture coordinate that does not exist")
    landmarks = np.array(files["landmarks"], dtype=np.int64)
    if landmarks.max() >= n or landmarks.min() < 0:
        raise InputError(files["indices"], f"landmark vertex index out of range (mesh has {n} vertices)")
    # Keep only the vertices the kept triangles (and landmarks) use.
    keep = np.unique(np.concatenate([tris.ravel(), landmarks]))
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))

    def offsets(paths: list[Path]) -> np.ndarray:
        out = np.empty((len(paths), len(keep), 3), dtype=np.float32)
        for i, p in enumerate(paths):
            v = _read_obj_vertices(p)
            if len(v) != n:
                raise InputError(p, f"has {len(v)} vertices, the neutral mesh has {n}")
            out[i] = (v[keep] - neutral[keep]) * CM_TO_MM
        return out

    uv_table = uvs if len(uvs) else np.zeros((1, 2))
    model = ICTModel(
        folder=str(folder),
        neutral=(neutral[keep] * CM_TO_MM).astype(np.float32),
        identity_basis=offsets(files["identities"]),
        expression_basis=offsets(files["expressions"]),
        expression_names=tuple(files["expression_names"]),
        triangles=remap[tris].astype(np.int32),
        triangle_uvs=uv_table[np.maximum(tri_uv, 0)].astype(np.float32),
        triangle_parts=np.array(tri_part, dtype=np.int8),
        landmarks=remap[landmarks].astype(np.int32),
        iris=np.full(len(keep), np.inf, dtype=np.float32),
        vertex_ao=np.ones(len(keep), dtype=np.float32),
    )
    model.iris = _iris_coordinate(model, ranges, remap)
    from facenormals3d.data.render import vertex_ambient_occlusion

    ao = vertex_ambient_occlusion(model.neutral, model.triangles)
    ao[np.isfinite(model.iris)] = EYEBALL_AO
    # The eye sockets are closed pockets (AO ~ 0); only their rims show, at the eye corners.
    socket = np.unique(model.triangles[model.triangle_parts == PART_EYE_SOCKET])
    ao[socket] = np.maximum(ao[socket], 0.35)
    model.vertex_ao = ao
    return model


#: Radius of the human iris (mm); its angular size follows from the eyeball's radius.
IRIS_RADIUS_MM = 5.9
#: Ambient occlusion given to eyeball vertices: the precomputed value is meaningless there
#: (the model's sclera and iris are nested shells that occlude each other).
EYEBALL_AO = 0.55


def _iris_coordinate(model: ICTModel, ranges: dict, remap: np.ndarray) -> np.ndarray:
    """Per vertex: angle from the eye's axis over the iris' angular radius, on each eyeball.

    The axis runs from the centre of the eyeball's box to its most forward (+z) vertex
    (the cornea's apex at rest); the per-vertex value then moves with the eye when it
    looks around. Without eyeball ranges in the README every vertex gets inf (no eyes).
    """
    out = np.full(len(model.neutral), np.inf, dtype=np.float32)
    for side in ("left", "right"):
        name = f"Sclera {side}" if f"Sclera {side}" in ranges else f"Eyeball {side}"
        if name not in ranges or f"Eyeball {side}" not in ranges:
            continue
        (a, b), _ = ranges[f"Eyeball {side}"]
        (sa, sb), _ = ranges[name]
        ball = remap[a:b + 1]
        ball = ball[ball >= 0]
        sclera = remap[sa:sb + 1]
        sclera = sclera[sclera >= 0]
        if len(ball) == 0 or len(sclera) == 0:
            continue
        pts = model.neutral[sclera].astype(np.float64)
        centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
        axis = pts[np.argmax(pts[:, 2])] - centre
        axis /= np.linalg.norm(axis)
        radius = float(np.median(np.linalg.norm(pts - centre, axis=1)))
        half_angle = float(np.arcsin(min(IRIS_RADIUS_MM / max(radius, 1e-6), 0.95)))
        d = model.neutral[ball] - centre
        cos = d @ axis / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        out[ball] = np.arccos(np.clip(cos, -1.0, 1.0)) / half_angle
    return out

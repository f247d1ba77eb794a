"""Reading facenormals3d's OBJ + MTL output and converting it to Blender's frame (no bpy).

Why our own reader instead of ``bpy.ops.wm.obj_import``: the built-in importer moved
(``import_scene.obj`` until Blender 3.x, ``wm.obj_import`` since 3.2/4.0) and changed its
axis options, it imports straight into the scene (so a failure halfway leaves objects
behind, and we want to read everything before touching the scene), and it cannot be
tested without Blender. The files we read are written by one known exporter, so a small
strict reader is enough, and every error it raises names the file and the line.

Frames. facenormals3d meshes are right-handed, y up, z towards the camera, in
millimetres (the face looks along +z). Blender is right-handed and z up with -Y being
"front" (a default front view looks along +Y at the -Y side of an object), so we map
``(x, y, z) -> (x, -z, y)``: a proper rotation (+90 degrees about x), which keeps the
face winding and makes the face look along Blender's -Y.

This module is stdlib only so it can be unit-tested outside Blender; it must not
import other modules of the add-on (the tests load it by file path).
"""

from __future__ import annotations

import os
from array import array
from itertools import chain
from dataclasses import dataclass, field

#: Millimetres in one metre (meshes are in mm, Blender's unit scale is metres per unit).
MM_PER_M = 1000.0


class ObjError(ValueError):
    """An OBJ/MTL file is unreadable; ``str(err)`` is one line naming the file and reason."""


@dataclass
class ObjMesh:
    """One polygon mesh as read from an OBJ file, in the file's own frame and units."""

    positions: list = field(default_factory=list)
    """Vertex positions, a list of (x, y, z) float tuples (``v`` lines)."""
    uvs: list = field(default_factory=list)
    """Texture coordinates, a list of (u, v) float tuples (``vt`` lines); v = 0 at the bottom."""
    normals: list = field(default_factory=list)
    """Normals, a list of (x, y, z) float tuples (``vn`` lines)."""
    faces: list = field(default_factory=list)
    """Polygons: each a tuple of 0-based vertex indices, counter-clockwise seen from the front."""
    face_uvs: list = field(default_factory=list)
    """Per polygon, a tuple of 0-based ``uvs`` indices (same length as the polygon) or None."""
    face_normals: list = field(default_factory=list)
    """Per polygon, a tuple of 0-based ``normals`` indices or None."""
    mtllib: str = ""
    """The ``mtllib`` file name as written (relative to the OBJ's folder), or ''."""
    material: str = ""
    """The first ``usemtl`` name, or ''."""


def _index(token: str, count: int, kind: str, where: str) -> int:
    """OBJ index (1-based, or negative = relative to the end) -> 0-based index."""
    try:
        k = int(token)
    except ValueError:
        raise ObjError(f"{where}: bad {kind} index {token!r}") from None
    k = k - 1 if k > 0 else count + k
    if not 0 <= k < count:
        raise ObjError(f"{where}: {kind} index {token} out of range (have {count})")
    return k


def parse_obj(text: str, source: str = "<obj>") -> ObjMesh:
    """Parse OBJ text (``v``, ``vt``, ``vn``, ``f`` with ``v``, ``v/vt``, ``v//vn`` or
    ``v/vt/vn`` corners, ``mtllib``, ``usemtl``; other statements are ignored).

    Polygons that repeat a vertex (degenerate) are dropped. Raises :class:`ObjError`
    naming ``source`` and the line for malformed input, and when there is no polygon.
    """
    mesh = ObjMesh()
    # Faces are collected and added in bulk (see _add_faces) before the next v/vt/vn
    # line, so relative (negative) indices still count what was defined before them.
    pending = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        parts = raw.split("#", 1)[0].split()
        if not parts:
            continue
        tag, args = parts[0], parts[1:]
        if tag == "f":
            pending.append((lineno, args))
            continue
        if pending and tag in ("v", "vt", "vn"):
            _add_faces(mesh, pending, source)
        where = f"{source}:{lineno}"
        try:
            if tag == "v":
                mesh.positions.append((float(args[0]), float(args[1]), float(args[2])))
            elif tag == "vt":
                mesh.uvs.append((float(args[0]), float(args[1]) if len(args) > 1 else 0.0))
            elif tag == "vn":
                mesh.normals.append((float(args[0]), float(args[1]), float(args[2])))
            elif tag == "mtllib" and not mesh.mtllib:
                mesh.mtllib = " ".join(args)
            elif tag == "usemtl" and not mesh.material:
                mesh.material = " ".join(args)
        except (IndexError, ValueError) as err:
            if isinstance(err, ObjError):
                raise
            raise ObjError(f"{where}: malformed {tag!r} statement: {raw.strip()[:60]!r}") from None
    _add_faces(mesh, pending, source)
    if not mesh.faces:
        raise ObjError(f"{source}: no polygons")
    return mesh


def _add_faces(mesh: ObjMesh, pending: list, source: str) -> None:
    """Add the collected ``(lineno, corners)`` faces: all at once when they are the common
    case (triangles, every corner ``v/vt/vn`` with positive indices in range: what the
    tool writes, ~3x faster), else one by one with errors naming the line."""
    if not pending:
        return
    try:
        done = _add_triangles_at_once(mesh, pending)
    except ValueError:  # a corner that is not a plain integer: the strict path says where
        done = False
    if not done:
        for lineno, corners in pending:
            _add_face(mesh, corners, f"{source}:{lineno}")
    pending.clear()


def _add_triangles_at_once(mesh: ObjMesh, pending: list) -> bool:
    n = len(pending)
    if any(len(corners) != 3 for _, corners in pending):
        return False
    fields = "/".join(chain.from_iterable(corners for _, corners in pending)).split("/")
    if len(fields) != 9 * n:
        return False
    idx = list(map(int, fields))
    vi, ti, ni = idx[0::3], idx[1::3], idx[2::3]
    if (min(idx) < 1 or max(vi) > len(mesh.positions) or max(ti) > len(mesh.uvs)
            or max(ni) > len(mesh.normals)):
        return False
    rows = [r for r in zip(vi[0::3], vi[1::3], vi[2::3], ti[0::3], ti[1::3], ti[2::3],
                           ni[0::3], ni[1::3], ni[2::3])
            if r[0] != r[1] != r[2] != r[0]]  # degenerate triangles are dropped
    mesh.faces.extend([(r[0] - 1, r[1] - 1, r[2] - 1) for r in rows])
    mesh.face_uvs.extend([(r[3] - 1, r[4] - 1, r[5] - 1) for r in rows])
    mesh.face_normals.extend([(r[6] - 1, r[7] - 1, r[8] - 1) for r in rows])
    return True


def _add_face(mesh: ObjMesh, corners: list, where: str) -> None:
    if len(corners) < 3:
        raise ObjError(f"{where}: a face needs at least 3 corners, got {len(corners)}")
    vs, ts, ns = [], [], []
    for corner in corners:
        fields = corner.split("/")
        vs.append(_index(fields[0], len(mesh.positions), "vertex", where))
        if len(fields) > 1 and fields[1]:
            ts.append(_index(fields[1], len(mesh.uvs), "texture", where))
        if len(fields) > 2 and fields[2]:
            ns.append(_index(fields[2], len(mesh.normals), "normal", where))
    if len(set(vs)) < len(vs):
        return
    mesh.faces.append(tuple(vs))
    mesh.face_uvs.append(tuple(ts) if len(ts) == len(vs) else None)
    mesh.face_normals.append(tuple(ns) if len(ns) == len(vs) else None)


def _mtl_blocks(text: str) -> dict:
    """``{material: {statement: file name}}`` of the texture-map statements (see
    :func:`parse_mtl_maps`) of each material in MTL text, in order; statements before any
    ``newmtl`` go under ``None``. A statement's first occurrence in a material wins."""
    blocks, current = {}, None
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "newmtl":
            current = " ".join(parts[1:])
            blocks.setdefault(current, {})
        elif parts[0] in _MAP_STATEMENTS and len(parts) > 1:
            key = "map_Bump" if parts[0] == "bump" else parts[0]
            blocks.setdefault(current, {}).setdefault(key, _strip_map_options(parts[1:]))
    return blocks


def parse_mtl_maps(text: str, material: str = "") -> dict:
    """The texture maps of ``material`` (or of the first material, when ``material`` is ''
    or not defined) in MTL text: ``{statement: file name}`` for ``map_Kd`` (diffuse
    colour), ``norm`` (tangent-space normal map) and ``map_Bump`` / ``bump``. Options such
    as ``-s 1 1 1`` or ``-bm 1`` before a name are skipped."""
    blocks = _mtl_blocks(text)
    if material in blocks:
        return blocks[material]
    return next((maps for maps in blocks.values() if maps), {})


_MAP_STATEMENTS = ("map_Kd", "norm", "map_Bump", "bump")


def parse_mtl_texture(text: str, material: str = "") -> str:
    """The ``map_Kd`` file name of ``material`` (or of the first material that has one)
    in MTL text, '' if none. Options such as ``-s 1 1 1`` before the name are skipped."""
    blocks = _mtl_blocks(text)
    own = blocks.get(material, {}).get("map_Kd") if material else None
    return own or next((maps["map_Kd"] for maps in blocks.values() if "map_Kd" in maps), "")


def _strip_map_options(args: list) -> str:
    # Options start with '-' and take 1-3 numeric/word arguments; the file name is what
    # follows the last option. Our exporter writes none, other tools write '-s', '-bm', ...
    k = 0
    while k < len(args) and args[k].startswith("-"):
        k += 1
        while k < len(args) - 1 and not args[k].startswith("-") and _is_number(args[k]):
            k += 1
    return " ".join(args[k:]) if k < len(args) else args[-1]


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def read_obj_with_texture(obj_path: str) -> tuple:
    """Read ``obj_path`` and find its diffuse texture through the MTL file.

    Returns ``(mesh, texture_path)``; ``texture_path`` is absolute, or '' when the OBJ
    names no MTL/texture. Raises :class:`ObjError` for unreadable files and for a
    texture that the MTL names but that does not exist.
    """
    mesh, maps = read_obj_with_maps(obj_path)
    return mesh, maps.get("map_Kd", "")


def read_obj_with_maps(obj_path: str) -> tuple:
    """Read ``obj_path`` and the texture maps its MTL file names.

    Returns ``(mesh, maps)``: ``maps`` holds absolute paths under the keys of
    :func:`parse_mtl_maps` (``map_Kd``, ``norm``, ``map_Bump``) that the MTL names; it
    is empty when the OBJ names no MTL. Raises :class:`ObjError` for unreadable files
    and for a map that the MTL names but that does not exist.
    """
    folder = os.path.dirname(os.path.abspath(obj_path))
    try:
        with open(obj_path, encoding="utf-8", errors="replace") as fh:
            mesh = parse_obj(fh.read(), os.path.basename(obj_path))
    except OSError as err:
        raise ObjError(f"{obj_path}: cannot read: {err.strerror or err}") from None
    if not mesh.mtllib:
        return mesh, {}
    mtl_path = os.path.join(folder, mesh.mtllib)
    try:
        with open(mtl_path, encoding="utf-8", errors="replace") as fh:
            names = parse_mtl_maps(fh.read(), mesh.material)
    except OSError as err:
        raise ObjError(f"{mtl_path}: cannot read: {err.strerror or err}") from None
    maps = {}
    for key, name in names.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            what = "texture" if key == "map_Kd" else "normal map"
            raise ObjError(f"{mtl_path}: {what} {name!r} not found")
        maps[key] = path
    return mesh, maps


def to_blender_axes(points: list) -> list:
    """Map (x, y, z) tuples from y-up/z-to-camera to Blender's z-up: ``(x, -z, y)``."""
    return [(x, -z, y) for x, y, z in points]


def mm_to_scene_factor(unit_system: str, scale_length: float) -> float:
    """Blender units per millimetre for a scene's unit settings.

    In Blender one unit is ``scale_length`` metres when the unit system is METRIC or
    IMPERIAL (``length_unit`` only changes how lengths are displayed); with system NONE
    a unit is conventionally a metre. So a default metric scene (scale 1) gets 0.001 and
    a millimetre scene (scale 0.001) keeps the millimetre values.
    """
    if unit_system == "NONE" or not scale_length or scale_length <= 0:
        return 1.0 / MM_PER_M
    return 1.0 / (MM_PER_M * scale_length)


@dataclass
class BlenderMeshData:
    """A mesh ready for ``Mesh.from_pydata`` + per-loop attributes, in Blender's frame."""

    vertices: list
    """(x, y, z) in Blender units, z up, the face looking along -Y, centred on its box."""
    polygons: list
    """Tuples of 0-based vertex indices, counter-clockwise seen from the front."""
    loop_uvs: list
    """Flat [u0, v0, u1, v1, ...] per polygon corner in polygon order ([] without UVs)."""
    loop_normals: list
    """(x, y, z) unit normal per polygon corner in Blender's frame ([] without normals)."""
    offset: tuple
    """The centre that was subtracted from the vertices, in Blender units."""


def to_blender_mesh(mesh: ObjMesh, factor: float, centre: bool = True) -> BlenderMeshData:
    """Convert an :class:`ObjMesh` (y up, mm) to Blender's frame scaled by ``factor``.

    Per-corner UVs/normals are filled only when every polygon has them (our exporter
    writes them for all or none). With ``centre`` the vertices are shifted so the
    bounding-box centre is at the origin; the shift is returned in ``offset``.
    """
    verts = [(x * factor, y * factor, z * factor) for x, y, z in to_blender_axes(mesh.positions)]
    offset = (0.0, 0.0, 0.0)
    if centre and verts:
        lo = [min(v[i] for v in verts) for i in range(3)]
        hi = [max(v[i] for v in verts) for i in range(3)]
        offset = tuple((a + b) / 2 for a, b in zip(lo, hi))
        verts = [(x - offset[0], y - offset[1], z - offset[2]) for x, y, z in verts]
    loop_uvs, loop_normals = [], []
    if mesh.uvs and all(f is not None for f in mesh.face_uvs):
        uvs = mesh.uvs
        loop_uvs = [c for corners in mesh.face_uvs for t in corners for c in uvs[t]]
    if mesh.normals and all(f is not None for f in mesh.face_normals):
        units = [_unit(n) for n in to_blender_axes(mesh.normals)]
        loop_normals = [units[n] for corners in mesh.face_normals for n in corners]
    return BlenderMeshData(verts, list(mesh.faces), loop_uvs, loop_normals, offset)


def _unit(v: tuple) -> tuple:
    length = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) ** 0.5
    return (v[0] / length, v[1] / length, v[2] / length) if length > 0 else (0.0, 0.0, 1.0)


def points_to_blender(points: list, factor: float, offset: tuple = (0.0, 0.0, 0.0)) -> list:
    """(x, y, z) points in the tool's frame (mm) -> Blender's frame scaled by ``factor``
    and shifted by ``-offset`` (the ``offset`` of the mesh they belong to), so they land
    on that mesh once both are in Blender."""
    ox, oy, oz = offset
    return [(x * factor - ox, -z * factor - oy, y * factor - oz) for x, y, z in points]


def flat_coords(vertices: list) -> array:
    """[(x, y, z), ...] -> array('f', [x0, y0, z0, x1, ...]) for ``foreach_set('co', ...)``."""
    flat = array("f", bytes(4 * 3 * len(vertices)))
    flat[0::3] = array("f", [v[0] for v in vertices])
    flat[1::3] = array("f", [v[1] for v in vertices])
    flat[2::3] = array("f", [v[2] for v in vertices])
    return flat


def blender_matrix(factor: float, offset: tuple = (0.0, 0.0, 0.0)) -> tuple:
    """The 4x4 matrix (rows) taking a point in the tool's frame (mm) to where
    :func:`to_blender_mesh` puts it: turned ``(x, y, z) -> (x, -z, y)``, scaled by
    ``factor``, shifted by ``-offset``. Applying it with ``Mesh.transform`` converts a
    whole mesh and its shape keys in C instead of Python."""
    ox, oy, oz = offset
    return ((factor, 0.0, 0.0, -ox),
            (0.0, 0.0, -factor, -oy),
            (0.0, factor, 0.0, -oz),
            (0.0, 0.0, 0.0, 1.0))


def shape_key_coords(basis: array, deltas: array, key: int) -> array:
    """Absolute vertex positions of shape key ``key``, in the tool's frame and units.

    ``basis`` holds the mesh's vertices flat (x, y, z per vertex, mm, as in mesh.obj);
    ``deltas`` the flat (K, V, 3) per-vertex offsets of blendshapes.npz, same frame,
    units and vertex order. Key ``key`` is basis + deltas[key]; :func:`blender_matrix`
    then takes basis and keys alike to Blender's frame.
    """
    n = len(basis)
    d = deltas[key * n:(key + 1) * n]
    if len(d) != n:
        raise ValueError(f"shape key {key}: deltas hold {len(deltas)} values, not enough for "
                         f"{key + 1} keys of {n // 3} vertices")
    return array("f", [b + x for b, x in zip(basis, d)])

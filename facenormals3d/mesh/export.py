"""Writing :class:`~facenormals3d.mesh.build.FaceMesh` for mesh tools, and converters.

Every file goes through :func:`facenormals3d.outputs.atomic_write`, so a crash leaves
either the previous file or the complete new one. Coordinates are written as stored:
millimetres, y up, z towards the camera (Blender's OBJ importer maps OBJ +y to its +z
"up" by default, so the face stands upright there).

* :func:`write_obj` - ``NAME.obj`` + ``NAME.mtl`` + ``NAME_texture.png``: positions,
  ``vt`` (v up), ``vn``, one material whose ``map_Kd`` names the PNG by relative file name,
  so Blender and MeshLab open it textured. The OBJ is written last.
* :func:`write_ply` - binary little-endian PLY: positions, normals, optional RGB.
* :func:`write_obj_plain` - positions and faces only, for evaluation tools.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from facenormals3d.errors import InputError
from facenormals3d.mesh.build import FaceMesh
from facenormals3d.outputs import atomic_write

MATERIAL = "face"


def _check_mesh(mesh: FaceMesh) -> None:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise InputError("mesh", f"vertices must be a non-empty V x 3 array, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise InputError("mesh", f"faces must be a non-empty F x 3 array, got {f.shape}")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError("mesh", "face indices out of range")
    if not np.all(np.isfinite(v)):
        raise InputError("mesh", "non-finite vertex positions")
    for name, arr, cols in (("uvs", mesh.uvs, 2), ("vertex_normals", mesh.vertex_normals, 3)):
        if np.shape(arr) != (len(v), cols):
            raise InputError("mesh", f"{name} must be {len(v)} x {cols}, got {np.shape(arr)}")
    if mesh.corner_uvs is not None and np.shape(mesh.corner_uvs) != (len(f), 3, 2):
        raise InputError("mesh", f"corner_uvs must be {len(f)} x 3 x 2, got {np.shape(mesh.corner_uvs)}")


def _rows(fmt: str, arr: np.ndarray) -> str:
    """Format an ``N x k`` array one line per row (fast: one % over a flat tuple)."""
    if len(arr) == 0:
        return ""
    return (fmt * len(arr)) % tuple(np.asarray(arr).ravel().tolist())


def obj_text(mesh: FaceMesh, *, mtllib: str | None = None, plain: bool = False) -> str:
    """The OBJ file as a string (1-based indices; ``v/vt/vn`` share the vertex index)."""
    lines = ["# facenormals3d mesh: millimetres, y up, z towards the camera\n"]
    if mtllib and not plain:
        lines.append(f"mtllib {mtllib}\n")
    lines.append(_rows("v %.5f %.5f %.5f\n", mesh.vertices))
    f = np.asarray(mesh.faces, dtype=np.int64) + 1
    if plain:
        lines.append(_rows("f %d %d %d\n", f))
        return "".join(lines)
    if mesh.corner_uvs is None:
        lines.append(_rows("vt %.6f %.6f\n", mesh.uvs))
        vt_text, face_text = "", _face_rows(f, f)
    else:
        # A face model's meshes share faces and UVs: their text is made once per process.
        vt_text, face_text = _corner_uv_text(np.asarray(mesh.faces), np.asarray(mesh.corner_uvs))
    lines.append(vt_text)
    lines.append(_rows("vn %.5f %.5f %.5f\n", mesh.vertex_normals))
    if mtllib:
        lines.append(f"usemtl {MATERIAL}\n")
    lines.append(face_text)
    return "".join(lines)


def _face_rows(f: np.ndarray, vt: np.ndarray) -> str:
    """``f v/vt/vn`` lines from 1-based ``F x 3`` vertex and texture-coordinate indices."""
    return _rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.stack([f, vt, f], axis=2).reshape(len(f), 9))


#: Texts of recent (faces, corner UVs) pairs, keyed by a digest of their bytes.
_TOPOLOGY_TEXT: "OrderedDict[bytes, tuple[str, str]]" = OrderedDict()
_TOPOLOGY_LOCK = threading.Lock()
_TOPOLOGY_KEEP = 4


def _corner_uv_text(faces: np.ndarray, corner_uvs: np.ndarray) -> tuple[str, str]:
    """The ``vt`` lines (one per distinct corner UV) and the ``f`` lines of a mesh with
    per-corner UVs; faces index the UVs separately from the vertices."""
    faces = np.ascontiguousarray(faces, np.int64)
    corner_uvs = np.ascontiguousarray(corner_uvs, np.float64)
    key = hashlib.blake2b(faces.tobytes() + b"|" + corner_uvs.tobytes(), digest_size=20).digest()
    with _TOPOLOGY_LOCK:
        if key in _TOPOLOGY_TEXT:
            _TOPOLOGY_TEXT.move_to_end(key)
            return _TOPOLOGY_TEXT[key]
    uv, inverse = np.unique(np.round(corner_uvs.reshape(-1, 2), 6), axis=0, return_inverse=True)
    text = (_rows("vt %.6f %.6f\n", uv), _face_rows(faces + 1, inverse.reshape(-1, 3) + 1))
    with _TOPOLOGY_LOCK:
        _TOPOLOGY_TEXT[key] = text
        while len(_TOPOLOGY_TEXT) > _TOPOLOGY_KEEP:
            _TOPOLOGY_TEXT.popitem(last=False)
    return text


def write_obj(mesh: FaceMesh, path: str | Path, texture_name: str | None = None,
              normal_map_name: str | None = None, diffuse_name: str | None = None) -> Path:
    """Write ``path`` (.obj) with its ``.mtl`` and texture PNG beside it.

    The texture is named ``texture_name`` (default ``NAME_texture.png``). Without a
    texture only the OBJ (with ``vt``/``vn``, no material) is written. ``normal_map_name``
    names an existing tangent-space normal map beside it for the material (``norm`` and
    ``map_Bump -bm 1``). ``diffuse_name`` names an existing image beside it for ``map_Kd``
    instead of the texture (e.g. a de-lit albedo; the texture is still written). Returns the
    OBJ path.
    """
    _check_mesh(mesh)
    path = Path(path).with_suffix(".obj")
    mtllib = None
    if mesh.texture is not None:
        from facenormals3d.conventions import write_png

        png = path.with_name(texture_name or f"{path.stem}_texture.png")
        mtl = path.with_suffix(".mtl")
        atomic_write(png, lambda p: write_png(p, np.asarray(mesh.texture, np.uint8)))
        material = (f"newmtl {MATERIAL}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\n"
                    f"Ks 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd {diffuse_name or png.name}\n")
        if normal_map_name:
            material += f"norm {normal_map_name}\nmap_Bump -bm 1 {normal_map_name}\n"
        atomic_write(mtl, lambda p: p.write_text(material))
        mtllib = mtl.name
    text = obj_text(mesh, mtllib=mtllib)
    return atomic_write(path, lambda p: p.write_text(text))


def write_obj_plain(mesh: FaceMesh, path: str | Path) -> Path:
    """Write positions and triangles only (no uv, normals, material, colours)."""
    _check_mesh(mesh)
    text = obj_text(mesh, plain=True)
    return atomic_write(Path(path), lambda p: p.write_text(text))


def write_ply(mesh: FaceMesh, path: str | Path, colors: bool = True) -> Path:
    """Binary little-endian PLY with per-vertex normals and (if available and ``colors``) RGB."""
    _check_mesh(mesh)
    with_rgb = colors and mesh.colors is not None
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if with_rgb:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(mesh.n_vertices, dtype=fields)
    for i, name in enumerate("xyz"):
        vert[name] = mesh.vertices[:, i]
        vert["n" + name] = mesh.vertex_normals[:, i]
    if with_rgb:
        for i, name in enumerate(("red", "green", "blue")):
            vert[name] = mesh.colors[:, i]
    face = np.empty(mesh.n_faces, dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = mesh.faces
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0",
              "comment facenormals3d mesh: millimetres, y up, z towards the camera",
              f"element vertex {mesh.n_vertices}"]
    header += [f"property {ply_type[t]} {n}" for n, t in fields]
    header += [f"element face {mesh.n_faces}", "property list uchar int vertex_indices", "end_header"]
    blob = ("\n".join(header) + "\n").encode("ascii") + vert.tobytes() + face.tobytes()
    return atomic_write(Path(path), lambda p: p.write_bytes(blob))


def to_trimesh(mesh: FaceMesh):
    """A ``trimesh.Trimesh`` (not processed) with UV texture or colours.

    Vertex order is kept, except for meshes with per-corner UVs (``corner_uvs``): trimesh
    stores one UV per vertex, so vertices on UV seams are duplicated (glTF does the same).
    """
    import trimesh

    v, f, n, uv = mesh.vertices, mesh.faces, mesh.vertex_normals, mesh.uvs
    if mesh.texture is not None and mesh.corner_uvs is not None:
        keys = np.concatenate([f.reshape(-1, 1).astype(np.float64),
                               np.round(np.asarray(mesh.corner_uvs, np.float64).reshape(-1, 2), 6)], axis=1)
        unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        src = f.reshape(-1)[first]
        v, n, uv, f = v[src], n[src], unique[:, 1:], inverse.reshape(-1, 3)
    visual = None
    if mesh.texture is not None:
        from PIL import Image

        material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(mesh.texture))
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    elif mesh.colors is not None:
        visual = trimesh.visual.ColorVisuals(vertex_colors=mesh.colors)
    return trimesh.Trimesh(vertices=v, faces=f, vertex_normals=n, visual=visual, process=False)


def to_open3d(mesh: FaceMesh):
    """An ``open3d.geometry.TriangleMesh`` with normals, colours and per-corner UVs + texture.

    Built the way Open3D's own OBJ reader builds it: UVs per triangle corner as in the
    file (``v`` up) and the texture image stored upside down, so Open3D's renderers and
    writers treat it like a mesh it loaded itself.
    """
    import open3d as o3d

    out = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)),
                                    o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)))
    out.vertex_normals = o3d.utility.Vector3dVector(mesh.vertex_normals.astype(np.float64))
    if mesh.colors is not None:
        out.vertex_colors = o3d.utility.Vector3dVector(mesh.colors.astype(np.float64) / 255.0)
    if mesh.texture is not None:
        corner_uv = (mesh.uvs[mesh.faces.reshape(-1)] if mesh.corner_uvs is None
                     else np.asarray(mesh.corner_uvs).reshape(-1, 2)).astype(np.float64)
        out.triangle_uvs = o3d.utility.Vector2dVector(corner_uv)
        out.triangle_material_ids = o3d.utility.IntVector(np.zeros(mesh.n_faces, np.int32))
        out.textures = [o3d.geometry.Image(np.ascontiguousarray(mesh.texture[::-1]))]
    return out

"""Reading one photo's ``facenormals3d reconstruct`` output folder (no bpy).

``facenormals3d reconstruct PHOTO -o OUT`` writes ``OUT/<photo-stem>/face_<k>/`` per face.
The add-on reads, per face:

=====================  ==============================================================
``mesh.obj`` + MTL      the mesh (mm, right-handed, y up, z towards the camera) and its
                        maps: ``map_Kd`` (photo texture), ``norm`` / ``map_Bump``
                        (tangent-space normal map)
``albedo.png``          de-lit diffuse albedo; when present it is the base colour
                        instead of the MTL's ``map_Kd``
``normal_map.png``      16-bit tangent-space normal map (OpenGL: +Y green up), used when
                        the MTL names none
``blendshapes.npz``     ``names`` (K,) str and ``deltas`` (K, V, 3) float32 per-vertex
                        offsets in mesh.obj's frame, units and vertex order
``landmarks.npy``       (478, 3) landmarks on the mesh, mediapipe order, mm
``landmarks7.npy``      (7, 3) NoW points, the order of :data:`NOW_POINTS`
=====================  ==============================================================

Every file but ``mesh.obj`` is optional (older tool versions write fewer); a file that is
present but malformed is an error (:class:`ResultError`, one line naming the file), so a
half-understood face is never imported.

This module is stdlib only; it uses the add-on's other pure modules through relative
imports (the tests load the package folder without running its bpy ``__init__``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import npyread, objread

#: The 7 NoW landmarks in landmarks7.npy order (iBUG-68 36, 39, 42, 45, 33, 48, 54), named
#: with Blender's .R/.L convention (the subject's right/left), so rigs can mirror them.
NOW_POINTS = ("eye_outer.R", "eye_inner.R", "eye_inner.L", "eye_outer.L",
              "nose_bottom", "mouth_corner.R", "mouth_corner.L")

ALBEDO_NAME = "albedo.png"
NORMAL_MAP_NAME = "normal_map.png"
BLENDSHAPES_NAME = "blendshapes.npz"
LANDMARKS_NAME = "landmarks.npy"
LANDMARKS7_NAME = "landmarks7.npy"


class ResultError(ValueError):
    """An output folder the add-on cannot import; ``str(err)`` is one line naming the file."""


@dataclass
class FaceResult:
    """Everything the add-on imports for one face, still in the tool's frame (mm, y up)."""

    index: int
    """k of the ``face_<k>`` folder (0 = the largest face)."""
    folder: str
    """The absolute ``face_<k>`` folder."""
    mesh: objread.ObjMesh
    """The mesh as read from ``mesh.obj``."""
    base_color: str = ""
    """Absolute path of the base colour image (albedo.png, else the MTL's map_Kd), or ''."""
    base_color_kind: str = ""
    """'albedo' or 'texture' (which file ``base_color`` is), '' without one."""
    normal_map: str = ""
    """Absolute path of the tangent-space normal map, or ''."""
    shape_key_names: list = field(default_factory=list)
    """Expression names from blendshapes.npz, in file order ([] without the file)."""
    shape_key_deltas: object = None
    """The (K, V, 3) float32 deltas flattened in C order (an ``array('f')``), or None."""
    landmarks: list = field(default_factory=list)
    """(x, y, z) per landmark from landmarks.npy, mm ([] without the file)."""
    landmarks7: list = field(default_factory=list)
    """(x, y, z) per NoW point from landmarks7.npy, mm ([] without the file)."""


def _face_index(name: str) -> int:
    return int(name.split("_", 1)[1]) if re.fullmatch(r"face_\d+", name) else -1


def face_folders(folder: str) -> list:
    """The ``face_<k>`` sub-folders holding a ``mesh.obj``, by face index. ``folder`` may
    also be a single face folder (it holds ``mesh.obj`` itself)."""
    if os.path.isfile(os.path.join(folder, "mesh.obj")):
        return [folder]
    if not os.path.isdir(folder):
        return []
    faces = sorted((k, name) for name in os.listdir(folder) if (k := _face_index(name)) >= 0)
    paths = [os.path.join(folder, name) for _, name in faces]
    return [p for p in paths if os.path.isfile(os.path.join(p, "mesh.obj"))]


def photo_name(folder: str) -> str:
    """The photo's stem for a photo folder (its name) or a face folder (its parent's)."""
    folder = os.path.abspath(folder)
    if _face_index(os.path.basename(folder)) >= 0:
        folder = os.path.dirname(folder)
    return os.path.basename(folder.rstrip(os.sep)) or "face"


def read_photo_folder(folder: str, shape_keys: bool = True, landmarks: bool = True) -> list:
    """Read every face of one photo's output folder: a list of :class:`FaceResult`.

    Raises :class:`ResultError` when the folder holds no face or any file is malformed.
    """
    folders = face_folders(folder)
    if not folders:
        raise ResultError(f"{folder}: no face_<k>/mesh.obj inside (not a facenormals3d "
                          "reconstruct output folder)")
    return [read_face_folder(path, shape_keys, landmarks) for path in folders]


def read_face_folder(folder: str, shape_keys: bool = True, landmarks: bool = True) -> FaceResult:
    """Read one ``face_<k>`` folder (see the module docstring for the files)."""
    folder = os.path.abspath(folder)
    try:
        mesh, maps = objread.read_obj_with_maps(os.path.join(folder, "mesh.obj"))
    except objread.ObjError as err:
        raise ResultError(str(err)) from None
    face = FaceResult(max(_face_index(os.path.basename(folder)), 0), folder, mesh)
    albedo = os.path.join(folder, ALBEDO_NAME)
    if os.path.isfile(albedo):
        face.base_color, face.base_color_kind = albedo, "albedo"
    elif maps.get("map_Kd"):
        face.base_color, face.base_color_kind = maps["map_Kd"], "texture"
    normal_map = maps.get("norm") or maps.get("map_Bump") or os.path.join(folder, NORMAL_MAP_NAME)
    face.normal_map = normal_map if os.path.isfile(normal_map) else ""
    try:
        if shape_keys and os.path.isfile(os.path.join(folder, BLENDSHAPES_NAME)):
            face.shape_key_names, face.shape_key_deltas = read_blendshapes(
                os.path.join(folder, BLENDSHAPES_NAME), len(mesh.positions))
        if landmarks:
            face.landmarks = _read_points(os.path.join(folder, LANDMARKS_NAME), None)
            face.landmarks7 = _read_points(os.path.join(folder, LANDMARKS7_NAME), len(NOW_POINTS))
    except npyread.NpyError as err:
        raise ResultError(str(err)) from None
    return face


def read_blendshapes(path: str, n_vertices: int) -> tuple:
    """``(names, deltas)`` from a blendshapes.npz whose deltas must be (K, n_vertices, 3)
    floats and whose names (K,) strings; deltas come back as a flat ``array('f')``."""
    arrays = npyread.read_npz(path, ("names", "deltas"))
    names, deltas = arrays["names"], arrays["deltas"]
    if not names.dtype.lstrip("<>|=").startswith("U") or len(names.shape) != 1:
        raise ResultError(f"{path}: 'names' must be a 1-D unicode array, got {names.dtype} "
                          f"{names.shape}")
    k = names.shape[0]
    if deltas.shape != (k, n_vertices, 3):
        raise ResultError(f"{path}: 'deltas' has shape {deltas.shape}, expected ({k}, "
                          f"{n_vertices}, 3) for {k} names and the mesh's {n_vertices} vertices")
    data = deltas.data
    if data.typecode != "f":  # float64 deltas are fine too: Blender stores float32 anyway
        from array import array

        if data.typecode != "d":
            raise ResultError(f"{path}: 'deltas' must be float32 or float64, got {deltas.dtype}")
        data = array("f", data)
    if len(set(names.data)) != k or not all(names.data):
        raise ResultError(f"{path}: shape key names must be distinct and non-empty")
    return list(names.data), data


def _read_points(path: str, count: int | None) -> list:
    """(x, y, z) rows of an (N, 3) float .npy file; [] when the file is absent."""
    if not os.path.isfile(path):
        return []
    points = npyread.read_npy(path)
    if (len(points.shape) != 2 or points.shape[1] != 3 or points.dtype.lstrip("<>|=")[:1] != "f"
            or (count is not None and points.shape[0] != count)):
        want = f"({count}, 3)" if count is not None else "(N, 3)"
        raise ResultError(f"{path}: expected a {want} float array, got {points.dtype} "
                          f"{points.shape}")
    return points.rows()

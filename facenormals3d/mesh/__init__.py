"""Mesh stage: depth map -> textured triangle mesh -> OBJ/MTL/PNG, PLY, plain OBJ.

Units and axes: millimetres, right-handed, x to the right of the photo, y up, z towards
the camera (the viewer looks along -z). Faces are counter-clockwise seen from the camera,
so face and vertex normals point towards it. UVs put the face crop on the mesh (u right,
v up, OBJ convention). Torch-free. See :mod:`facenormals3d.mesh.build` for the geometry
and :mod:`facenormals3d.mesh.export` for the file formats.
"""

import importlib

#: Where each public name lives. Loaded on first use (PEP 562), so that importing one
#: submodule (e.g. :mod:`~facenormals3d.mesh.atlas` in the preview process) does not also
#: import the mesh builder and its integration and scipy stack (~0.17 s measured here).
_HOMES = {"FaceMesh": "build", "MeshSettings": "build", "depth_to_mesh": "build", "smooth_outline": "build",
          "with_vertices": "build", "to_open3d": "export", "to_trimesh": "export", "write_obj": "export",
          "write_obj_plain": "export", "write_ply": "export"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)

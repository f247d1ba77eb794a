"""Mesh stage: depth map -> textured triangle mesh -> OBJ/MTL/PNG, PLY, plain OBJ.

Units and axes: millimetres, right-handed, x to the right of the photo, y up, z towards
the camera (the viewer looks along -z). Faces are counter-clockwise seen from the camera,
so face and vertex normals point towards it. UVs put the face crop on the mesh (u right,
v up, OBJ convention). Torch-free. See :mod:`facenormals3d.mesh.build` for the geometry
and :mod:`facenormals3d.mesh.export` for the file formats.
"""

from facenormals3d.mesh.build import FaceMesh, MeshSettings, depth_to_mesh, smooth_outline, with_vertices
from facenormals3d.mesh.export import to_open3d, to_trimesh, write_obj, write_obj_plain, write_ply

__all__ = ["FaceMesh", "MeshSettings", "depth_to_mesh", "to_open3d", "to_trimesh", "write_obj",
           "write_obj_plain", "write_ply", "with_vertices", "smooth_outline"]

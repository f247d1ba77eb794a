"""The Blender add-on's own OBJ reader on the real exporter's output (the ``dome_files``
fixture of tests/conftest.py; the mesh tools' round trips are in tests/mesh/test_mesh_tools.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _objread():
    path = REPO / "plugins" / "blender" / "facenormals3d_blender" / "objread.py"
    spec = importlib.util.spec_from_file_location("_addon_objread_meshtools", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_blender_addon_reader_reads_the_exporter_output(dome_mesh, dome_files):
    objread = _objread()
    mesh, texture = objread.read_obj_with_texture(str(dome_files / "mesh.obj"))
    assert len(mesh.positions) == dome_mesh.n_vertices and len(mesh.faces) == dome_mesh.n_faces
    assert Path(texture).is_file()
    data = objread.to_blender_mesh(mesh, 0.001)
    assert len(data.loop_uvs) == 2 * 3 * dome_mesh.n_faces
    # The face that looked along +z looks along Blender's -Y after the conversion.
    v = np.asarray(data.vertices)
    tri = v[np.asarray(data.polygons)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).sum(0)
    normals /= np.linalg.norm(normals)
    assert normals[1] < -0.9

"""Mesh tools read what facenormals3d writes: trimesh / Open3D round trips of every exported
format, the OBJ + MTL + PNG triple opening with its texture (what MeshLab does too), and the
in-memory adapters (the ``dome_mesh`` and ``dome_files`` fixtures of tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

EXPECTED = ("FaceMesh", "depth_to_mesh", "write_obj", "write_ply", "to_trimesh", "to_open3d")


def test_mesh_package_has_its_api():
    import facenormals3d.mesh as fm

    missing = [name for name in EXPECTED if not hasattr(fm, name)]
    assert not missing, f"facenormals3d.mesh lacks {', '.join(missing)}"


def _material_image(visual):
    material = visual.material
    image = getattr(material, "image", None)
    return image if image is not None else getattr(material, "baseColorTexture", None)


def test_obj_mtl_png_triple_opens_with_its_texture(dome_mesh, dome_files):
    import trimesh

    files = {p.name for p in dome_files.iterdir()}
    assert {"mesh.obj", "mesh.mtl"} <= files
    obj_text = (dome_files / "mesh.obj").read_text()
    assert "mtllib mesh.mtl" in obj_text and "usemtl" in obj_text
    loaded = trimesh.load(dome_files / "mesh.obj", process=False, force="mesh")
    assert len(loaded.faces) == dome_mesh.n_faces
    assert np.allclose(loaded.bounds, [dome_mesh.vertices.min(0), dome_mesh.vertices.max(0)], atol=1e-3)
    assert loaded.area == pytest.approx(
        trimesh.Trimesh(dome_mesh.vertices, dome_mesh.faces, process=False).area, rel=1e-4)
    image = _material_image(loaded.visual)
    assert image is not None, "trimesh found no texture image through the MTL"
    assert np.array_equal(np.asarray(image.convert("RGB")), dome_mesh.texture)
    assert loaded.visual.uv is not None and len(loaded.visual.uv) == len(loaded.vertices)


def test_ply_round_trips_through_trimesh_and_open3d(dome_mesh, dome_files):
    import open3d as o3d
    import trimesh

    tm = trimesh.load(dome_files / "mesh.ply", process=False)
    assert np.allclose(tm.vertices, dome_mesh.vertices, atol=1e-4)
    assert np.array_equal(tm.faces, dome_mesh.faces)
    o3 = o3d.io.read_triangle_mesh(str(dome_files / "mesh.ply"))
    assert np.allclose(np.asarray(o3.vertices), dome_mesh.vertices, atol=1e-4)
    assert np.array_equal(np.asarray(o3.triangles), dome_mesh.faces)
    assert o3.has_vertex_normals()
    assert np.allclose(np.asarray(o3.vertex_normals), dome_mesh.vertex_normals, atol=1e-3)
    if dome_mesh.colors is not None:
        assert np.allclose(np.asarray(o3.vertex_colors) * 255, dome_mesh.colors, atol=1.0)


def test_obj_opens_in_open3d_with_uvs_and_texture(dome_mesh, dome_files):
    import open3d as o3d

    o3 = o3d.io.read_triangle_mesh(str(dome_files / "mesh.obj"), enable_post_processing=True)
    assert len(o3.triangles) == dome_mesh.n_faces
    assert o3.has_triangle_uvs() and len(o3.triangle_uvs) == 3 * dome_mesh.n_faces
    assert o3.has_textures()


def test_in_memory_adapters_match_the_mesh(dome_mesh):
    import facenormals3d.mesh as fm
    tm = fm.to_trimesh(dome_mesh)
    assert np.allclose(tm.vertices, dome_mesh.vertices) and np.array_equal(tm.faces, dome_mesh.faces)
    assert np.allclose(tm.visual.uv, dome_mesh.uvs)
    # Counter-clockwise seen from the camera: trimesh's face normals point along +z.
    assert (tm.face_normals[:, 2] > 0).mean() > 0.99
    o3 = fm.to_open3d(dome_mesh)
    assert np.allclose(np.asarray(o3.vertices), dome_mesh.vertices)
    assert np.array_equal(np.asarray(o3.triangles), dome_mesh.faces)

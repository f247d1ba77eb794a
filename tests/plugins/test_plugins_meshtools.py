"""Mesh tools read what facenormals3d writes: trimesh / Open3D round trips of every exported
format, the OBJ + MTL + PNG triple opening with its texture (what MeshLab does too), the
in-memory adapters, and the Blender add-on's own OBJ reader on the real exporter's output.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXPECTED = ("FaceMesh", "depth_to_mesh", "write_obj", "write_ply", "to_trimesh", "to_open3d")


def _mesh_module():
    import facenormals3d.mesh as mesh_module

    missing = [name for name in EXPECTED if not hasattr(mesh_module, name)]
    assert not missing, f"facenormals3d.mesh lacks {', '.join(missing)}"
    return mesh_module


def _objread():
    path = REPO / "plugins" / "blender" / "facenormals3d_blender" / "objread.py"
    spec = importlib.util.spec_from_file_location("_addon_objread_meshtools", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def face_mesh():
    """A textured dome: 40 x 40 height map (mm) inside a disc, 1.5 mm pixels, 64 x 64 texture."""
    fm = _mesh_module()
    n = 40
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r2 = ((xx - n / 2 + 0.5) ** 2 + (yy - n / 2 + 0.5) ** 2) / (n / 2) ** 2
    mask = r2 < 0.9
    height = np.where(mask, 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)), np.nan).astype(np.float32)
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]  # red grows to the right
    texture[..., 1] = np.linspace(0, 255, 64, dtype=np.uint8)[:, None]  # green grows downwards
    return fm.depth_to_mesh(height, mask, pixel_size_mm=1.5, texture=texture)


@pytest.fixture(scope="module")
def exported(face_mesh, tmp_path_factory):
    fm = _mesh_module()
    folder = tmp_path_factory.mktemp("export")
    fm.write_obj(face_mesh, folder / "mesh.obj")
    fm.write_ply(face_mesh, folder / "mesh.ply")
    return folder


def _material_image(visual):
    material = visual.material
    image = getattr(material, "image", None)
    return image if image is not None else getattr(material, "baseColorTexture", None)


def test_obj_mtl_png_triple_opens_with_its_texture(face_mesh, exported):
    import trimesh

    files = {p.name for p in exported.iterdir()}
    assert {"mesh.obj", "mesh.mtl"} <= files
    obj_text = (exported / "mesh.obj").read_text()
    assert "mtllib mesh.mtl" in obj_text and "usemtl" in obj_text
    loaded = trimesh.load(exported / "mesh.obj", process=False, force="mesh")
    assert len(loaded.faces) == face_mesh.n_faces
    assert np.allclose(loaded.bounds, [face_mesh.vertices.min(0), face_mesh.vertices.max(0)], atol=1e-3)
    assert loaded.area == pytest.approx(
        trimesh.Trimesh(face_mesh.vertices, face_mesh.faces, process=False).area, rel=1e-4)
    image = _material_image(loaded.visual)
    assert image is not None, "trimesh found no texture image through the MTL"
    assert np.array_equal(np.asarray(image.convert("RGB")), face_mesh.texture)
    assert loaded.visual.uv is not None and len(loaded.visual.uv) == len(loaded.vertices)


def test_ply_round_trips_through_trimesh_and_open3d(face_mesh, exported):
    import open3d as o3d
    import trimesh

    tm = trimesh.load(exported / "mesh.ply", process=False)
    assert np.allclose(tm.vertices, face_mesh.vertices, atol=1e-4)
    assert np.array_equal(tm.faces, face_mesh.faces)
    o3 = o3d.io.read_triangle_mesh(str(exported / "mesh.ply"))
    assert np.allclose(np.asarray(o3.vertices), face_mesh.vertices, atol=1e-4)
    assert np.array_equal(np.asarray(o3.triangles), face_mesh.faces)
    assert o3.has_vertex_normals()
    assert np.allclose(np.asarray(o3.vertex_normals), face_mesh.vertex_normals, atol=1e-3)
    if face_mesh.colors is not None:
        assert np.allclose(np.asarray(o3.vertex_colors) * 255, face_mesh.colors, atol=1.0)


def test_obj_opens_in_open3d_with_uvs_and_texture(face_mesh, exported):
    import open3d as o3d

    o3 = o3d.io.read_triangle_mesh(str(exported / "mesh.obj"), enable_post_processing=True)
    assert len(o3.triangles) == face_mesh.n_faces
    assert o3.has_triangle_uvs() and len(o3.triangle_uvs) == 3 * face_mesh.n_faces
    assert o3.has_textures()


def test_in_memory_adapters_match_the_mesh(face_mesh):
    fm = _mesh_module()
    tm = fm.to_trimesh(face_mesh)
    assert np.allclose(tm.vertices, face_mesh.vertices) and np.array_equal(tm.faces, face_mesh.faces)
    assert np.allclose(tm.visual.uv, face_mesh.uvs)
    # Counter-clockwise seen from the camera: trimesh's face normals point along +z.
    assert (tm.face_normals[:, 2] > 0).mean() > 0.99
    o3 = fm.to_open3d(face_mesh)
    assert np.allclose(np.asarray(o3.vertices), face_mesh.vertices)
    assert np.array_equal(np.asarray(o3.triangles), face_mesh.faces)


def test_blender_addon_reader_reads_the_exporter_output(face_mesh, exported):
    objread = _objread()
    mesh, texture = objread.read_obj_with_texture(str(exported / "mesh.obj"))
    assert len(mesh.positions) == face_mesh.n_vertices and len(mesh.faces) == face_mesh.n_faces
    assert Path(texture).is_file()
    data = objread.to_blender_mesh(mesh, 0.001)
    assert len(data.loop_uvs) == 2 * 3 * face_mesh.n_faces
    # The face that looked along +z looks along Blender's -Y after the conversion.
    v = np.asarray(data.vertices)
    tri = v[np.asarray(data.polygons)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).sum(0)
    normals /= np.linalg.norm(normals)
    assert normals[1] < -0.9

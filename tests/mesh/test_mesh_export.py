"""Exporters: round trips through independent readers (trimesh and open3d)."""

import numpy as np
import open3d as o3d
import pytest
import trimesh

from facenormals3d.errors import InputError
from facenormals3d.mesh import (FaceMesh, depth_to_mesh, to_open3d, to_trimesh, write_obj,
                                write_obj_plain, write_ply)
from integration.surfaces import disc_mask, gaussian_bumps

SHAPE = (32, 40)


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    depth = gaussian_bumps(SHAPE).value * 0.5
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    return depth_to_mesh(depth, disc_mask(SHAPE, 0.4, hole=0.05), pixel_size_mm=0.5,
                         texture=texture)


def _same_geometry(vertices, faces, mesh, atol=1e-4):
    """Same counts and the same triangles in the same order (vertex order may differ:
    trimesh's OBJ reader numbers vertices by first use)."""
    assert len(vertices) == mesh.n_vertices and len(faces) == mesh.n_faces
    np.testing.assert_allclose(np.asarray(vertices)[np.asarray(faces)],
                               mesh.vertices[mesh.faces], atol=atol)


def test_obj_with_texture_round_trips_through_trimesh(mesh, tmp_path):
    path = write_obj(mesh, tmp_path / "face.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "face_texture.png"]
    text = path.read_text()
    assert "mtllib face.mtl" in text and "usemtl face" in text
    assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text()
    loaded = trimesh.load(path, process=False, maintain_order=True)
    assert len(loaded.vertices) == mesh.n_vertices and len(loaded.faces) == mesh.n_faces
    # trimesh orders vertices by first use in the faces: compare per triangle corner
    np.testing.assert_allclose(loaded.vertices[loaded.faces], mesh.vertices[mesh.faces], atol=1e-4)
    np.testing.assert_allclose(loaded.vertex_normals[loaded.faces],
                               mesh.vertex_normals[mesh.faces], atol=1e-3)
    np.testing.assert_allclose(loaded.visual.uv[loaded.faces], mesh.uvs[mesh.faces], atol=1e-5)
    image = loaded.visual.material.image           # the texture was found via the MTL
    assert image is not None and image.size == (80, 64)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), mesh.texture)


def test_obj_round_trips_through_open3d(mesh, tmp_path):
    path = write_obj(mesh, tmp_path / "face.obj")
    loaded = o3d.io.read_triangle_mesh(str(path), enable_post_processing=True)
    assert len(loaded.triangles) == mesh.n_faces
    assert loaded.has_textures() and loaded.has_triangle_uvs()
    # open3d flips images on load to match its v-down UVs
    np.testing.assert_array_equal(np.asarray(loaded.textures[-1]), mesh.texture[::-1])
    # open3d may reorder/duplicate vertices per corner: compare the triangle corners
    corners = np.asarray(loaded.vertices)[np.asarray(loaded.triangles)]
    np.testing.assert_allclose(np.sort(corners.reshape(-1, 3), axis=0),
                               np.sort(mesh.vertices[mesh.faces].reshape(-1, 3), axis=0), atol=1e-4)
    # to_open3d builds the same UVs and image as open3d's own reader
    mine = to_open3d(mesh)
    np.testing.assert_allclose(np.asarray(mine.triangle_uvs), np.asarray(loaded.triangle_uvs), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(mine.textures[0]), np.asarray(loaded.textures[-1]))
    normals = np.asarray(loaded.vertex_normals)
    assert len(normals) == len(loaded.vertices) and np.all(normals[:, 2] > 0)


def test_ply_round_trips_through_trimesh_and_open3d(mesh, tmp_path):
    path = write_ply(mesh, tmp_path / "face.ply")
    tm = trimesh.load(path, process=False)
    _same_geometry(tm.vertices, tm.faces, mesh)
    np.testing.assert_array_equal(tm.visual.vertex_colors[:, :3], mesh.colors)
    o3 = o3d.io.read_triangle_mesh(str(path))
    _same_geometry(np.asarray(o3.vertices), np.asarray(o3.triangles), mesh)
    np.testing.assert_allclose(np.asarray(o3.vertex_normals), mesh.vertex_normals, atol=1e-6)
    np.testing.assert_allclose(np.asarray(o3.vertex_colors) * 255, mesh.colors, atol=0.5)
    plain = write_ply(mesh, tmp_path / "nocolor.ply", colors=False)
    assert b"red" not in plain.read_bytes()[:400]
    assert not o3d.io.read_triangle_mesh(str(plain)).has_vertex_colors()


def test_plain_obj_has_positions_and_faces_only(mesh, tmp_path):
    path = write_obj_plain(mesh, tmp_path / "eval.obj")
    text = path.read_text()
    assert "vt " not in text and "vn " not in text and "mtllib" not in text
    tm = trimesh.load(path, process=False, maintain_order=True)
    _same_geometry(tm.vertices, tm.faces, mesh)
    o3 = o3d.io.read_triangle_mesh(str(path))
    _same_geometry(np.asarray(o3.vertices), np.asarray(o3.triangles), mesh)
    assert np.all(tm.face_normals[:, 2] > 0)       # winding survives: faces look at the camera


def test_converters(mesh):
    tm = to_trimesh(mesh)
    _same_geometry(tm.vertices, tm.faces, mesh, atol=0)
    assert tm.visual.material.image.size == (80, 64)
    assert np.all(tm.face_normals[:, 2] > 0)
    o3 = to_open3d(mesh)
    _same_geometry(np.asarray(o3.vertices), np.asarray(o3.triangles), mesh, atol=1e-6)
    assert o3.has_textures() and len(o3.triangle_uvs) == 3 * mesh.n_faces
    assert o3.has_vertex_colors()


def test_bad_mesh_writes_nothing(mesh, tmp_path):
    broken = FaceMesh(vertices=mesh.vertices, faces=mesh.faces + mesh.n_vertices, uvs=mesh.uvs,
                      vertex_normals=mesh.vertex_normals, texture=mesh.texture)
    with pytest.raises(InputError, match="out of range"):
        write_obj(broken, tmp_path / "bad.obj")
    empty = FaceMesh(vertices=mesh.vertices, faces=np.zeros((0, 3), np.int32), uvs=mesh.uvs,
                     vertex_normals=mesh.vertex_normals)
    with pytest.raises(InputError):
        write_ply(empty, tmp_path / "bad.ply")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_old_file(mesh, tmp_path, monkeypatch):
    path = write_obj_plain(mesh, tmp_path / "keep.obj")
    before = path.read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("facenormals3d.mesh.export.obj_text", boom)
    with pytest.raises(RuntimeError):
        write_obj_plain(mesh, path)
    assert path.read_text() == before and len(list(tmp_path.iterdir())) == 1


def test_obj_material_can_name_a_separate_diffuse_map(mesh, tmp_path):
    write_obj(mesh, tmp_path / "face.obj", texture_name="texture.png", diffuse_name="albedo.png")
    mtl = (tmp_path / "face.mtl").read_text()
    assert "map_Kd albedo.png" in mtl and "texture.png" not in mtl
    assert (tmp_path / "texture.png").is_file()  # the photo texture is still written

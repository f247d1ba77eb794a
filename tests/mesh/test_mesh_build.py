"""depth_to_mesh: geometry, topology, winding, UVs and input checks."""

import numpy as np
import pytest

from facenormals3d.errors import InputError
from facenormals3d.mesh import MeshSettings, depth_to_mesh
from integration import Camera
from integration.surfaces import disc_mask, gaussian_bumps


def _face(shape=(40, 48)):
    depth = gaussian_bumps(shape).value * 0.5      # mm with 0.5 mm pixels
    return depth, disc_mask(shape, 0.4, hole=0.05)


def test_grid_mesh_counts_positions_and_uvs():
    depth = np.arange(12, dtype=float).reshape(3, 4)
    mask = np.ones((3, 4), bool)
    mesh = depth_to_mesh(depth, mask, pixel_size_mm=2.0)
    assert mesh.n_vertices == 12 and mesh.n_faces == 2 * 2 * 3
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    # pixel (row 0, col 0): x = (0.5 - 2) * 2, y = -(0.5 - 1.5) * 2, z = depth
    np.testing.assert_allclose(mesh.vertices[0], [-3.0, 2.0, 0.0])
    np.testing.assert_allclose(mesh.vertices[11], [3.0, -2.0, 11.0])
    np.testing.assert_allclose(mesh.uvs[0], [0.5 / 4, 1 - 0.5 / 3], atol=1e-6)
    assert mesh.uvs.min() >= 0 and mesh.uvs.max() <= 1


def test_normals_face_the_camera_and_faces_are_clean():
    depth, mask = _face()
    mesh = depth_to_mesh(depth, mask, pixel_size_mm=0.5)
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all(face_n[:, 2] > 0)
    assert np.all(mesh.vertex_normals[:, 2] > 0)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertex_normals, axis=1), 1.0, atol=1e-5)
    assert np.all(np.linalg.norm(face_n, axis=1) > 1e-9)                   # no degenerate face
    assert len(np.unique(np.sort(mesh.faces, axis=1), axis=0)) == mesh.n_faces  # no duplicate
    assert len(np.unique(mesh.faces)) == mesh.n_vertices                    # no unused vertex


def test_isolated_pixels_give_no_vertex_and_thin_spurs_no_face():
    depth = np.zeros((6, 6))
    mask = np.zeros((6, 6), bool)
    mask[0:3, 0:3] = True      # 2x2 cells -> 8 faces
    mask[5, 5] = True          # isolated pixel
    mask[3:6, 1] = True        # one-pixel-wide spur below the block
    mesh = depth_to_mesh(depth, mask, pixel_size_mm=1.0)
    assert mesh.n_faces == 8 and mesh.n_vertices == 9


def test_perspective_back_projection_and_winding():
    depth, mask = _face()
    camera = Camera.from_fov(48, 40, 30.0)
    mesh = depth_to_mesh(600.0 - depth, mask, camera=camera)
    assert np.all(mesh.vertices[:, 2] < 0)
    # the centre of the image looks down -z
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    to_camera = -tri.mean(axis=1)
    assert np.all(np.sum(face_n * to_camera, axis=1) > 0)
    # UVs project back to the pixel grid
    assert np.abs(mesh.uvs[:, 0] * 48 - 0.5 - np.round(mesh.uvs[:, 0] * 48 - 0.5)).max() < 1e-3


def test_texture_colours_follow_the_uvs():
    depth, mask = _face()
    texture = np.zeros((80, 96, 3), np.uint8)          # same crop, twice the resolution
    texture[:, 48:, 0] = 255                           # right half red
    mesh = depth_to_mesh(depth, mask, pixel_size_mm=0.5, texture=texture)
    right = mesh.vertices[:, 0] > 0.1
    assert np.all(mesh.colors[right, 0] == 255) and np.all(mesh.colors[~right, 0] == 0)


def test_decimation_keeps_shape_and_validity():
    depth, mask = _face((64, 64))
    full = depth_to_mesh(depth, mask, pixel_size_mm=0.5)
    small = depth_to_mesh(depth, mask, pixel_size_mm=0.5,
                          settings=MeshSettings(target_triangles=full.n_faces // 8))
    assert small.n_faces <= full.n_faces // 8 + 2
    tri = small.vertices[small.faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.all(np.linalg.norm(face_n, axis=1) > 0) and np.mean(face_n[:, 2] > 0) > 0.99
    # vertices stay on the surface: compare z with the depth at the projected pixel
    cols = np.clip((small.uvs[:, 0] * 64).astype(int), 0, 63)
    rows = np.clip(((1 - small.uvs[:, 1]) * 64).astype(int), 0, 63)
    assert np.median(np.abs(small.vertices[:, 2] - depth[rows, cols])) < 0.3


def test_long_edges_can_be_cut():
    depth = np.zeros((4, 6))
    depth[:, 3:] = 50.0                                  # a 50 mm cliff
    mesh = depth_to_mesh(depth, np.ones((4, 6), bool), pixel_size_mm=1.0,
                         settings=MeshSettings(max_edge_mm=5.0))
    assert mesh.n_faces == 2 * 3 * 4                     # the cliff column of cells is gone


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": np.zeros((4, 4, 1))}, "depth"),
    ({"mask": np.ones((3, 4), bool)}, "mask"),
    ({"mask": np.zeros((4, 4), bool)}, "no pixel"),
    ({"depth": np.full((4, 4), np.nan)}, "non-finite"),
    ({"pixel_size_mm": None}, "exactly one"),
    ({"pixel_size_mm": -1.0}, "positive"),
    ({"texture": np.zeros((4, 4), np.uint8)}, "texture"),
    ({"mask": np.eye(4, dtype=bool)}, "no area"),
])
def test_bad_input_raises_input_error(kwargs, match):
    args = {"depth": np.zeros((4, 4)), "mask": np.ones((4, 4), bool), "pixel_size_mm": 1.0}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        depth_to_mesh(args.pop("depth"), args.pop("mask"), **args)

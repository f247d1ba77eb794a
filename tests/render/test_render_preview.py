"""Preview renderer: framing, orientation (x right, y up), lighting, back faces, backends."""

import numpy as np
import pytest
import trimesh

from facenormals3d.raster import frame_mesh, rasterize, view_rotation
from facenormals3d.render.preview import contact_sheet, render_mesh

BG = (1.0, 1.0, 1.0)


def grid_mesh(n=21, half=1.0):
    """A square n x n vertex grid in the z = 0 plane, faces counter-clockwise seen from +z."""
    xs = np.linspace(-half, half, n)
    x, y = np.meshgrid(xs, xs)
    v = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return v, f


def covered(img):
    return np.any(img != 255, axis=-1)


def test_unit_sphere_is_a_disc_of_the_framed_radius():
    s = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    size = 128
    img = render_mesh(s.vertices, s.faces, size=size)
    view = frame_mesh(s.vertices, size=size)
    expected_r = 1.0 / view.mm_per_pixel
    mask = covered(img)
    measured_r = np.sqrt(mask.sum() / np.pi)
    assert measured_r == pytest.approx(expected_r, rel=0.02)
    rows, cols = np.nonzero(mask)
    assert rows.mean() == pytest.approx(size / 2, abs=1.0)
    assert cols.mean() == pytest.approx(size / 2, abs=1.0)


def test_front_view_of_plane_facing_viewer_is_lit_not_backface():
    v, f = grid_mesh()
    img = render_mesh(v, f, size=64)
    centre = img[32, 32].astype(int)
    assert np.all(centre > 100), centre  # lit grey, not black
    assert abs(centre[0] - centre[2]) < 5  # grey, not the reddish back-face colour
    back = render_mesh(v, f[:, ::-1], size=64)[32, 32].astype(int)
    assert back[0] > back[2] + 20 and back.max() < 120  # back-face colour


def test_coloured_vertex_lands_right_and_up():
    v, f = grid_mesh()
    colors = np.full((len(v), 3), 0.5)
    quadrant = (v[:, 0] > 0.3) & (v[:, 1] > 0.3)  # +x, +y corner
    colors[quadrant] = (1.0, 0.0, 0.0)
    img = render_mesh(v, f, colors=colors, size=100)
    red = (img[..., 0] > 200) & (img[..., 1] < 60)
    rows, cols = np.nonzero(red)
    assert len(rows) > 100
    assert cols.mean() > 60 and rows.mean() < 40  # right half, top half of the image
    view = frame_mesh(v, size=100)
    u, w = view.to_pixels(np.array([[0.8, 0.8, 0.0]]))[0]
    assert red[int(w), int(u)]


def test_yaw_90_shows_the_plus_x_side():
    s = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(s.vertices)
    colors = np.full((len(v), 3), 0.6)
    colors[v[:, 0] > 0.8] = (0.0, 0.0, 1.0)
    front = render_mesh(v, s.faces, colors=colors, size=64)
    side = render_mesh(v, s.faces, colors=colors, size=64, yaw_deg=90)
    blue = lambda img: (img[..., 2] > 200) & (img[..., 0] < 60)
    assert blue(side)[28:36, 28:36].all()  # the +x pole faces the camera
    assert not blue(front)[28:36, 28:36].any()
    # Rotation brings the camera direction (sin 90, 0, cos 90) to +z.
    np.testing.assert_allclose(view_rotation(90, 0) @ [1.0, 0, 0], [0, 0, 1], atol=1e-12)


def test_texture_uv_origin_is_bottom_left():
    v, f = grid_mesh()
    uvs = (v[:, :2] + 1.0) / 2.0
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:4, :4] = (255, 0, 0)  # top-left of the texture image
    img = render_mesh(v, f, texture=tex, uvs=uvs, size=64)
    assert img[12, 12, 0] > 200 and img[12, 12, 1] < 50  # image top-left is red
    assert img[50, 50, 0] < 50


def test_pytorch3d_and_open3d_fragments_agree():
    s = trimesh.creation.icosphere(subdivisions=3)
    view = frame_mesh(s.vertices, yaw_deg=20, pitch_deg=-10, size=40)
    p1, b1 = rasterize(s.vertices, s.faces, view, rasterizer="pytorch3d")
    p2, b2 = rasterize(s.vertices, s.faces, view, rasterizer="open3d")
    assert (p1 == p2).float().mean() > 0.995
    same = (p1 == p2) & (p1 >= 0)
    assert (b1 - b2)[same].abs().max() < 1e-3


def test_contact_sheet_layout_and_errors():
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((10, 10, 3), 128, np.uint8)
    sheet = contact_sheet([a, b, a], ["a", "b", "c"], columns=2, pad=4, label_px=10)
    cap = 16
    assert sheet.shape == (4 + 2 * (cap + 20 + 4), 4 + 2 * (30 + 4), 3)
    assert (sheet[4 + cap:4 + cap + 20, 4:34] == 0).all()
    with pytest.raises(ValueError):
        contact_sheet([a], ["x", "y"])
    with pytest.raises(ValueError):
        render_mesh(np.zeros((3, 3)), np.array([[0, 1, 5]]))

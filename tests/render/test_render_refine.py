"""Shading-consistency refinement: crop projection, SH fits, differentiable normals, and
refinement of a bumpy sphere cap rendered analytically under known SH light."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facenormals3d.frame import CropFrame
from facenormals3d.render.refine import (RefineSettings, SmoothSolve, rasterize_crop, refine_mesh, uniform_laplacian,
                                         vertex_normals_torch, _unique_edges)
from facenormals3d.render.shading import fit_light_and_albedo, sh_basis, shade
from facenormals3d.surface import vertex_normals

#: Ground-truth light (irradiance SH, same for R, G, B) and albedo of the synthetic scene:
#: a key light from the upper left in front plus ambient; positive on the front hemisphere.
TRUE_SH = np.repeat(np.array([[1.9, 0.35, 0.9, -0.45, 0.05, 0.10, 0.08, -0.06, 0.04]]).T, 3, 1)
TRUE_ALBEDO = np.array([0.75, 0.55, 0.45])
#: Gaussian bumps (centre x, centre y, amplitude, sigma), mm, added to the sphere cap.
BUMPS = [(-12, 10, 2.5, 5.0), (14, -6, -2.0, 6.0), (3, 18, 2.0, 4.0), (-8, -16, 2.0, 5.0)]
SPHERE_R = 60.0


def height(x, y, bumps: bool):
    """Height field z(x, y) of a sphere cap (+ bumps) and its gradient, all in mm."""
    z = np.sqrt(np.maximum(SPHERE_R ** 2 - x * x - y * y, 1.0))
    zx, zy = -x / z, -y / z
    for cx, cy, a, s in BUMPS if bumps else []:
        g = a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        z, zx, zy = z + g, zx - g * (x - cx) / (s * s), zy - g * (y - cy) / (s * s)
    return z, zx, zy


def grid_mesh(n: int, half: float, bumps: bool):
    """``n x n`` height-field grid over [-half, half]^2, faces counter-clockwise from +z."""
    xs = np.linspace(-half, half, n)
    x, y = np.meshgrid(xs, xs)  # row index grows with y (up)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3),
                            np.stack([a, d, c], -1).reshape(-1, 3)])
    z = height(x, y, bumps)[0]
    return np.stack([x.ravel(), y.ravel(), z.ravel()], 1), faces


def render_truth(size: int, mm_per_pixel: float):
    """The photo: analytic normals of the bumpy cap at every pixel centre, SH-shaded.

    Independent of the rasteriser, so it also checks the refiner's pixel mapping."""
    centres = (np.arange(size) + 0.5 - size / 2) * mm_per_pixel
    x, y = np.meshgrid(centres, -centres)  # row 0 is the top (largest y)
    _, zx, zy = height(x, y, bumps=True)
    n = np.stack([-zx, -zy, np.ones_like(zx)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    rgb = shade(torch.as_tensor(n), torch.as_tensor(TRUE_SH), torch.as_tensor(TRUE_ALBEDO))
    image = (np.clip(rgb.numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)
    mask = x * x + y * y < (0.8 * size / 2 * mm_per_pixel) ** 2
    return image, mask


@pytest.fixture(scope="module")
def scene():
    size, mpp, n = 96, 1.0, 72  # ~1.3 px per grid step, like the real mesh; 10k triangles
    half = 0.95 * size / 2 * mpp
    start, faces = grid_mesh(n, half, bumps=False)
    truth, _ = grid_mesh(n, half, bumps=True)
    image, mask = render_truth(size, mpp)
    return dict(size=size, mpp=mpp, start=start, truth=truth, faces=faces, image=image, mask=mask)


def _tiny_triangle(u: float, v: float, size: int, mpp: float, z: float = 1.0):
    """A triangle (0.6 px across) around crop pixel position (u, v), and its faces."""
    x, y, d = (u - size / 2) * mpp, -(v - size / 2) * mpp, 0.3 * mpp
    verts = np.array([[x - d, y - d, z], [x + d, y - d, z], [x, y + d, z]])
    return verts, np.array([[0, 1, 2]])


@pytest.mark.parametrize("rasterizer", ["pytorch3d", "open3d"])
@pytest.mark.parametrize("col,row", [(10, 20), (50, 3), (0, 63), (33, 31)])
def test_vertex_lands_on_the_expected_crop_pixel(col, row, rasterizer):
    size, mpp = 64, 0.7
    verts, faces = _tiny_triangle(col + 0.5, row + 0.5, size, mpp)
    # The centroid sits 0.1 px below the pixel centre (the crop <-> mm convention of the coarse face).
    np.testing.assert_allclose(CropFrame(size, mpp).to_mm(np.array([[col + 0.5, row + 0.6, 0.0]]))[0, :2],
                               verts.mean(0)[:2], atol=1e-9)
    samples = rasterize_crop(verts, faces, np.ones((size, size), bool), CropFrame(size, mpp),
                             rasterizer=rasterizer)
    assert list(samples.pixels) == [row * size + col]
    # The pixel centre is (x, y): halfway between the base and the apex, on the axis.
    np.testing.assert_allclose(samples.bary[0].numpy(), [0.25, 0.25, 0.5], atol=1e-4)


def test_back_faces_and_masked_pixels_are_left_out():
    size, mpp = 32, 1.0
    verts, faces = _tiny_triangle(5.5, 7.5, size, mpp)
    mask = np.ones((size, size), bool)
    assert len(rasterize_crop(verts, faces[:, ::-1], mask, CropFrame(size, mpp)).pixels) == 0  # clockwise
    mask[7, 5] = False
    assert len(rasterize_crop(verts, faces, mask, CropFrame(size, mpp)).pixels) == 0


def test_lighting_fit_recovers_known_light():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(4000, 3))
    n[:, 2] = np.abs(n[:, 2]) + 0.3  # front hemisphere, as for a face
    n = torch.as_tensor(n / np.linalg.norm(n, axis=1, keepdims=True), dtype=torch.float32)
    colors = shade(n, torch.as_tensor(TRUE_SH, dtype=torch.float32),
                   torch.as_tensor(TRUE_ALBEDO, dtype=torch.float32))
    sh, albedo = fit_light_and_albedo(n, colors, np.arange(4000), 64, "constant", 4.0)
    # Light and albedo are fitted up to a per-channel scale; their product is determined
    # (up to the small ridge bias), and so is the shading it predicts.
    np.testing.assert_allclose((albedo[0] * sh).numpy(), TRUE_ALBEDO * TRUE_SH, atol=0.02)
    np.testing.assert_allclose(shade(n, sh, albedo).numpy(), colors.numpy(), atol=3e-3)
    # Normalisation: mean shading over the fitted normals is 1 in every channel.
    np.testing.assert_allclose((sh_basis(n) @ sh).mean(0).numpy(), 1.0, atol=1e-4)


def test_vertex_normals_torch_matches_numpy_and_has_exact_gradients(scene):
    v, f = scene["truth"], scene["faces"]
    got = vertex_normals_torch(torch.as_tensor(v), torch.as_tensor(f)).numpy()
    np.testing.assert_allclose(got, vertex_normals(v, f), atol=1e-10)
    verts, faces = grid_mesh(4, 3.0, bumps=True)
    verts = torch.tensor(verts, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: vertex_normals_torch(p, torch.as_tensor(faces)),
                                    (verts,))


def test_uniform_laplacian_matches_dense_reference():
    verts, faces = grid_mesh(5, 2.0, bumps=False)
    edges = _unique_edges(faces)
    adj = np.zeros((len(verts), len(verts)))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1.0
    d = np.random.default_rng(1).normal(size=len(verts))
    expected = d - adj @ d / adj.sum(1)
    got = uniform_laplacian(torch.as_tensor(d), torch.as_tensor(edges)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_smooth_solve_matches_dense_reference_and_gradients():
    verts, faces = grid_mesh(6, 2.0, bumps=False)
    edges = _unique_edges(faces)
    adj = np.zeros((len(verts), len(verts)))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1.0
    lam = 5.0
    matrix = np.eye(len(verts)) + lam * (np.diag(adj.sum(1)) - adj)
    u = torch.tensor(np.random.default_rng(3).normal(size=len(verts)), requires_grad=True)
    solve = SmoothSolve(edges, len(verts), lam)
    np.testing.assert_allclose(solve(u).detach().numpy(), np.linalg.solve(matrix, u.detach()),
                               atol=1e-10)
    assert torch.autograd.gradcheck(solve, (u,))
    assert SmoothSolve(edges, len(verts), 0.0)(u) is u  # lambda 0: plain per-vertex steps


def test_true_geometry_explains_the_photo(scene):
    r = refine_mesh(scene["truth"], scene["faces"], scene["image"], scene["mask"], scene["mpp"],
                    RefineSettings(iterations=0))
    assert r.photometric_error_before < 0.003  # ~ uint8 rounding + mesh interpolation
    # The fitted light predicts the true colours for every normal the cap shows (<= 40 deg);
    # outside that range the coefficients are not determined by the photo.
    rng = np.random.default_rng(2)
    n = rng.normal(size=(500, 3)) * [0.35, 0.35, 0.0] + [0.0, 0.0, 1.0]
    n = torch.as_tensor(n / np.linalg.norm(n, axis=1, keepdims=True))
    fitted = shade(n, torch.as_tensor(r.sh_coefficients, dtype=torch.float64),
                   torch.as_tensor(r.albedo[r.pixels].mean(0), dtype=torch.float64))
    truth = shade(n, torch.as_tensor(TRUE_SH), torch.as_tensor(TRUE_ALBEDO))
    assert float((fitted - truth).abs().max()) < 0.02


def _angular_error_deg(verts, truth, faces, inside):
    cos = np.sum(vertex_normals(verts, faces) * vertex_normals(truth, faces), axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))[inside].mean()


@pytest.mark.parametrize("albedo,rasterizer", [("constant", "pytorch3d"), ("smoothed", "auto")])
def test_refinement_lowers_error_and_moves_towards_truth(scene, albedo, rasterizer):
    start, truth, faces = scene["start"], scene["truth"], scene["faces"]
    settings = RefineSettings(iterations=40, rasterize_every=5, albedo=albedo,
                              rasterizer=rasterizer)
    r = refine_mesh(start, faces, scene["image"], scene["mask"], scene["mpp"], settings)
    assert r.iterations == 40 and r.rasterizations == 40 // 5 + 1
    assert r.photometric_error_after < 0.5 * r.photometric_error_before
    inside = np.hypot(start[:, 0], start[:, 1]) < 0.7 * scene["size"] / 2 * scene["mpp"]
    before = _angular_error_deg(start, truth, faces, inside)
    after = _angular_error_deg(r.vertices.astype(np.float64), truth, faces, inside)
    assert after < 0.85 * before
    # The vertices moved (mostly in z, a height field) the way the bumps go.
    moved, wanted = r.vertices[:, 2] - start[:, 2], truth[:, 2] - start[:, 2]
    assert np.corrcoef(moved[inside], wanted[inside])[0, 1] > 0.5
    np.testing.assert_allclose(r.vertices, start + r.displacement[:, None]
                               * vertex_normals(start, faces), atol=1e-4)
    assert r.seconds_per_iteration > 0 and r.seconds >= r.seconds_per_iteration * 40


def test_displacement_limit_is_respected(scene):
    r = refine_mesh(scene["start"], scene["faces"], scene["image"], scene["mask"], scene["mpp"],
                    RefineSettings(iterations=6, displacement_limit_mm=0.05, lr=0.2))
    assert np.abs(r.displacement).max() <= 0.05 + 1e-6
    assert np.abs(r.displacement).max() > 0.04  # the limit was actually reached


def test_zero_iterations_returns_the_input_unchanged(scene):
    start = scene["start"].astype(np.float32)
    r = refine_mesh(start, scene["faces"], scene["image"], scene["mask"], scene["mpp"],
                    RefineSettings(iterations=0))
    assert np.array_equal(r.vertices, start) and r.vertices is not start
    assert not r.displacement.any() and r.displacement.shape == (len(start),)
    assert r.photometric_error_after == r.photometric_error_before > 0
    assert (r.iterations, r.rasterizations, r.seconds_per_iteration) == (0, 1, 0.0)
    assert r.sh_coefficients.shape == (9, 3) and r.albedo.shape == (96, 96, 3)
    assert r.pixels.sum() > 0.9 * scene["mask"].sum()


def test_bad_inputs_raise_clear_errors(scene):
    v, f, img, mask, mpp = (scene[k] for k in ("start", "faces", "image", "mask", "mpp"))
    with pytest.raises(ValueError, match="mask: shape"):
        refine_mesh(v, f, img, mask[:-1], mpp)
    with pytest.raises(ValueError, match="mask: is empty"):
        refine_mesh(v, f, img, np.zeros_like(mask), mpp)
    with pytest.raises(ValueError, match="image: expected a square"):
        refine_mesh(v, f, img[:-1], mask[:-1], mpp)
    with pytest.raises(ValueError, match="image: expected a square"):
        refine_mesh(v, f, img.astype(np.float32), mask, mpp)
    with pytest.raises(ValueError, match="vertices: expected"):
        refine_mesh(v[:, :2], f, img, mask, mpp)
    with pytest.raises(ValueError, match="faces: indices"):
        refine_mesh(v, f + len(v), img, mask, mpp)
    with pytest.raises(ValueError, match="mm_per_pixel"):
        refine_mesh(v, f, img, mask, 0.0)
    with pytest.raises(ValueError, match="covers no front-facing pixel"):
        refine_mesh(v + [500.0, 0.0, 0.0], f, img, mask, mpp)
    with pytest.raises(ValueError, match="albedo must be one of"):
        refine_mesh(v, f, img, mask, mpp, RefineSettings(albedo="textured"))
    with pytest.raises(ValueError, match="rasterizer must be one of"):
        refine_mesh(v, f, img, mask, mpp, RefineSettings(rasterizer="opengl"))
    with pytest.raises(ValueError, match="rasterize_every"):
        refine_mesh(v, f, img, mask, mpp, RefineSettings(rasterize_every=0))

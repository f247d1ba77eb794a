"""reconstruct end to end on real photos: files, formats, geometry, API == CLI.

The command line runs in-process (the ``cli`` fixture): the same code path as the console
script without a new interpreter; tests/test_cli.py starts the real script.
"""

import json

import numpy as np
import pytest

from facenormals3d.errors import ExitCode
from facenormals3d.pipeline import DEFAULT_WEIGHTS, Reconstructor, ReconstructSettings

#: Both normal sources always run: the weights ship with the package (a missing file fails).
SOURCES = ["landmarks", "network"]
FILES = ("mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "normals.png", "normals.npy", "depth.npy",
         "mask.png", "landmarks7.npy", "landmarks.npy", "landmarks_photo.npy", "preview.png",
         "report.json", "transform.json", "normal_map.png", "blendshapes.npz", "fit.json")


@pytest.fixture(scope="module", params=SOURCES)
def cli_result(request, astronaut_png, tmp_path_factory, cli):
    if request.param == "network" and not DEFAULT_WEIGHTS.is_file():
        pytest.fail(f"the shipped network weights are missing ({DEFAULT_WEIGHTS}); they are part of "
                    "the package: restore assets/ (e.g. git lfs pull) instead of skipping this case")
    out = tmp_path_factory.mktemp(f"recon-{request.param}")
    r = cli("reconstruct", astronaut_png, "-o", out, "--normals", request.param, "--json")
    assert r.returncode == 0, r.stderr
    return request.param, out / "astronaut" / "face_0", json.loads(r.stdout)


def test_every_file_is_written_and_readable(cli_result):
    import open3d as o3d
    import trimesh

    _, face, summary = cli_result
    assert summary["n_succeeded"] == 1 and len(summary["succeeded"][0]["faces"]) == 1
    for name in FILES:
        assert (face / name).is_file(), name
    from facenormals3d.fit.model import PART_FACE, load_face_model

    model = load_face_model()
    tm = trimesh.load(face / "mesh.obj", process=False)
    assert len(tm.faces) == len(model.triangles)  # trimesh splits UV-seam vertices on load
    report = json.loads((face / "report.json").read_text())
    # The OBJ's material and texture are found (what MeshLab/Blender need): a 2:1 atlas, its
    # size chosen for the astronaut's ~0.7 photo pixels per mm (see test_texture_size_...).
    assert report["texture_size"] == 512
    assert tm.visual.material.image is not None and tm.visual.material.image.size == (1024, 512)
    obj_vertices = sum(1 for ln in (face / "mesh.obj").read_text().splitlines() if ln.startswith("v "))
    ply = o3d.io.read_triangle_mesh(str(face / "mesh.ply"))
    # The model's topology: the same vertex count and order for every face.
    assert obj_vertices == len(ply.vertices) == model.n_vertices and ply.has_vertex_normals()
    np.testing.assert_array_equal(np.asarray(ply.triangles), model.triangles)
    # Plausible human head in millimetres.
    v = np.asarray(ply.vertices)
    ext = np.ptp(v, axis=0)
    assert 130 < ext[0] < 320 and 180 < ext[1] < 420 and 120 < ext[2] < 320
    # The face part faces the camera (the mean face itself has 86 %: nostrils, inner lips
    # and eyelid folds face away).
    face_v = np.unique(model.triangles[model.triangle_parts == PART_FACE])
    assert np.mean(np.asarray(ply.vertex_normals)[face_v, 2] > 0) > 0.75
    assert report["mesh"]["units"] == "mm" and "outer eye corners" in report["scale"]["rule"]
    assert set(report["timings_seconds"]) >= {"normals", "fit_landmarks", "integration", "texture", "write",
                                              "preview", "total"}
    fit = json.loads((face / "fit.json").read_text())
    assert len(fit["identity"]) == model.n_identity and len(fit["expression"]) == 53
    assert fit["landmarks"]["final"]["landmark_rms_mm"] < 5.0
    from facenormals3d.conventions import read_rgb_any_depth

    nm = read_rgb_any_depth(face / "normal_map.png")
    assert nm.dtype == np.uint16 and nm.shape == (512, 1024, 3)
    n = nm.astype(np.float64) / 65535 * 2 - 1
    assert np.median(n[..., 2]) > 0.95  # tangent space: mostly "up"
    with np.load(face / "blendshapes.npz") as z:
        assert z["deltas"].shape == (53, model.n_vertices, 3) and z["deltas"].dtype == np.float32
        assert list(z["names"]) == list(model.expression_names)



def test_landmarks7_lie_on_the_mesh_in_the_right_places(cli_result):
    import open3d as o3d

    _, face, _ = cli_result
    lm7 = np.load(face / "landmarks7.npy")
    assert lm7.shape == (7, 3)
    mesh = o3d.t.io.read_triangle_mesh(str(face / "mesh.ply"))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh)
    dist = scene.compute_distance(o3d.core.Tensor(lm7.astype(np.float32))).numpy()
    assert dist.max() < 1.0  # mm
    # Right eye (subject's) on the viewer's left, eyes above the nose, nose above the mouth.
    assert lm7[0, 0] < lm7[1, 0] < lm7[2, 0] < lm7[3, 0]
    assert lm7[:4, 1].min() > lm7[4, 1] > lm7[5:, 1].max()
    assert 25 < np.linalg.norm(lm7[1] - lm7[2]) < 45  # inner eye corners ~30-35 mm apart


def test_python_api_gives_the_mesh_the_cli_wrote(cli_result, astronaut_png):
    import open3d as o3d

    source, face, _ = cli_result
    import facenormals3d

    recs = facenormals3d.reconstruct(astronaut_png, normal_source=source, device="cpu")
    assert len(recs) == 1
    ply = o3d.io.read_triangle_mesh(str(face / "mesh.ply"))
    np.testing.assert_array_equal(np.asarray(ply.vertices, np.float32), recs[0].mesh.vertices)
    np.testing.assert_array_equal(np.asarray(ply.triangles), recs[0].mesh.faces)
    # The API estimates the albedo inline; the command leaves it to its writer thread
    # (finish_face(defer_appearance=True)): the same pixels.
    from PIL import Image

    assert recs[0].deferred_appearance is None
    np.testing.assert_array_equal(np.asarray(Image.open(face / "albedo.png")), recs[0].fit.appearance.albedo)
    # The normals cover the fitted face's face region (forehead to chin), more than the
    # landmarks' face oval; only the oval's normals shape the mesh (its depth).
    r = recs[0]
    oval = r.face.mask & r.coarse.coverage
    if source == "network":
        assert r.mask.sum() > 1.1 * (r.mask & oval).sum()
    assert not np.isfinite(r.depth[~oval]).any() and np.isfinite(r.normals[r.mask]).all()
    tm = recs[0].to_trimesh()
    o3 = recs[0].to_open3d()
    assert len(o3.vertices) == len(recs[0].mesh.vertices) and len(tm.faces) == len(recs[0].mesh.faces)


def test_predicted_normals_cover_the_face_region_as_reconstruct_does(astronaut):
    """The normals command's maps (predict_normals) and reconstruct's cover the same face
    region, more than the landmarks' face oval."""
    with Reconstructor(ReconstructSettings(max_faces=1, textures=False, albedo=False)) as rec:
        face, timings = rec.align(astronaut, "astronaut")[0]
        normals, mask, coarse = rec.predict_normals(face)
        r = rec.reconstruct_face(face, "astronaut", 0, timings)
    oval = face.mask & coarse.coverage
    assert mask.sum() > 1.1 * (mask & oval).sum() and np.isfinite(normals[mask]).all()
    assert not (r.mask & ~mask).any() and r.mask.sum() > 0.95 * mask.sum()


@pytest.fixture(scope="module")
def group_runs(group_photo):
    """The group photo reconstructed by two Reconstructors: every face, and ``max_faces=2``
    (small textures: the atlas is checked on the astronaut above)."""
    runs = {}
    for max_faces in (32, 2):
        with Reconstructor(ReconstructSettings(normal_source="landmarks", max_faces=max_faces,
                                               texture_size=64)) as rec:
            runs[max_faces] = rec.run(group_photo, "group")
    return runs


def test_group_photo_gives_six_meshes_of_one_topology(group_runs):
    a = group_runs[32]
    assert len(a) == 6
    for ra in a:
        np.testing.assert_array_equal(ra.mesh.faces, a[0].mesh.faces)
        assert ra.mesh.vertices.shape == a[0].mesh.vertices.shape
    assert not np.allclose(a[0].mesh.vertices, a[1].mesh.vertices)


def test_max_faces_keeps_the_largest_and_results_are_deterministic(group_runs):
    # Largest faces first: a second Reconstructor limited to two faces gives the first two
    # faces of the full run again, bit for bit (no state carried between faces or runs).
    two, every = group_runs[2], group_runs[32]
    assert len(two) == 2
    for ra, rb in zip(two, every):
        np.testing.assert_array_equal(ra.mesh.vertices, rb.mesh.vertices)
        np.testing.assert_array_equal(ra.mesh.texture, rb.mesh.texture)


def test_depth_mesh_is_still_available(astronaut_png, tmp_path, cli):
    r = cli("reconstruct", astronaut_png, "-o", tmp_path, "--normals", "landmarks", "--mesh", "depth",
            "--no-previews")
    assert r.returncode == 0, r.stderr
    face = tmp_path / "astronaut" / "face_0"
    assert (face / "mesh.obj").is_file() and not (face / "preview.png").exists()
    assert not (face / "blendshapes.npz").exists()
    report = json.loads((face / "report.json").read_text())
    assert "mesh" in report["timings_seconds"] and report["topology"].startswith("depth-map")


def test_no_face_photo(tmp_path, cli):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(blank)
    r = cli("reconstruct", blank, "-o", tmp_path / "out", "--normals", "landmarks")
    assert r.returncode == ExitCode.BAD_INPUT and "blank.png: no face found" in r.stderr
    assert not (tmp_path / "out" / "blank").exists()


def test_missing_weights_is_a_clear_error(tmp_path):
    from facenormals3d.errors import InputError

    with pytest.raises(InputError, match="nothing.safetensors: weights file not found"):
        Reconstructor(ReconstructSettings(weights=str(tmp_path / "nothing.safetensors")))


def test_texture_size_follows_the_faces_resolution_in_the_photo(astronaut):
    # The astronaut's face has ~0.67 photo pixels per mm: the 512 atlas (~1.8 texels per mm
    # on the face) already gives it ~2.7 texels per photo pixel. Twice as large a photo
    # (~1.3 pixels per mm) needs the 1024 atlas; an explicit size always wins.
    import cv2

    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    got = {}
    for name, image, size in (("small", astronaut, None), ("big", big, None), ("forced", astronaut, 256)):
        with Reconstructor(ReconstructSettings(normal_source="landmarks", albedo=False, texture_size=size)) as rec:
            r = rec.run(image)[0]
        got[name] = r
        assert r.mesh.texture.shape == (r.info["texture_size"], 2 * r.info["texture_size"], 3)
    assert [got[k].info["texture_size"] for k in ("small", "big", "forced")] == [512, 1024, 256]
    # The same face either way: the big photo's texture taken down to 512 matches the small
    # photo's where both saw the face (mean colour difference of a few levels).
    down = cv2.resize(got["big"].mesh.texture, (1024, 512), interpolation=cv2.INTER_AREA).astype(np.float32)
    diff = np.abs(down - got["small"].mesh.texture.astype(np.float32)).mean()
    assert diff < 6.0, diff


def test_every_mode_feeds_the_network_the_prior_it_was_trained_with(astronaut):
    # The shipped network reads the fitted face's normals (train config ``prior: fit-v2``). The
    # normals command (predict_normals) and --mesh depth must give it that prior too, not the
    # landmark face's: then all three see the same input and return the same normals.
    with Reconstructor(ReconstructSettings(albedo=False, textures=False)) as rec:
        assert rec.model_info["prior"] == "fit-v2"
        face, timings = rec.align(astronaut)[0]
        fitted = rec.reconstruct_face(face, timings=timings)
        normals, mask, _ = rec.predict_normals(face)
    with Reconstructor(ReconstructSettings(mesh="depth")) as rec:
        depth = rec.reconstruct_face(face, timings=timings)
    both = mask & fitted.mask & depth.mask
    assert both.sum() > 0.5 * mask.sum()
    np.testing.assert_allclose(normals[both], fitted.normals[both], atol=1e-5)
    np.testing.assert_allclose(depth.normals[both], fitted.normals[both], atol=1e-5)

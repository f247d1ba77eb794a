"""The shipped landmark correspondence against the front end, and per-face errors in the pipeline."""

import numpy as np
import pytest

from facenormals3d.errors import InputError


def test_front_end_landmarks_land_on_their_model_points(ict_model):
    """Render model faces, find their landmarks with the front end: the shipped
    correspondence's surface points project onto them (inner face; the oval is a silhouette)."""
    from facenormals3d.data.synth import SynthEngine
    from facenormals3d.face.detect import DetectSettings, FaceFinder
    from facenormals3d.face.topology import FACE_OVAL
    from facenormals3d.fit.build import model_from_ict
    from facenormals3d.fit.landmarks import IRIS
    from facenormals3d.fit.model import load_face_model

    ict = ict_model
    shipped = load_face_model()
    _, keep = model_from_ict(ict, n_identity=1)
    engine = SynthEngine(ict)
    inner = np.setdiff1d(np.arange(478), list(FACE_OVAL) + list(IRIS))
    errors = []
    with FaceFinder(DetectSettings(max_faces=1)) as finder:
        for i in range(4):
            sample = engine.render_index(11, i, "test")
            try:
                found = finder.find(sample.image)[0].landmarks[:, :2]
            except InputError:
                continue
            cam = sample.params["camera"]["crop"]
            pts = shipped.landmark_points(np.asarray(sample.vertices_camera, np.float64)[keep])
            uv = np.stack([cam["focal"] * pts[:, 0] / -pts[:, 2] + cam["cx"],
                           -cam["focal"] * pts[:, 1] / -pts[:, 2] + cam["cy"]], axis=1)
            errors.append(np.linalg.norm(uv[inner] - found[inner], axis=1))
    assert errors, "the front end found no face in 4 renders"
    err = np.concatenate(errors)
    # A 256 px crop, the face ~150 px wide, poses up to 70 deg of yaw: a few pixels is
    # mediapipe's own spread (measured: median ~4 px); a wrong or mirrored point is 20+ px off.
    assert np.median(err) < 5.5 and np.percentile(err, 90) < 11.0


def test_degenerate_landmarks_fail_one_face_only(group_photo):
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    with Reconstructor(ReconstructSettings(normal_source="landmarks", detail=False, textures=False)) as rec:
        aligned = rec.align(group_photo, "group.jpg")[:2]
        bad, timings = aligned[1]
        bad.landmarks_crop = np.full_like(bad.landmarks_crop, 5.0)
        with pytest.raises(InputError, match="group.jpg face 1: landmarks: degenerate"):
            rec.reconstruct_face(bad, "group.jpg", 1, timings)
        ok = rec.reconstruct_face(aligned[0][0], "group.jpg", 0, aligned[0][1])
        assert ok.mesh.vertices.shape == (rec.fitter.model.n_vertices, 3)


def test_fitted_mesh_does_not_depend_on_where_the_face_is_in_the_photo(astronaut):
    """The same face shifted and enlarged inside a bigger photo gives the same fitted shape."""
    import cv2

    from facenormals3d.pipeline import Reconstructor, ReconstructSettings
    from facenormals3d.similarity import umeyama

    big = np.full((1100, 1300, 3), 200, np.uint8)
    scaled = cv2.resize(astronaut, (768, 768), interpolation=cv2.INTER_LINEAR)
    big[250:250 + 768, 420:420 + 768] = scaled
    settings = ReconstructSettings(normal_source="landmarks", dense_fit=False, detail=False, textures=False)
    with Reconstructor(settings) as rec:
        a = rec.run(astronaut, "small")[0].mesh.vertices.astype(np.float64)
        b = rec.run(big, "big")[0].mesh.vertices.astype(np.float64)
    # Same shape up to a similarity (the crop frame absorbs position and size).
    aligned = umeyama(b, a).apply(b)
    assert np.median(np.linalg.norm(aligned - a, axis=1)) < 1.0

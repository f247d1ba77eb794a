"""Reading ICT FaceKit folders: the fake layout, the cache, clear errors, the real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facenormals3d.data.fake_ict import RADII_MM, write_fake_ict
from facenormals3d.data.ict import PART_FACE, PART_HEAD, cache_dir, load_ict
from facenormals3d.errors import InputError

REAL_ICT = Path(__file__).resolve().parents[2] / ".cache" / "ICT-FaceKit"


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("FACENORMALS3D_CACHE", str(tmp_path / "cache"))
    return write_fake_ict(tmp_path / "ict", n_lat=16, n_lon=20)


def test_fake_model_loads_in_mm_with_parts_and_landmarks(fake):
    m = load_ict(fake)
    extent = m.neutral.max(axis=0) - m.neutral.min(axis=0)
    np.testing.assert_allclose(extent, 2 * np.array(RADII_MM), rtol=0.02)  # cm -> mm
    assert m.identity_basis.shape == (3, len(m.neutral), 3)
    assert m.expression_names == ("jawOpen", "mouthSmile_L", "mouthSmile_R")
    assert m.landmarks.shape == (68,)
    assert set(np.unique(m.triangle_parts)) == {PART_FACE, PART_HEAD}
    # Front triangles are the face part: their centres have z > 0.
    centres = m.neutral[m.triangles].mean(axis=1)
    assert np.all(centres[m.triangle_parts == PART_FACE, 2] > 0)
    assert np.all((m.vertex_ao >= 0) & (m.vertex_ao <= 1))


def test_second_load_comes_from_the_cache(fake):
    first = load_ict(fake)
    files = list(cache_dir().glob("ict-*.npz"))
    assert len(files) == 1
    second = load_ict(fake)
    for name in ("neutral", "identity_basis", "triangles", "triangle_uvs", "landmarks", "vertex_ao"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    # Touching a model file changes the key: the cache is rebuilt, not reused.
    obj = fake / "FaceXModel" / "identity000.obj"
    obj.write_text(obj.read_text() + "\n")
    load_ict(fake)
    assert len(list(cache_dir().glob("ict-*.npz"))) == 2


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: shutil.rmtree(d), "ICT FaceKit folder not found"),
    (lambda d: shutil.rmtree(d / "FaceXModel"), "FaceXModel/ is missing"),
    (lambda d: (d / "FaceXModel" / "generic_neutral_mesh.obj").unlink(), "generic_neutral_mesh.obj"),
    (lambda d: (d / "FaceXModel" / "identity000.obj").unlink(), "identity000.obj"),
    (lambda d: (d / "FaceXModel" / "jawOpen.obj").unlink(), "jawOpen.obj"),
    (lambda d: (d / "FaceXModel" / "vertex_indices.json").write_text("{not json"), "vertex_indices.json"),
    (lambda d: (d / "README.md").write_text("no tables here"), "README.md"),
])
def test_broken_folder_names_what_is_missing(fake, breakage, expected):
    breakage(fake)
    with pytest.raises(InputError) as err:
        load_ict(fake)
    assert expected in str(err.value)


def test_wrong_landmark_count_and_vertex_count_are_reported(fake):
    path = fake / "FaceXModel" / "vertex_indices.json"
    meta = json.loads(path.read_text())
    meta["idx_to_landmark_verts"] = meta["idx_to_landmark_verts"][:67]
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="68"):
        load_ict(fake)
    meta["idx_to_landmark_verts"] += [0]
    path.write_text(json.dumps(meta))
    obj = fake / "FaceXModel" / "identity001.obj"
    obj.write_text("v 0 0 0\n")
    with pytest.raises(InputError, match="identity001.obj: has 1 vertices"):
        load_ict(fake)


@pytest.mark.ict
@pytest.mark.skipif(not (REAL_ICT / "FaceXModel").is_dir(),
                    reason=f"ICT FaceKit model not extracted at {REAL_ICT} (make ict)")
def test_real_model_loads_without_the_shading_shells():
    m = load_ict(REAL_ICT)
    assert m.identity_basis.shape[0] == 100 and len(m.expression_names) == 53
    assert len(m.neutral) == 22991  # eyelashes, occlusion, lacrimal, blend and inner iris shells dropped
    # Outer eye corners ~ 90 mm apart: the model is in mm now.
    assert 75 < np.linalg.norm(m.neutral[m.landmarks[36]] - m.neutral[m.landmarks[45]]) < 105
    assert np.isfinite(m.iris).sum() > 1000

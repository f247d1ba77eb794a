"""evaluate normals reads the tool's own nested output layout (OUT/<stem>/face_k/normals.*)."""

import numpy as np

from facenormals3d.evaluate.normals import pair_files


def test_nested_layout_pairs_by_relative_path(tmp_path):
    n = np.zeros((8, 8, 3), np.float32)
    n[..., 2] = 1
    for root in ("pred", "gt"):
        for face in ("face_0", "face_1"):
            d = tmp_path / root / "astronaut" / face
            d.mkdir(parents=True)
            np.save(d / "normals.npy", n)
    (tmp_path / "pred" / "flat_normals.npy").write_bytes(b"")  # flat names still pair by stem
    pairs, missing = pair_files(tmp_path / "pred", tmp_path / "gt")
    assert [p.name for p in pairs] == ["astronaut/face_0", "astronaut/face_1"]
    assert missing == ["flat: no ground truth"]

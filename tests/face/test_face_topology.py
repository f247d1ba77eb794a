import numpy as np

from facenormals3d.face.topology import mesh_triangles


def test_tesselation_is_a_consistent_manifold():
    faces = mesh_triangles()
    assert faces.shape == (898, 3)  # the canonical face mesh's triangle count
    assert faces.max() == 467
    directed = {}
    for a, b, c in faces:
        for e in ((a, b), (b, c), (c, a)):
            directed[e] = directed.get(e, 0) + 1
    # Consistent winding: no directed edge is used twice.
    assert max(directed.values()) == 1
    undirected = {}
    for (a, b) in directed:
        key = (min(a, b), max(a, b))
        undirected[key] = undirected.get(key, 0) + 1
    assert max(undirected.values()) == 2


def test_triangles_face_the_camera_on_a_real_face(astronaut, finder):
    lm = finder.find(astronaut)[0].landmarks
    p = np.c_[lm[:, 0], -lm[:, 1], lm[:, 2]]  # y up
    f = mesh_triangles()
    n = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    assert (n[:, 2] > 0).mean() > 0.95

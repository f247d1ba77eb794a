"""Face regions from landmarks: every face pixel gets one, in the expected places."""

import numpy as np

from facenormals3d.evaluate.regions import REGIONS, face_regions


def _frontal_landmarks(scale=1.0, shift=(0.0, 0.0)):
    """A schematic frontal iBUG-68 layout in a 200 px image."""
    lm = np.zeros((68, 2))
    lm[0:17] = np.stack([np.linspace(40, 160, 17), 100 + 60 * np.sin(np.linspace(0, np.pi, 17))], 1)  # jaw
    lm[17:22] = np.stack([np.linspace(55, 90, 5), np.full(5, 70)], 1)  # right brow
    lm[22:27] = np.stack([np.linspace(110, 145, 5), np.full(5, 70)], 1)  # left brow
    lm[27:31] = np.stack([np.full(4, 100), np.linspace(85, 115, 4)], 1)  # nose bridge
    lm[31:36] = np.stack([np.linspace(90, 110, 5), np.full(5, 120)], 1)  # nose bottom
    for k, cx in ((36, 72), (42, 128)):  # eyes
        ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lm[k:k + 6] = np.stack([cx + 12 * np.cos(ang), 88 + 5 * np.sin(ang)], 1)
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.stack([100 - 20 * np.cos(ang), 140 + 8 * np.sin(ang)], 1)  # outer lips (48 right corner)
    inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.stack([100 - 12 * np.cos(inner), 140 + 3 * np.sin(inner)], 1)
    return lm * scale + np.asarray(shift)


def test_regions_cover_the_mask_and_sit_where_expected():
    lm = _frontal_landmarks()
    mask = np.zeros((200, 200), bool)
    mask[40:190, 35:165] = True
    lab = face_regions(lm, mask)
    assert np.all(lab[mask] >= 0) and np.all(lab[~mask] == -1)
    at = lambda x, y: REGIONS[lab[y, x]]  # noqa: E731
    assert at(72, 88) == "eyes" and at(128, 88) == "eyes"
    assert at(100, 110) == "nose" and at(100, 140) == "mouth"
    assert at(100, 50) == "forehead" and at(100, 175) == "chin" and at(50, 120) == "cheeks"
    assert set(np.unique(lab[mask])) == set(range(len(REGIONS)))

"""facenormals3d.deferred: the plotting stacks stay out of a reconstruct-like import, and
every deferred module still works when it is used."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import facenormals3d, open3d, mediapipe
from mediapipe.python.solutions import face_detection, face_mesh
heavy = [m for m in ("dash", "plotly", "IPython", "matplotlib.pyplot", "sounddevice") if m in sys.modules]
assert not heavy, f"imported at start-up: {heavy}"
# What reconstruct uses from open3d still works.
scene = open3d.t.geometry.RaycastingScene()
assert open3d.core.Tensor([1.0]).numpy()[0] == 1.0
# Each deferred module loads on first use, as it would have at import.
assert callable(open3d.visualization.draw_plotly)
assert callable(mediapipe.solutions.drawing_utils.draw_landmarks)
assert callable(mediapipe.solutions.drawing_styles.get_default_face_mesh_contours_style)
assert hasattr(mediapipe.tasks.vision, "FaceLandmarker")
assert "dash" in sys.modules and "matplotlib.pyplot" in sys.modules
print("ok")
"""


def test_deferred_modules_load_on_first_use_only():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")


def test_install_is_idempotent_and_leaves_other_modules_alone():
    import facenormals3d.deferred as deferred

    deferred.install()
    deferred.install()
    finders = [f for f in sys.meta_path if isinstance(f, deferred._DeferringFinder)]
    assert len(finders) == 1 and deferred.installed()
    assert finders[0].find_spec("json") is None
    assert finders[0].find_spec("matplotlib") is None

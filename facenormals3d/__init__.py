"""facenormals3d: face photos to detailed 3D face meshes.

``facenormals3d.reconstruct(image)`` returns one :class:`Reconstruction` per face (see
:mod:`facenormals3d.pipeline`). Coordinate conventions are documented once, in
:mod:`facenormals3d.conventions`.
"""

__version__ = "0.1.0"

# open3d and mediapipe import plotting stacks we never use from their package __init__:
# defer those submodules to their first use (see facenormals3d/deferred.py).
from facenormals3d import deferred as _deferred

_deferred.install()

_LAZY = {"reconstruct", "Reconstruction", "ReconstructSettings", "Reconstructor"}


def __getattr__(name: str):
    # The pipeline pulls in torch, mediapipe and open3d: import it only when asked for,
    # so `facenormals3d --help` and light submodules stay fast.
    if name in _LAZY:
        from facenormals3d import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'facenormals3d' has no attribute {name!r}")

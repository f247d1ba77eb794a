"""Third-party submodules that load only when first used: start-up cost, not behaviour.

Two of our dependencies import heavy plotting stacks from their package ``__init__`` that
no facenormals3d code uses (measured with ``python -X importtime`` on 2 cores, idle):

* ``import open3d`` runs ``import open3d.visualization``, whose ``draw_plotly`` imports
  dash, plotly and IPython: about half of open3d's ~1.5 s import. We need only
  ``open3d.core`` and ``open3d.t.geometry.RaycastingScene`` (and the geometry/pipelines
  classes, which live in ``open3d.pybind`` and are unaffected).
* ``import mediapipe`` runs ``mediapipe.python.solutions.__init__``, which imports
  ``drawing_utils`` / ``drawing_styles`` (matplotlib.pyplot), and ``mediapipe.tasks.python``
  (the Tasks API, incl. audio and sounddevice): over half of mediapipe's import. We use
  the ``face_detection`` / ``face_mesh`` solutions and ``solution_base`` only.

Neither package offers a switch to skip these imports, so :func:`install` adds one import
hook (a ``sys.meta_path`` finder) that handles exactly the module names in
:data:`DEFERRED`: it finds them as Python would and wraps their loader in the standard
library's :class:`importlib.util.LazyLoader`. The package ``__init__`` then gets a module
object that runs its code on first attribute access, so ``open3d.visualization.draw_plotly``
or ``mediapipe.solutions.drawing_utils`` still work exactly as before, only later. Every
other module, including matplotlib, dash and plotly themselves when imported directly,
loads as usual. Tests: ``tests/test_deferred.py`` (the heavy stacks stay out of a fresh
``reconstruct``-like import, and each deferred module still works when used).

Python 3.11's LazyLoader is not thread-safe on first use; facenormals3d never touches
these modules, so only a user's own code could, and it then loads them on its thread.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

#: Modules whose code runs only on first attribute access (see the module docstring).
DEFERRED = frozenset({
    "open3d.visualization",
    "mediapipe.python.solutions.drawing_utils",
    "mediapipe.python.solutions.drawing_styles",
    "mediapipe.tasks.python",
})


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the :data:`DEFERRED` modules with the usual path finder, loaded lazily."""

    def __init__(self, names: frozenset[str]):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def install() -> None:
    """Defer the :data:`DEFERRED` modules in this process (idempotent).

    Has no effect on a module that is already imported.
    """
    if not any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder(DEFERRED))


def installed() -> bool:
    """Whether :func:`install` ran in this process."""
    return any(isinstance(f, _DeferringFinder) for f in sys.meta_path)

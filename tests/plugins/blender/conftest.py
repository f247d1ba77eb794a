"""The Blender add-on tests need Blender's Python module (``bpy``), which lives only in the
separate ``.venv-blender`` made by ``make blender-venv``; ``make test-blender`` runs them.

In any other environment (the main .venv, the default ``pytest tests`` run) this folder
is not collected at all, so ``import bpy`` never fails there.

When bpy is present, Blender's user folders are pointed at a throw-away directory before
bpy is imported, so installing the add-on zip never touches the real user's Blender.

Tests record timing lines with the ``timing_log`` fixture; they are printed in the run's
summary under "facenormals3d add-on timings" (logged, never asserted).
"""

import importlib.util
import os
import shutil
import tempfile

import pytest

_TIMINGS: list = []


@pytest.fixture
def timing_log():
    """A list to append one-line timing reports to; shown in the terminal summary."""
    return _TIMINGS


def pytest_terminal_summary(terminalreporter):
    if _TIMINGS:
        terminalreporter.section("facenormals3d add-on timings")
        for line in _TIMINGS:
            terminalreporter.write_line(line)


if importlib.util.find_spec("bpy") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    _USER = tempfile.mkdtemp(prefix="blender-user-")
    os.environ["BLENDER_USER_RESOURCES"] = _USER
    os.environ["BLENDER_USER_SCRIPTS"] = os.path.join(_USER, "scripts")
    os.environ["BLENDER_USER_CONFIG"] = os.path.join(_USER, "config")

    def pytest_unconfigure(config):
        shutil.rmtree(_USER, ignore_errors=True)

"""Shared fixtures: real photos made from scikit-image's public-domain astronaut portrait."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# One torch/BLAS thread per test process. The test networks and arrays are tiny, and the
# machines running the suite share their 2 cores with other work: measured here, 4 training
# steps of the tests' tiny network took 0.85 s on one thread and 6-10 s on two (each
# parallel region waits for a thread that is not scheduled).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
#: The derived-data cache the session started with (None = the default ~/.cache/facenormals3d).
SESSION_CACHE = os.environ.get("FACENORMALS3D_CACHE")


@dataclass
class CliRun:
    """What one in-process run of the console script returned and printed."""

    returncode: int
    stdout: str
    stderr: str


def _run_main(*args) -> CliRun:
    """``facenormals3d ARGS...`` in this process: :func:`facenormals3d.cli.main` with an
    explicit argv (the console script's code path minus the interpreter start, ~3 s of
    imports on a loaded 2-core machine); ``--help`` / ``--version`` exits become return codes."""
    from facenormals3d.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return CliRun(int(code), out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    """Runs the console script in-process: ``cli("faces", photo, "-o", out) -> CliRun``."""
    return _run_main


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The astronaut photo, 512 x 512 x 3 uint8 (one face)."""
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def astronaut_png(astronaut, tmp_path_factory) -> Path:
    import imageio.v3 as iio

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    iio.imwrite(path, astronaut)
    return path


@pytest.fixture(scope="session")
def group_photo(astronaut) -> np.ndarray:
    """An 1800 x 1000 'group photo': six copies of the astronaut's head at different sizes,
    some mirrored, on a gradient background (faces ~65-100 px wide)."""
    from skimage.transform import rescale

    head = astronaut[20:230, 130:320]
    canvas = np.empty((1000, 1800, 3), np.uint8)
    canvas[:] = np.linspace(120, 220, 1800)[None, :, None].astype(np.uint8)
    for k, s in enumerate([0.6, 0.7, 0.8, 0.65, 0.75, 0.9]):
        h = (rescale(head, s, channel_axis=2) * 255).astype(np.uint8)
        if k % 2:
            h = h[:, ::-1]
        r, c = divmod(k, 3)
        y, x = 80 + r * 480, 100 + c * 580
        canvas[y:y + h.shape[0], x:x + h.shape[1]] = h
    return canvas


@pytest.fixture(scope="session")
def finder():
    """One mediapipe face finder shared by the tests (graph start-up takes ~0.5 s)."""
    from facenormals3d.face.detect import FaceFinder

    with FaceFinder() as f:
        yield f


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    """The real ICT FaceKit folder extracted by the setup (skips when absent)."""
    path = Path(os.environ.get("FACENORMALS3D_ICT_DIR", REPO / ".cache" / "ICT-FaceKit"))
    if not (path / "FaceXModel" / "generic_neutral_mesh.obj").is_file():
        pytest.skip(f"ICT FaceKit not extracted at {path} (run `make setup` with "
                    "../shared/data/ICT-FaceKit.tar.gz present)")
    return path


@pytest.fixture(scope="session")
def ict_model(ict_dir):
    """The real ICT FaceKit model, loaded once per session from the usual cache
    (``$FACENORMALS3D_CACHE`` as the session started: modules that point the cache at a
    temporary folder for their fake models do not make the real one be parsed again)."""
    from facenormals3d.data.ict import load_ict

    with pytest.MonkeyPatch.context() as mp:
        if SESSION_CACHE is None:
            mp.delenv("FACENORMALS3D_CACHE", raising=False)
        else:
            mp.setenv("FACENORMALS3D_CACHE", SESSION_CACHE)
        return load_ict(ict_dir)


@pytest.fixture(scope="session")
def dome_mesh():
    """A textured dome FaceMesh: 40 x 40 height map (mm) inside a disc, 1.5 mm pixels, 64 x 64
    texture (red grows to the right, green downwards)."""
    from facenormals3d.mesh import depth_to_mesh

    n = 40
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r2 = ((xx - n / 2 + 0.5) ** 2 + (yy - n / 2 + 0.5) ** 2) / (n / 2) ** 2
    mask = r2 < 0.9
    height = np.where(mask, 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)), np.nan).astype(np.float32)
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    texture[..., 1] = np.linspace(0, 255, 64, dtype=np.uint8)[:, None]
    return depth_to_mesh(height, mask, pixel_size_mm=1.5, texture=texture)


@pytest.fixture(scope="session")
def dome_files(dome_mesh, tmp_path_factory) -> Path:
    """A folder with ``dome_mesh`` written as mesh.obj (+ mtl, png) and mesh.ply."""
    from facenormals3d.mesh import write_obj, write_ply

    folder = tmp_path_factory.mktemp("dome")
    write_obj(dome_mesh, folder / "mesh.obj")
    write_ply(dome_mesh, folder / "mesh.ply")
    return folder

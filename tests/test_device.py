"""Torch and OpenBLAS thread counts for a block of work."""

import pytest


def test_torch_threads_are_set_for_the_block_and_restored():
    import torch

    from facenormals3d.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with torch_threads(0):
            pass


def test_blas_threads_limit_numpys_openblas_and_restore_it():
    import numpy as np

    from facenormals3d.device import _loaded_openblas, blas_threads

    libs = _loaded_openblas()
    if not libs:
        pytest.skip("no OpenBLAS found in /proc/self/maps (not Linux, or numpy without OpenBLAS)")
    before = [get() for _, get in libs]
    a = np.random.default_rng(0).normal(size=(64, 64))
    with blas_threads(1) as n:
        assert n == len(libs)
        assert all(get() == 1 for _, get in libs)
        inside = a @ a
    assert [get() for _, get in libs] == before
    np.testing.assert_allclose(inside, a @ a)
    with pytest.raises(ValueError):
        with blas_threads(0):
            pass


def test_a_reconstructor_block_runs_blas_on_its_threads():
    from facenormals3d.device import _loaded_openblas
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    settings = ReconstructSettings(normal_source="landmarks", mesh="depth", threads=1)
    with Reconstructor(settings):
        libs = _loaded_openblas()
        if not libs:
            pytest.skip("no OpenBLAS found")
        assert all(get() == 1 for _, get in libs)

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


def _faults_kept_and_default(script: str) -> tuple[int, int]:
    """Run ``script`` (it prints whether keep_freed_memory took effect, then a page-fault
    count) with the heap keeping freed memory and by default, in fresh processes with
    numpy's transparent-huge-page advice off (pages count one by one); returns the two
    counts, skipping the test where mallopt is not available."""
    import os
    import subprocess
    import sys

    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", script, mode], check=True, capture_output=True, text=True,
                             env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}).stdout.split()
        return out[0], int(out[1])

    kept, reused = faults("keep")
    if kept != "True":
        pytest.skip("mallopt is not available (not glibc)")
    return reused, faults("default")[1]


_FAULTS_OF_A_REUSED_ARRAY = """
import resource, sys
import numpy as np
from facenormals3d.device import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
np.ones(40 << 20, np.uint8)  # 40 MB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(40 << 20, np.uint8)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_lets_a_large_array_reuse_freed_pages():
    """A 40 MB array freed and allocated again: by default glibc unmaps it (over its
    largest mmap threshold, 32 MB) and the second one faults in every page anew (10240 of
    4 kB; numpy's transparent-huge-page advice is off here so that pages count one by
    one); with the heap keeping freed memory the second one reuses the first's pages."""
    reused, fresh = _faults_kept_and_default(_FAULTS_OF_A_REUSED_ARRAY)
    assert fresh > 8000
    assert reused < 500


_FAULTS_OF_AN_ARRAY_REUSED_ON_A_THREAD = """
import resource, sys, threading
import numpy as np
from facenormals3d.device import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
np.ones(40 << 20, np.uint8)  # 40 MB on this thread, freed at once
faults = []
def job():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(40 << 20, np.uint8)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
t = threading.Thread(target=job)
t.start()
t.join()
print(kept, faults[0])
"""


def test_keep_freed_memory_lets_a_thread_reuse_pages_freed_on_another():
    """The same across threads (the writer thread's atlases): a 40 MB array freed on the
    main thread, then one made on a new thread. By default the thread gets its own malloc
    arena and faults in every page anew; with one heap for every thread it reuses them."""
    reused, fresh = _faults_kept_and_default(_FAULTS_OF_AN_ARRAY_REUSED_ON_A_THREAD)
    assert fresh > 8000
    assert reused < 500

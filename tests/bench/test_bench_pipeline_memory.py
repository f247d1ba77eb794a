"""bench pipeline's memory of a process tree: a parent and its child each hold 100 MB."""

import subprocess
import sys

from facenormals3d.bench.pipeline import _descendants, _TreeMemory

HOLD = ("import subprocess, sys, time; a = bytearray(100 * 2**20); a[::4096] = b'x' * len(a[::4096]); "
        "c = subprocess.Popen([sys.executable, '-c', sys.argv[1]]) if len(sys.argv) > 1 else None; "
        "time.sleep(0.8); c and c.wait()")


def test_tree_memory_sums_a_process_and_its_children():
    child = HOLD
    proc = subprocess.Popen([sys.executable, "-c", HOLD, child])
    with _TreeMemory(proc.pid) as tree:
        proc.wait()
    # Two processes with 100 MB each touched (plus two interpreters), counted together.
    assert tree.peak > 200 * 2**20, tree.peak / 2**20
    assert _descendants(proc.pid) == [proc.pid]  # gone: only itself is listed

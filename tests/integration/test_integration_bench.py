"""The integration library stays independent, and its benchmark runs end to end (tiny)."""

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_library_imports_neither_torch_nor_the_face_package():
    code = ("import sys, numpy as np\n"
            "from integration import integrate\n"
            "n = np.zeros((8, 8, 3)); n[..., 2] = 1\n"
            "integrate(n, np.ones((8, 8), bool))\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'facenormals3d')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_bench_reports_every_solver_and_the_targets():
    from facenormals3d.bench import integration as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    report = bench.run(parser.parse_args(["--sizes", "48", "--repeats", "1"]))
    methods = {row["method"] for row in report.rows}
    assert methods == {"direct", "poisson", "poisson-cold", "dct", "fusion", "fusion-direct",
                       "bilateral"}
    poisson = next(r for r in report.rows if r["method"] == "poisson")
    assert abs(poisson["mae/direct"] - 1.0) < 0.01
    assert any("fusion / Poisson" in t["target"] for t in report.targets)
    assert "bench integration" in report.table()

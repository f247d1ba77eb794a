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


def test_diligent_bench_on_a_tiny_fake_folder(tmp_path):
    """The DiLiGenT reader, metric and report on a synthetic sphere stored in its layout."""
    import cv2
    import numpy as np

    from facenormals3d.bench import integration as bench
    from integration import Camera
    from integration.surfaces import sphere_depth

    K = np.array([[80.0, 0.0, 23.5], [0.0, 80.0, 19.5], [0.0, 0.0, 1.0]])
    depth, normals = sphere_depth(Camera.from_K(K), (40, 48), [0.0, 0.0, -5.0], 1.0)
    mask = np.isfinite(depth) & (normals[..., 2] > 0.3)
    obj = tmp_path / "ball"
    obj.mkdir()
    n16 = np.round((np.nan_to_num(normals) + 1) / 2 * 65535).astype(np.uint16)
    cv2.imwrite(str(obj / "normal_map.png"), n16[..., ::-1])
    cv2.imwrite(str(obj / "mask.png"), mask.astype(np.uint8) * 255)
    np.savetxt(obj / "K.txt", K)
    np.savez(obj / "depth_gt.npz", depth_gt=np.nan_to_num(depth).astype(np.float32))
    (tmp_path / "README.md").write_text("| ball | 100 | 0.5 | 2.0 |\n\npoisson mean 1 mm in 0.1 s\n")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    report = bench.run(parser.parse_args(["--diligent", str(tmp_path), "--repeats", "1"]))
    (row,) = report.rows
    assert row["object"] == "ball" and row["bini_made"] == 0.5 and row["bini_s"] == 2.0
    assert row["made"] < 0.01 and row["steps"] >= 2 and row["converged"]
    assert {"mean MADE over the objects, mm"} <= {t["target"] for t in report.targets}
    assert any("scaled by the in-run poisson" in t["target"] for t in report.targets)

"""Normal-map folder evaluation: pairing, masks, known angles, heat maps, CLI outputs."""

import json

import numpy as np
import pytest

from facenormals3d.cli import main
from facenormals3d.conventions import write_normal_png
from facenormals3d.evaluate.normals import NormalPair, evaluate_pair, pair_files


def tilted(angle_deg, shape=(16, 16)):
    a = np.radians(angle_deg)
    n = np.zeros(shape + (3,), np.float32)
    n[..., 0], n[..., 2] = np.sin(a), np.cos(a)
    return n


def test_plane_vs_tilted_plane_gives_the_angle(tmp_path):
    np.save(tmp_path / "gt.npy", tilted(0))
    np.save(tmp_path / "pred.npy", tilted(20))
    m, err = evaluate_pair(NormalPair("x", tmp_path / "pred.npy", tmp_path / "gt.npy", None))
    assert m.mean == pytest.approx(20.0, abs=1e-3) and m.std < 1e-3
    assert m.under["22.5"] == 100.0 and m.under["30"] == 100.0
    assert m.under["11.25"] == 0.0 and m.n_pixels == 256


def test_png16_and_mask(tmp_path):
    gt = tilted(0)
    gt[:, :4] = np.nan  # unknown in the ground truth
    write_normal_png(tmp_path / "gt.png", gt)
    write_normal_png(tmp_path / "pr.png", tilted(30))
    import imageio.v3 as iio
    mask = np.zeros((16, 16), np.uint8)
    mask[8:] = 255
    iio.imwrite(tmp_path / "m.png", mask)
    m, _ = evaluate_pair(NormalPair("x", tmp_path / "pr.png", tmp_path / "gt.png", None))
    assert m.n_pixels == 16 * 12 and m.mean == pytest.approx(30.0, abs=0.01)
    m2, _ = evaluate_pair(NormalPair("x", tmp_path / "pr.png", tmp_path / "gt.png", tmp_path / "m.png"))
    assert m2.n_pixels == 8 * 12


def test_pairing_by_stem(tmp_path):
    (tmp_path / "p").mkdir(), (tmp_path / "g").mkdir()
    for name in ("a_normals.png", "b.npy", "c.npy"):
        (tmp_path / "p" / name).write_bytes(b"")
    for name in ("a.npy", "b.png", "d.npy"):
        (tmp_path / "g" / name).write_bytes(b"")
    pairs, missing = pair_files(tmp_path / "p", tmp_path / "g")
    assert [p.name for p in pairs] == ["a", "b"]
    assert missing == ["d: no prediction", "c: no ground truth"]


def test_cli_writes_csv_json_heatmaps_and_partial_exit(tmp_path, capsys):
    p, g, out = tmp_path / "p", tmp_path / "g", tmp_path / "out"
    p.mkdir(), g.mkdir()
    for name, ang in (("one", 10), ("two", 40)):
        np.save(g / f"{name}.npy", tilted(0, (8, 8) if name == "one" else (16, 16)))
        np.save(p / f"{name}.npy", tilted(ang, (8, 8) if name == "one" else (16, 16)))
    np.save(p / "bad.npy", tilted(5, (4, 4)))
    np.save(g / "bad.npy", tilted(0, (5, 5)))  # size mismatch -> one failed image
    code = main(["evaluate", "normals", "--pred", str(p), "--gt", str(g), "-o", str(out), "--json"])
    assert code == 1  # PARTIAL
    summary = json.loads((out / "summary.json").read_text())
    assert summary["per_image_mean"]["mean"] == pytest.approx(25.0, abs=1e-3)
    assert summary["pooled"]["mean"] == pytest.approx((64 * 10 + 256 * 40) / 320, abs=1e-3)
    assert "bad.npy" in summary["failed"][0]["error"]
    assert (out / "per_image.csv").read_text().splitlines()[0].startswith("image,mean,median")
    import imageio.v3 as iio
    heat = iio.imread(out / "heatmaps" / "two.png")
    assert heat.shape[1] > 16 and heat.ndim == 3  # picture + colour bar
    assert json.loads(capsys.readouterr().out)["exit_code"] == 1

"""NoW batch mode, export from reconstruct outputs, and the scan subcommand's outputs."""

import json

import numpy as np
import pytest
import trimesh

from facenormals3d.bench.evaluate import face_surface, sample_surface
from facenormals3d.cli import main
from facenormals3d.evaluate.now import export_now_layout, find_predictions


@pytest.fixture(scope="module")
def face():
    v, f, lm = face_surface(3000)
    return v, f, lm


def write_mesh(path, v, f):
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(v, f, process=False).export(path)


def test_scan_command_outputs_and_units(tmp_path, face, capsys):
    v, f, lm = face
    write_mesh(tmp_path / "pred.obj", v / 10.0, f)  # prediction in cm
    np.save(tmp_path / "pred.npy", lm / 10.0)
    trimesh.PointCloud(sample_surface(v, f, 3000) / 1000.0).export(tmp_path / "scan.ply")  # scan in m
    np.savetxt(tmp_path / "scan.txt", lm / 1000.0)
    out = tmp_path / "out"
    args = ["evaluate", "scan", "--pred", str(tmp_path / "pred.obj"), "--pred-landmarks", str(tmp_path / "pred.npy"),
            "--scan", str(tmp_path / "scan.ply"), "--scan-landmarks", str(tmp_path / "scan.txt"),
            "--unit", "cm", "--scan-unit", "m", "--metric", "-o", str(out), "--json"]
    assert main(args) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["median_mm"] < 0.01 and rec["scale"] == 1.0
    for name in ("result.json", "aligned_prediction.ply", "scan_error.ply", "distances.npy", "error.png"):
        assert (out / name).is_file()
    assert main(args) == 5  # output exists without --overwrite
    bad = list(args)
    bad[bad.index("--pred-landmarks") + 1] = str(tmp_path / "scan.ply")
    assert main(bad[:-3] + ["--json"]) == 3  # unreadable landmarks: BAD_INPUT


def test_now_batch_and_export(tmp_path, face, capsys):
    v, f, lm = face
    scans, pred = tmp_path / "scans", tmp_path / "pred"
    write_mesh(scans / "subjA" / "scan.obj", v, f)
    np.save(scans / "subjA" / "scan_lmks.npy", lm)
    recon = tmp_path / "recon"
    for photo, shift in (("IMG_1", 0.0), ("IMG_2", 5.0)):
        d = recon / photo / "face_0"
        write_mesh(d / "mesh.obj", v * 0.9 + shift, f)
        np.save(d / "landmarks7.npy", lm * 0.9 + shift)
    (recon / "IMG_3").mkdir()  # a photo without faces
    listing = tmp_path / "list.txt"
    listing.write_text("subjA/neutral/IMG_1.jpg\nsubjA/selfie/IMG_2.jpg\n")
    records, skipped = export_now_layout(recon, pred, image_list=listing)
    assert {(r["subject"], r["challenge"]) for r in records} == {("subjA", "neutral"), ("subjA", "selfie")}
    assert len(skipped) == 1 and "IMG_3" in skipped[0]
    assert "mtllib" not in (pred / "subjA" / "neutral" / "IMG_1.obj").read_text()
    # A prediction for a subject without a scan fails alone.
    write_mesh(pred / "subjB" / "neutral" / "IMG_9.obj", v, f)
    np.save(pred / "subjB" / "neutral" / "IMG_9.npy", lm)
    items, problems = find_predictions(pred)
    assert len(items) == 3 and not problems
    out = tmp_path / "now_out"
    code = main(["evaluate", "now", "--pred", str(pred), "--scans", str(scans), "-o", str(out), "--json"])
    assert code == 1  # PARTIAL: subjB has no scan
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_ok"] == 2 and summary["n_failed"] == 1
    assert summary["summary"]["all"]["pooled_median_mm"] < 0.01
    assert set(summary["summary"]) == {"neutral", "selfie", "all"}
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("item,subject,challenge,image,status,median_mm") and len(csv) == 4
    assert any("failed" in line and "subjB" in line for line in csv)

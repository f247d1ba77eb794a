"""`facenormals3d bench synth` runs end to end on a tiny fake ICT folder and reports its targets."""

import json

from facenormals3d.cli import main
from facenormals3d.data.fake_ict import write_fake_ict


def test_bench_synth_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FACENORMALS3D_CACHE", str(tmp_path / "cache"))
    ict = write_fake_ict(tmp_path / "ICT-FaceKit")
    out = tmp_path / "bench.json"
    assert main(["bench", "synth", "--ict-dir", str(ict), "--samples", "2", "--rounds", "2", "--workers", "1",
                 "--size", "64", "--out", str(out), "--json"]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["workers"] == 1 and row["rounds"] == 2
    assert row["slowest_round"] <= row["samples_per_s"] <= row["fastest_round"]
    assert row["cpu_ms_per_sample"] > 0 and row["peak_rss_mb_per_worker"] > 0
    # Without a 2-worker row only the memory target applies.
    assert [t["limit"] for t in report["targets"]] == [2048.0]
    assert report["reference"]["reference_cast_ms"] > 0 and report["reference"]["reference_cast_build_ms"] > 0
    assert json.loads(capsys.readouterr().out)["name"] == "synth"

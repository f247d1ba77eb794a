"""`facenormals3d bench network` runs on a tiny candidate and reports its target."""

import json

import pytest

from facenormals3d.cli import main


@pytest.mark.slow  # times the shipped config too (~tens of seconds on a busy 2-core box)
def test_bench_network_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "network", "--widths", "0.0625", "--sizes", "64", "--batch-size", "2",
                 "--repeats", "1", "--out", str(out), "--json"]) == 0
    report = json.loads(out.read_text())
    rows = {(r["width"], r["train_size"]): r for r in report["rows"]}
    assert (0.0625, 64) in rows and any(r["shipped"] for r in report["rows"])
    tiny = rows[(0.0625, 64)]
    assert tiny["train_GFLOP_per_sample"] > 0 and tiny["train_samples_per_s"] > 0
    assert report["targets"][0]["limit"] == 150.0
    assert "paper config 38.94 M" in " ".join(report["notes"])
    assert json.loads(capsys.readouterr().out)["name"] == "network"

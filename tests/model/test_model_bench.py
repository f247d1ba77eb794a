"""`facenormals3d bench network` runs on a tiny candidate and reports its target."""

import json

import pytest

from facenormals3d.cli import main
from facenormals3d.model.config import ModelConfig


def test_bench_network_smoke(tmp_path, capsys, monkeypatch):
    # A tiny "shipped" config: the bench adds it to the candidates without timing the real one.
    monkeypatch.setattr("facenormals3d.model.config.shipped_config", lambda: ModelConfig(width=0.0625, input_size=64, coarse_normals=True))
    out = tmp_path / "bench.json"
    assert main(["bench", "network", "--widths", "0.0625", "--sizes", "128", "--batch-size", "2",
                 "--repeats", "1", "--threads", "1", "--out", str(out), "--json"]) == 0
    report = json.loads(out.read_text())
    rows = {(r["width"], r["train_size"]): r for r in report["rows"]}
    assert set(rows) == {(0.0625, 64), (0.0625, 128)}
    assert [r["shipped"] for r in report["rows"]] == [True, False]  # the shipped config first
    tiny = rows[(0.0625, 128)]
    assert tiny["train_GFLOP_per_sample"] > 0 and tiny["train_samples_per_s"] > 0 and tiny["infer_ms_256"] > 0
    # Same network at a quarter of the pixels: same parameters, about a quarter of the FLOPs.
    assert rows[(0.0625, 64)]["params_M"] == tiny["params_M"]
    assert rows[(0.0625, 64)]["train_GFLOP_per_sample"] == pytest.approx(tiny["train_GFLOP_per_sample"] / 4, rel=0.1)
    (t,) = report["targets"]
    assert t["limit"] == 60.0 and t["value"] == rows[(0.0625, 64)]["infer_ms_256"]
    assert report["reference"]["paper_params_M"] == pytest.approx(38.94, abs=0.005)
    assert json.loads(capsys.readouterr().out)["name"] == "network"
    assert {r["input_channels"] for r in report["rows"]} == {6}  # every candidate reads RGB + the prior normals
    assert 0 < tiny["infer_single_ms_256"]  # one pass; infer_ms_256 is reconstruct's (with the mirror pass)


def test_bench_network_times_bfloat16_training_beside_float32(tmp_path, monkeypatch):
    monkeypatch.setattr("facenormals3d.model.config.shipped_config", lambda: ModelConfig(width=0.0625, input_size=64, coarse_normals=True))
    out = tmp_path / "bench.json"
    assert main(["bench", "network", "--widths", "0.0625", "--sizes", "64", "--batch-size", "2", "--repeats", "1",
                 "--threads", "1", "--bf16", "--out", str(out), "--json", "-q"]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["train_samples_per_s_bf16"] > 0 and row["train_samples_per_s"] > 0
    assert any(n.startswith("bfloat16 training (train --bf16), shipped config:") for n in report["notes"])


def test_shipped_config_matches_the_shipped_weights():
    from facenormals3d.model.config import shipped_config
    from facenormals3d.model.weights import read_sidecar
    from facenormals3d.pipeline import DEFAULT_WEIGHTS

    assert ModelConfig.from_dict(read_sidecar(DEFAULT_WEIGHTS)["config"]) == shipped_config()

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


def _bench_tiny_shipped(tmp_path, monkeypatch, *extra: str) -> dict:
    """`bench network` on a tiny stand-in for the shipped config alone (one row); its JSON report."""
    monkeypatch.setattr("facenormals3d.model.config.shipped_config", lambda: ModelConfig(width=0.0625, input_size=64, coarse_normals=True))
    out = tmp_path / "bench.json"
    assert main(["bench", "network", "--widths", "0.0625", "--sizes", "64", "--batch-size", "2", "--repeats", "1",
                 "--threads", "1", *extra, "--out", str(out), "--json", "-q"]) == 0
    return json.loads(out.read_text())


def test_bench_network_times_bfloat16_training_beside_float32(tmp_path, monkeypatch):
    report = _bench_tiny_shipped(tmp_path, monkeypatch, "--bf16")
    (row,) = report["rows"]
    assert row["train_samples_per_s_bf16"] > 0 and row["train_samples_per_s"] > 0
    assert any(n.startswith("bfloat16 training (train --bf16), shipped config:") for n in report["notes"])


def test_shipped_config_matches_the_shipped_weights():
    from facenormals3d.model.config import shipped_config
    from facenormals3d.model.weights import read_sidecar
    from facenormals3d.pipeline import DEFAULT_WEIGHTS

    assert ModelConfig.from_dict(read_sidecar(DEFAULT_WEIGHTS)["config"]) == shipped_config()


def test_bench_network_times_a_matmul_yardstick_beside_the_network(tmp_path, monkeypatch):
    report = _bench_tiny_shipped(tmp_path, monkeypatch)
    (row,) = report["rows"]
    assert report["reference"]["matmul_GFLOP_s"] > 0
    # Counted, not timed: the flip-averaged face is two passes of the same network.
    import torch

    from facenormals3d.bench.network import _counted_gflop
    from facenormals3d.model.crossmodal import CrossModalNet
    from facenormals3d.model.infer import predict_normals

    model = CrossModalNet(ModelConfig(width=0.0625, input_size=64, coarse_normals=True))
    face, prior = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    one = _counted_gflop(lambda: predict_normals(model, face, prior))
    assert one > 0 and row["infer_GFLOP_256"] == pytest.approx(2 * one, rel=1e-6)
    (note,) = [n for n in report["notes"] if n.startswith("yardstick, same run: float32 matmul")]
    assert f"{row['infer_ms_256']:.1f} ms" in note


def test_matmul_yardstick_counts_two_n_cubed_flop(monkeypatch):
    # The rate is 2 n^3 FLOP over the best time; the timer is replaced (no timing in tests).
    import facenormals3d.bench.network as network

    calls = []

    def fake_time_call(fn, repeats):
        calls.append(fn().shape)
        return 0.5, None

    monkeypatch.setattr(network, "time_call", fake_time_call)
    assert network.matmul_gflops(repeats=1, n=100) == pytest.approx(2 * 100 ** 3 / 0.5 / 1e9)
    assert calls == [(100, 100)]


def test_cpu_model_reads_the_model_name_line(tmp_path):
    from facenormals3d.bench import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7551\nflags\t: avx2\n")
    assert cpu_model(str(info)) == "AMD EPYC 7551"
    assert cpu_model(str(tmp_path / "missing")) == ""

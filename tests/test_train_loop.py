"""The training loop on a tiny fake paired dataset: logs, validation, resume, signals, export."""

import json
import os
import signal

import pytest
import torch

from facenormals3d.model.config import ModelConfig
from facenormals3d.model.weights import load_weights
from facenormals3d.training.checkpoint import export_weights, load_checkpoint
from facenormals3d.training.config import TrainConfig
from facenormals3d.training.data import DataSources, flip_batch
from facenormals3d.training.train import train

SIZE = 32


class FakePaired(torch.utils.data.Dataset):
    """Sphere-cap normals in a disc mask, a shaded image of them; the keys of ShardDataset."""

    def __init__(self, n, seed=0, on_item=None, size=SIZE):
        self.n, self.seed, self.on_item, self.size = n, seed, on_item, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.on_item:
            self.on_item(i)
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        ys, xs = torch.meshgrid(torch.linspace(1, -1, self.size), torch.linspace(-1, 1, self.size), indexing="ij")
        r = 0.6 + 0.3 * torch.rand(1, generator=g)
        x, y = xs / r, ys / r
        inside = (x**2 + y**2) < 1
        z = torch.sqrt((1 - x**2 - y**2).clamp_min(0))
        normals = torch.stack([x, y, z]) * inside
        light = torch.nn.functional.normalize(torch.randn(3, generator=g) + torch.tensor([0, 0, 2.0]), dim=0)
        shade = (normals * light.view(3, 1, 1)).sum(0).clamp_min(0)
        image = (0.2 + 0.7 * shade).expand(3, -1, -1) * torch.tensor([1.0, 0.8, 0.7]).view(3, 1, 1)
        return {"image": image.clone(), "normals": normals, "mask": inside[None].float(),
                "identity": torch.tensor(i, dtype=torch.int64)}


def tiny_cfg(**kw):
    base = dict(model=ModelConfig(width=1 / 16, input_size=SIZE), steps=4, batch_size=2, lr=1e-3,
                warmup_steps=100, val_every=2, val_samples=4, checkpoint_every=2, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def tiny_data(**kw):
    return DataSources(paired_train=FakePaired(6, **kw), paired_val=FakePaired(3, seed=9),
                       images=FakePaired(5, seed=3), normals=FakePaired(5, seed=4))


def test_run_writes_logs_samples_checkpoint(tmp_path):
    result = train(tiny_cfg(), tiny_data(), tmp_path)
    assert result.step == 4 and not result.interrupted
    rows = [json.loads(line) for line in (tmp_path / "log_train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("loss", "normal_l1", "normal_angular", "latent", "image_l1", "recon_l1"):
        assert all(isinstance(r[key], float) and r[key] == r[key] for r in rows), key
    assert (tmp_path / "log_train.csv").read_text().startswith("step,loss,")
    val = [json.loads(line) for line in (tmp_path / "log_val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4] and 0 <= val[-1]["mean"] <= 180
    assert (tmp_path / "samples" / "val_00000004.png").is_file()
    assert (tmp_path / "best.safetensors").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4 and set(ckpt["data"]) == {"paired_train", "images", "normals"}


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_continues_exactly(tmp_path):
    train(tiny_cfg(), tiny_data(), tmp_path / "straight")
    train(tiny_cfg(steps=2), tiny_data(), tmp_path / "split")
    result = train(tiny_cfg(steps=4), tiny_data(), tmp_path / "split", resume=True)
    assert result.step == 4
    a, b = _weights(tmp_path / "straight" / "checkpoint.pt"), _weights(tmp_path / "split" / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_stops_with_checkpoint(tmp_path):
    calls = {"n": 0}

    def kill_on_third_batch(_i):
        calls["n"] += 1
        if calls["n"] == 5:  # during step 3's paired batch (2 items per batch)
            os.kill(os.getpid(), signal.SIGTERM)

    data = DataSources(paired_train=FakePaired(6, on_item=kill_on_third_batch))
    result = train(tiny_cfg(steps=50, checkpoint_every=100), data, tmp_path)
    assert result.interrupted and result.step == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_time_budget_stops_validated_and_resumable(tmp_path):
    # A budget already spent after the first step: the run stops there, scored where it
    # stopped (runs compared on one budget), with a checkpoint to resume from.
    result = train(tiny_cfg(steps=50, val_every=100, checkpoint_every=100, max_minutes=1e-9),
                   tiny_data(), tmp_path)
    assert result.interrupted and result.step == 1
    val = [json.loads(line) for line in (tmp_path / "log_val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [1]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1


def test_single_source_runs(tmp_path):
    result = train(tiny_cfg(steps=2), DataSources(normals=FakePaired(4)), tmp_path)
    rows = (tmp_path / "log_train.jsonl").read_text().splitlines()
    assert result.step == 2 and json.loads(rows[-1])["normal_l1"] == ""
    assert not (tmp_path / "log_val.jsonl").exists()  # no paired validation data


def test_export_weights_matches_checkpoint(tmp_path):
    train(tiny_cfg(steps=2), tiny_data(), tmp_path)
    path = export_weights(tmp_path / "checkpoint.pt", tmp_path / "model.safetensors")
    model = load_weights(path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert json.loads(path.with_suffix(".json").read_text())["metadata"]["steps"] == 2


def test_flip_negates_normal_x():
    batch = {"normals": torch.randn(2, 3, 4, 4), "mask": torch.rand(2, 1, 4, 4)}
    out = flip_batch(batch, torch.tensor([True, False]))
    assert torch.equal(out["normals"][0, 0], -batch["normals"][0, 0].flip(-1))
    assert torch.equal(out["normals"][0, 1:], batch["normals"][0, 1:].flip(-1))
    assert torch.equal(out["normals"][1], batch["normals"][1])
    assert torch.equal(out["mask"][0], batch["mask"][0].flip(-1))


def test_no_data_is_an_input_error(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        train(tiny_cfg(), DataSources(), tmp_path)


def test_training_the_confidence_alone_keeps_every_other_number(tmp_path):
    from dataclasses import replace

    from facenormals3d.errors import InputError

    train(tiny_cfg(steps=2), tiny_data(), tmp_path / "base")
    base = export_weights(tmp_path / "base" / "checkpoint.pt", tmp_path / "base.safetensors")
    cfg = tiny_cfg(steps=3, lr=1e-2, warmup_steps=1, train_only="confidence", init_weights=str(base))
    cfg = replace(cfg, model=replace(cfg.model, confidence=True))
    result = train(cfg, tiny_data(), tmp_path / "conf")
    assert result.step == 3
    before = load_weights(base).state_dict()
    after = _weights(tmp_path / "conf" / "checkpoint.pt")
    for name, value in before.items():  # weights and batch-norm statistics
        if name.startswith("dec_normal.head."):
            assert torch.equal(after[name][:3], value), name  # the normals' rows
            assert not torch.equal(after[name][3:], torch.zeros_like(after[name][3:])), name  # learnt
        else:
            assert torch.equal(after[name], value), name
    rows = [json.loads(line) for line in (tmp_path / "conf" / "log_train.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["confidence_nll"] and r["latent"] == "" for r in rows)
    val = [json.loads(line) for line in (tmp_path / "conf" / "log_val.jsonl").read_text().splitlines()]
    for key in ("confidence_nll", "confident_mean_deg", "mean_deg", "expected_mean_deg"):
        assert all(v[key] == v[key] for v in val), key
    assert val[-1]["mean_deg"] == pytest.approx(val[-1]["mean"], abs=1e-6)  # the same frozen normals
    with pytest.raises(InputError, match="--confidence"):
        train(tiny_cfg(train_only="confidence", init_weights=str(base)), tiny_data(), tmp_path / "bad")


def test_training_the_detail_head_alone_keeps_every_other_number(tmp_path):
    from facenormals3d.errors import InputError

    train(tiny_cfg(steps=2), tiny_data(), tmp_path / "base")
    base = export_weights(tmp_path / "base" / "checkpoint.pt", tmp_path / "base.safetensors")
    model = ModelConfig(width=1 / 16, input_size=SIZE, detail_channels=4)
    big = DataSources(paired_train=FakePaired(6, size=2 * SIZE), paired_val=FakePaired(3, seed=9, size=2 * SIZE))
    cfg = tiny_cfg(model=model, steps=3, lr=1e-2, warmup_steps=1, train_only="detail", init_weights=str(base))
    assert train(cfg, big, tmp_path / "detail").step == 3
    before = load_weights(base).state_dict()
    after = _weights(tmp_path / "detail" / "checkpoint.pt")
    assert set(after) - set(before) == {k for k in after if k.startswith("detail.")}
    for name, value in before.items():  # weights and batch-norm statistics
        assert torch.equal(after[name], value), name
    assert after["detail.out.weight"].abs().max() > 0  # learnt from its zero start
    rows = [json.loads(line) for line in (tmp_path / "detail" / "log_train.jsonl").read_text().splitlines()]
    assert all(r["loss"] > 0 and r["latent"] == "" and r["image_l1"] == "" for r in rows)
    exported = export_weights(tmp_path / "detail" / "checkpoint.pt", tmp_path / "detail.safetensors")
    assert load_weights(exported).detail is not None
    with pytest.raises(InputError, match="--detail-channels"):
        train(tiny_cfg(train_only="detail", init_weights=str(base)), big, tmp_path / "bad")


def test_a_whole_network_with_a_detail_head_is_scored_at_the_crops_size(tmp_path):
    from facenormals3d.training.data import fit_to_input
    from facenormals3d.training.step import Branches

    model = ModelConfig(width=1 / 16, input_size=SIZE, detail_channels=4)
    big = DataSources(paired_train=FakePaired(6, size=2 * SIZE), paired_val=FakePaired(3, seed=9, size=2 * SIZE),
                      images=FakePaired(5, seed=3, size=2 * SIZE), normals=FakePaired(5, seed=4, size=2 * SIZE))
    assert train(tiny_cfg(model=model), big, tmp_path).step == 4
    items = [big.paired_train[i] for i in range(2)]
    batch = fit_to_input({k: torch.stack([it[k] for it in items]) for k in ("image", "normals", "mask")}, SIZE,
                         keep_full=True)
    assert batch["image"].shape[-1] == SIZE and batch["image_full"].shape[-1] == 2 * SIZE
    net = load_weights(export_weights(tmp_path / "checkpoint.pt", tmp_path / "w.safetensors"))
    losses = Branches(net, tiny_cfg(model=model))(batch, None, None)
    # The normal terms are those of the full-size prediction against the full-size truth.
    pred, _, _ = net.image_to_normals_confidence(batch["image"], None, batch["image_full"])
    expected = 1 - (pred * batch["normals_full"]).sum(1, keepdim=True)
    mask = batch["mask_full"]
    assert torch.allclose(losses["normal_angular"], (expected * mask).sum() / mask.sum(), atol=1e-5)


def test_init_weights_are_recorded_by_their_sha256_and_checked(tmp_path):
    """A run records which weights it started from; its config refuses other weights."""
    from dataclasses import replace

    from facenormals3d.errors import InputError
    from facenormals3d.model.weights import sha256_file

    train(tiny_cfg(steps=1), tiny_data(), tmp_path / "a")
    train(tiny_cfg(steps=2), tiny_data(), tmp_path / "b")
    a = export_weights(tmp_path / "a" / "checkpoint.pt", tmp_path / "a.safetensors")
    b = export_weights(tmp_path / "b" / "checkpoint.pt", tmp_path / "b.safetensors")
    train(tiny_cfg(steps=1, init_weights=str(a)), tiny_data(), tmp_path / "from_a")
    saved = TrainConfig.from_dict(json.loads((tmp_path / "from_a" / "train_config.json").read_text()))
    assert saved.init_weights_sha256 == sha256_file(a)
    train(saved, tiny_data(), tmp_path / "again")  # the same weights: accepted
    with pytest.raises(InputError, match="SHA-256"):
        train(replace(saved, init_weights=str(b)), tiny_data(), tmp_path / "other")
    with pytest.raises(InputError, match="no such file"):
        train(tiny_cfg(init_weights=str(tmp_path / "missing.safetensors")), tiny_data(), tmp_path / "missing")


def _loss_and_grad(batch, bf16):
    """The shipped network's training loss on ``batch`` and its gradient (flattened), and the
    normal decoder's part of that gradient."""
    from facenormals3d.model.weights import load_weights
    from facenormals3d.pipeline import DEFAULT_WEIGHTS
    from facenormals3d.training.step import Branches

    model = load_weights(DEFAULT_WEIGHTS).train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = Branches(model, TrainConfig(model=model.cfg))(batch, None, None)["loss"]
    loss.backward()
    grads = [(n, p.grad.flatten()) for n, p in model.named_parameters() if p.grad is not None]
    return (loss.item(), torch.cat([g for _, g in grads]),
            torch.cat([g for n, g in grads if n.startswith("dec_normal.")]))


def test_bfloat16_step_matches_the_float32_step():
    # The fast path beside its reference: the shipped weights (a random tiny network's
    # gradients are ill-conditioned: its 1 x 1 bottleneck's batch norm over 2-4 samples
    # magnifies rounding), sphere caps at the network's input size, no prior.
    items = [FakePaired(4)[i] for i in range(4)]
    batch = {k: torch.nn.functional.interpolate(torch.stack([it[k] for it in items]), size=(128, 128))
             for k in ("image", "normals", "mask")}
    batch["coarse_normals"] = torch.zeros_like(batch["normals"])
    # The whole gradient's bound is looser than the decoder's: with stage 16 the stem
    # convolution's weight gradient (half the image encoder's) sums 7 x 7 taps over every
    # pixel with heavy cancellation, so it turns with tiny input changes: in float32, only
    # rounding the image to bfloat16 gives it a cosine of 0.973 (0.991 for the whole
    # gradient); bfloat16 autocast gives 0.90 there and 0.972 overall (stage 15: 0.996),
    # while the normal decoder's gradient agrees at 0.9996.
    loss32, grad32, dec32 = _loss_and_grad(batch, bf16=False)
    loss16, grad16, dec16 = _loss_and_grad(batch, bf16=True)
    assert loss16 != loss32  # bfloat16 did run
    assert abs(loss16 - loss32) < 0.005 * loss32
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.95
    assert torch.nn.functional.cosine_similarity(dec16, dec32, dim=0) > 0.995


def test_cpu_bfloat16_is_chosen_by_the_config_and_may_be_switched_on_when_resuming(tmp_path):
    from facenormals3d.training.train import autocast_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(tiny_cfg(), cpu) is None
    assert autocast_dtype(tiny_cfg(cpu_bf16=True), cpu) is torch.bfloat16
    assert autocast_dtype(tiny_cfg(), cuda) is torch.float16
    assert autocast_dtype(tiny_cfg(amp=False, cpu_bf16=True), cuda) is None
    train(tiny_cfg(steps=2), tiny_data(), tmp_path)
    result = train(tiny_cfg(steps=4, cpu_bf16=True), tiny_data(), tmp_path, resume=True)
    assert result.step == 4
    assert json.loads((tmp_path / "train_config.json").read_text())["cpu_bf16"] is True
    rows = [json.loads(line) for line in (tmp_path / "log_train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["loss"] == r["loss"] for r in rows)


def test_bfloat16_on_a_cpu_without_it_is_warned_about(tmp_path, monkeypatch, caplog):
    import facenormals3d.training.train as train_module

    monkeypatch.setattr(train_module, "_cpu_has_bfloat16", lambda: False)
    with caplog.at_level("WARNING", logger="facenormals3d.train"):
        train(tiny_cfg(steps=1, cpu_bf16=True), tiny_data(), tmp_path)
    assert any("no bfloat16 instructions" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="facenormals3d.train"):
        train(tiny_cfg(steps=1), tiny_data(), tmp_path / "float32")
    assert not any("bfloat16" in r.getMessage() for r in caplog.records)

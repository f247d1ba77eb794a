"""Weights round trip through safetensors with a SHA-256 check, and prediction on crops."""

import json

import numpy as np
import pytest
import torch

from facenormals3d.errors import InputError
from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.infer import predict_normals
from facenormals3d.model.weights import load_weights, save_weights, sidecar_path


def make_model():
    torch.manual_seed(1)
    return CrossModalNet(ModelConfig(width=1 / 16, input_size=64)).eval()


def test_round_trip_same_outputs(tmp_path):
    model = make_model()
    path = save_weights(tmp_path / "w.safetensors", model, {"steps": 3})
    info = json.loads(sidecar_path(path).read_text())
    assert info["metadata"] == {"steps": 3} and info["config"]["input_size"] == 64
    loaded = load_weights(path)
    state, back = model.state_dict(), loaded.state_dict()
    assert state.keys() == back.keys() and all(torch.equal(state[k], back[k]) for k in state)
    # Loaded for inference in the channels-last layout: the same function up to float
    # rounding (other convolution kernels).
    assert loaded.enc_image.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-5)


def test_tampered_file_is_refused(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", make_model())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        load_weights(path)


def test_missing_sidecar_and_bad_suffix(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", make_model())
    sidecar_path(path).unlink()
    with pytest.raises(InputError, match="sidecar"):
        load_weights(path)
    with pytest.raises(InputError, match="safetensors"):
        save_weights(tmp_path / "w.pt", make_model())


def test_predict_uint8_and_float_agree_and_resize():
    model = make_model()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    a = predict_normals(model, crops, batch_size=2)
    b = predict_normals(model, torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255)
    assert a.shape == (3, 3, 64, 64) and torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a.norm(dim=1), torch.ones(3, 64, 64), atol=1e-5)
    big = predict_normals(model, rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8))
    assert big.shape == (1, 3, 128, 128)
    with pytest.raises(InputError):
        predict_normals(model, crops.astype(np.float32))

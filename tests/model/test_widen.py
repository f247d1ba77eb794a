"""Function-preserving widening of a trained network (model/widen.py)."""

import pytest
import torch

from facenormals3d.errors import InputError
from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.widen import widen


def _trained_like(cfg: ModelConfig, seed: int) -> CrossModalNet:
    """A network with random weights and random batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = CrossModalNet(cfg)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("widths", [(0.25, 0.375), (0.375, 0.5), (0.125, 0.125)])
def test_the_widened_network_computes_the_same(widths):
    small, big = (ModelConfig(width=w, input_size=64, coarse_normals=True, confidence=True) for w in widths)
    src = _trained_like(small, 0)
    dst = _trained_like(big, 1)
    widen(src, dst)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 64, 64, generator=g)
    prior = torch.nn.functional.normalize(torch.randn(2, 3, 64, 64, generator=g), dim=1)
    with torch.no_grad():
        n_src, k_src, _ = src.image_to_normals_confidence(image, prior)
        n_dst, k_dst, _ = dst.image_to_normals_confidence(image, prior)
        torch.testing.assert_close(n_dst, n_src, atol=2e-5, rtol=0)
        torch.testing.assert_close(k_dst, k_src, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(dst.image_to_image(image, prior), src.image_to_image(image, prior),
                                   atol=2e-5, rtol=0)
        torch.testing.assert_close(dst.normals_to_normals(prior)[0], src.normals_to_normals(prior)[0],
                                   atol=2e-5, rtol=0)
    if widths[1] > widths[0]:  # the new channels compute something (they can learn)
        assert sum(p.numel() for p in dst.parameters()) > sum(p.numel() for p in src.parameters())
        assert dst.dec_normal.lift.weight.abs().sum() > src.dec_normal.lift.weight.abs().sum()


def test_a_detail_head_is_carried_over():
    small, big = (ModelConfig(width=w, input_size=64, coarse_normals=True, detail_channels=4) for w in (0.25, 0.375))
    src = _trained_like(small, 0)
    with torch.no_grad():  # a trained head: its last convolution no longer zero
        torch.nn.init.normal_(src.detail.out.weight, std=0.1)
        torch.nn.init.normal_(src.detail.out.bias, std=0.1)
    dst = _trained_like(big, 1)
    widen(src, dst)
    g = torch.Generator().manual_seed(3)
    full = torch.rand(2, 3, 128, 128, generator=g)
    image = torch.nn.functional.interpolate(full, size=(64, 64), mode="bilinear", align_corners=False)
    prior = torch.nn.functional.normalize(torch.randn(2, 3, 64, 64, generator=g), dim=1)
    with torch.no_grad():
        n_src = src.image_to_normals_confidence(image, prior, full)[0]
        n_dst = dst.image_to_normals_confidence(image, prior, full)[0]
        plain = src.image_to_normals_confidence(image, prior)[0]
    assert n_src.shape == (2, 3, 128, 128)
    torch.testing.assert_close(n_dst, n_src, atol=2e-5, rtol=0)
    # The head matters here: without it the normals are far from its output.
    up = torch.nn.functional.interpolate(plain, size=(128, 128), mode="bilinear", align_corners=False)
    assert (n_src - torch.nn.functional.normalize(up, dim=1)).abs().max() > 1e-2


def test_only_the_width_may_differ():
    src = CrossModalNet(ModelConfig(width=0.25, input_size=64))
    with pytest.raises(InputError, match="only by their width"):
        widen(src, CrossModalNet(ModelConfig(width=0.375, input_size=64, coarse_normals=True)))
    with pytest.raises(InputError, match="only by their width"):
        widen(CrossModalNet(ModelConfig(width=0.25, input_size=64, detail_channels=4)),
              CrossModalNet(ModelConfig(width=0.375, input_size=64, detail_channels=8)))
    with pytest.raises(InputError, match="narrow"):
        widen(CrossModalNet(ModelConfig(width=0.375, input_size=64)), src)


def test_training_can_start_from_narrower_weights(tmp_path):
    from facenormals3d.model.weights import save_weights
    from facenormals3d.training.checkpoint import init_from_weights

    src = _trained_like(ModelConfig(width=0.25, input_size=64, coarse_normals=True), 0)
    path = save_weights(tmp_path / "narrow.safetensors", src)
    dst = CrossModalNet(ModelConfig(width=0.375, input_size=64, coarse_normals=True))
    counts = init_from_weights(dst, path)
    assert counts["widened"] == len(dst.state_dict()) and counts["skipped"] == 0
    image, prior = torch.rand(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst.eval()(image, prior), src(image, prior), atol=2e-5, rtol=0)

"""Shapes, skip switching, gradients and unit output of the cross-modal network."""

import pytest
import torch
from torch import nn

from facenormals3d.model.config import ModelConfig, paper_config
from facenormals3d.model.crossmodal import CrossModalNet, count_parameters
from facenormals3d.model.losses import image_l1, latent_distance, normal_angular, normal_l1
from facenormals3d.model.networks import merge_skip


def tiny(size=32, **kw):
    torch.manual_seed(0)
    return CrossModalNet(ModelConfig(width=1 / 16, input_size=size, **kw))


@pytest.mark.parametrize("size", [128, 256])
def test_shapes(size):
    model = tiny(size)
    x = torch.rand(2, 3, size, size)
    normals, latent = model.image_to_normals(x)
    assert normals.shape == (2, 3, size, size)
    assert latent.shape == (2, model.cfg.enc[-1], size // 32, size // 32)
    assert model.image_to_image(x).shape == (2, 3, size, size)
    rec, lat_n = model.normals_to_normals(normals.detach())
    assert rec.shape == (2, 3, size, size) and lat_n.shape == latent.shape


def test_paper_config_builds_with_stated_size():
    model = CrossModalNet(paper_config())
    n = count_parameters(model)
    # Paper: ~35 M. Our reading (two ResNet-18 encoders 2 x 11.18 M, two decoders
    # 768-640-320-320-192-64 at 2 x 8.25 M, skip projections 0.09 M) gives 38.9 M.
    assert 34e6 < n < 42e6
    assert model.cfg.latent_size == 8 and model.cfg.enc[-1] == 512
    with torch.no_grad():
        _, latent = model.eval().image_to_normals(torch.rand(1, 3, 256, 256))
    assert latent.shape == (1, 512, 8, 8)


def test_skips_off_equals_zero_skips():
    model = tiny(64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.encode_image(x)
        skips = model.skips(feats)
        off = model.decode_normals(feats[-1], None)
        zeros = model.decode_normals(feats[-1], [torch.zeros_like(s) for s in skips])
        on = model.decode_normals(feats[-1], skips)
        # Zero encoder features project to zero skips (no bias), the same again.
        zero_feats = model.decode_normals(feats[-1], model.skips([torch.zeros_like(f) for f in feats]))
    assert torch.equal(off, zeros)
    assert torch.equal(off, zero_feats)
    assert not torch.allclose(on, off)  # the skips do change the output when on


def test_merge_skip_touches_last_channels_only():
    x = torch.tensor([1.0, 5.0, 0.0, 2.0]).view(1, 4, 1, 1)
    s = torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    assert merge_skip(x, s).flatten().tolist() == [1.0, 5.0, 3.0, 2.0]


def test_image_to_normals_unit_length():
    model = tiny(64)
    n = model(torch.rand(3, 3, 64, 64))
    assert torch.allclose(n.norm(dim=1), torch.ones(3, 64, 64), atol=1e-5)


def test_gradcheck_float64():
    model = tiny(32).double().eval()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: model(t), (x,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
    n = torch.nn.functional.normalize(torch.randn(1, 3, 32, 32, dtype=torch.float64), dim=1)
    n.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: model.normals_to_normals(t)[0], (n,), eps=1e-6,
                                    atol=1e-5, rtol=1e-3, fast_mode=True)


def test_three_branches_one_step_reach_all_parts():
    model = tiny(64)
    image = torch.rand(2, 3, 64, 64)
    gt = torch.nn.functional.normalize(torch.randn(2, 3, 64, 64), dim=1)
    mask = torch.ones(2, 1, 64, 64)
    pred, lat_i = model.image_to_normals(image)
    rec_n, lat_n = model.normals_to_normals(gt)
    rec_i = model.image_to_image(image)
    loss = (normal_l1(pred, gt, mask) + normal_angular(pred, gt, mask) + image_l1(rec_i, image)
            + normal_l1(rec_n, gt, mask) + latent_distance(lat_i, lat_n))
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_coarse_normals_channel():
    model = tiny(32, coarse_normals=True).eval()
    assert model.enc_image.stem[0].in_channels == 6
    x = torch.rand(1, 3, 32, 32)
    assert model(x, torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="coarse"):
        model(x)


def test_bad_input_shape_is_reported():
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny(32)(torch.rand(1, 3, 30, 30))


@pytest.mark.parametrize("c_in,size", [(4, 16), (6, 15), (36, 9)])
def test_strided_pointwise_matches_a_strided_1x1_conv(c_in, size):
    # Reference: torch's own strided 1x1 conv in the contiguous layout (the layout whose
    # weight gradient is right on every CPU); ours in channels-last, where oneDNN's AVX2
    # kernel corrupts memory for fewer than 8 input channels (oneDNN#6035).
    from facenormals3d.model.networks import StridedPointwise

    torch.manual_seed(0)
    ours = StridedPointwise(c_in, 8, 2)
    ref = nn.Conv2d(c_in, 8, 1, 2, bias=False)
    ref.weight.data.copy_(ours.weight.data)
    x = torch.randn(2, c_in, size, size)
    xo = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    yo, yr = ours.to(memory_format=torch.channels_last)(xo), ref(xr)
    assert yo.shape == yr.shape == (2, 8, (size + 1) // 2, (size + 1) // 2)
    g = torch.randn_like(yr)
    yo.backward(g.contiguous(memory_format=torch.channels_last))
    yr.backward(g)
    torch.testing.assert_close(yo, yr)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(xo.grad, xr.grad)
    assert set(ours.state_dict()) == set(ref.state_dict())  # same parameters: weights load either way

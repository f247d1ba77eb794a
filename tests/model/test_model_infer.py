"""Inference helpers: the mirror of a map, and the flip-averaged prediction."""

import torch
import torch.nn.functional as F

from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.infer import mirror_maps, predict_normals, predict_normals_confidence


def test_mirror_maps_flips_columns_and_normal_x():
    n = F.normalize(torch.randn(2, 3, 4, 5), dim=1)
    m = mirror_maps(n, normals=True)
    assert torch.equal(m[:, 0, :, 0], -n[:, 0, :, -1])  # x negated, columns reversed
    assert torch.equal(m[:, 1:, :, 0], n[:, 1:, :, -1])
    assert torch.equal(mirror_maps(m, normals=True), n)
    image = torch.rand(1, 3, 4, 5)
    assert torch.equal(mirror_maps(image), image.flip(-1))  # colours are not negated


def test_flip_average_is_mirror_equivariant_and_a_unit_blend_of_both_passes():
    # A random network is not mirror-symmetric; averaging it with its mirrored pass is: the
    # mirrored face's result is the mirror of the face's result (what a symmetric face needs).
    torch.manual_seed(0)
    net = CrossModalNet(ModelConfig(width=1 / 16, input_size=64, coarse_normals=True, confidence=True)).eval()
    image = torch.rand(1, 3, 64, 64)
    prior = F.normalize(torch.randn(1, 3, 64, 64), dim=1)
    avg, log_kappa = predict_normals_confidence(net, image, prior, flip_average=True)
    avg_m, log_kappa_m = predict_normals_confidence(net, mirror_maps(image), mirror_maps(prior, normals=True),
                                                    flip_average=True)
    assert torch.allclose(avg_m, mirror_maps(avg, normals=True), atol=1e-5)
    assert torch.allclose(log_kappa_m, mirror_maps(log_kappa), atol=1e-5)
    single = predict_normals(net, image, prior)
    assert not torch.allclose(single, avg, atol=1e-3)
    # The average is the normalised sum of the two passes.
    other = mirror_maps(predict_normals(net, mirror_maps(image), mirror_maps(prior, normals=True)), normals=True)
    assert torch.allclose(avg, F.normalize(single + other, dim=1), atol=1e-5)
    assert torch.allclose(avg.norm(dim=1), torch.ones(1, 64, 64), atol=1e-5)


def test_flip_average_of_a_batch_with_a_detail_head_matches_each_crop_alone():
    # The crops and their mirror images run as one batch: each crop's result must be the
    # normalised sum of its own two passes, whatever else is in the batch (here three crops
    # at the detail head's larger size, so the full-size crops take the same path).
    torch.manual_seed(1)
    net = CrossModalNet(ModelConfig(width=1 / 16, input_size=32, coarse_normals=True, detail_channels=4)).eval()
    torch.nn.init.normal_(net.detail.out.weight, std=0.1)  # an untrained head would return its input
    images = torch.rand(3, 3, 48, 48)
    priors = F.normalize(torch.randn(3, 3, 48, 48), dim=1)
    avg = predict_normals(net, images, priors, flip_average=True)
    assert avg.shape == (3, 3, 48, 48)
    for i in range(3):
        one, prior = images[i:i + 1], priors[i:i + 1]
        single = predict_normals(net, one, prior)
        other = mirror_maps(predict_normals(net, mirror_maps(one), mirror_maps(prior, normals=True)), normals=True)
        assert torch.allclose(avg[i:i + 1], F.normalize(single + other, dim=1), atol=1e-5)

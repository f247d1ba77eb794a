"""The full-resolution detail head: an untrained head is the bilinear resize it replaces,
a trained one corrects it at the crop's size, and inference uses it only on larger crops."""

import torch
import torch.nn.functional as F

from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.infer import mirror_maps, predict_normals
from facenormals3d.model.networks import DetailHead


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 64, 64, generator=g)
    normals = F.normalize(torch.randn(2, 3, 32, 32, generator=g), dim=1)
    feats = torch.rand(2, 5, 32, 32, generator=g)
    return image, normals, feats


def test_an_untrained_head_returns_the_bilinearly_resized_normals():
    image, normals, feats = _inputs()
    out = DetailHead(5, 4)(image, normals, feats)
    resized = F.normalize(F.interpolate(normals, size=(64, 64), mode="bilinear", align_corners=False), dim=1)
    assert out.shape == (2, 3, 64, 64)
    assert torch.allclose(out, resized, atol=1e-6)


def test_a_trained_head_changes_the_normals_and_keeps_them_unit():
    image, normals, feats = _inputs()
    head = DetailHead(5, 4)
    torch.nn.init.normal_(head.out.weight, std=0.1)
    out = head(image, normals, feats)
    resized = F.normalize(F.interpolate(normals, size=(64, 64), mode="bilinear", align_corners=False), dim=1)
    assert (out - resized).abs().max() > 1e-2
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 64, 64), atol=1e-5)
    # The correction reads the image: another image, other normals.
    assert not torch.allclose(head(torch.rand_like(image), normals, feats), out)


def _pair(seed=0):
    """A 32-input network and the same network with an untrained 4-channel detail head."""
    torch.manual_seed(seed)
    base = CrossModalNet(ModelConfig(width=1 / 16, input_size=32, coarse_normals=True)).eval()
    head = CrossModalNet(ModelConfig(width=1 / 16, input_size=32, coarse_normals=True, detail_channels=4)).eval()
    missing, unexpected = head.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("detail.") for k in missing)
    return base, head


def test_inference_with_an_untrained_head_is_the_resized_inference():
    base, head = _pair()
    image = torch.rand(1, 3, 64, 64)
    prior = F.normalize(torch.randn(1, 3, 64, 64), dim=1)
    out = predict_normals(head, image, prior)
    assert out.shape == (1, 3, 64, 64)
    assert torch.allclose(out, predict_normals(base, image, prior), atol=1e-6)


def test_inference_runs_the_head_on_the_crop_and_on_its_mirror():
    _, head = _pair()
    torch.nn.init.normal_(head.detail.out.weight, std=0.1)
    image = torch.rand(1, 3, 64, 64)
    prior = F.normalize(torch.randn(1, 3, 64, 64), dim=1)
    small = F.interpolate(image, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    direct, _, _ = head.image_to_normals_confidence(small, F.interpolate(prior, size=(32, 32), mode="bilinear",
                                                                         align_corners=False), image)
    assert direct.shape == (1, 3, 64, 64)
    assert torch.allclose(predict_normals(head, image, prior), direct, atol=1e-5)
    # The mirrored pass gets the mirrored crop: the flip average is mirror-equivariant.
    avg = predict_normals(head, image, prior, flip_average=True)
    avg_m = predict_normals(head, mirror_maps(image), mirror_maps(prior, normals=True), flip_average=True)
    assert torch.allclose(avg_m, mirror_maps(avg, normals=True), atol=1e-5)


def test_crops_at_the_input_size_are_not_refined():
    base, head = _pair()
    torch.nn.init.normal_(head.detail.out.weight, std=0.1)
    image = torch.rand(1, 3, 32, 32)
    prior = F.normalize(torch.randn(1, 3, 32, 32), dim=1)
    assert torch.equal(predict_normals(head, image, prior), predict_normals(base, image, prior))

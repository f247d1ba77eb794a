"""The optional per-pixel confidence output (von Mises-Fisher concentration) and its loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import LOG_KAPPA_MAX, LOG_KAPPA_MIN, CrossModalNet
from facenormals3d.model.infer import predict_normals, predict_normals_confidence
from facenormals3d.model.losses import expected_angle_deg, vmf_nll

SIZE = 32


def tiny(**kw) -> CrossModalNet:
    torch.manual_seed(0)
    return CrossModalNet(ModelConfig(width=1 / 16, input_size=SIZE, **kw)).eval()


def test_confidence_adds_one_decoder_channel_and_nothing_else():
    plain, conf = tiny(), tiny(confidence=True)
    a, b = plain.state_dict(), conf.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if a[k].shape != b[k].shape]
    assert differ == ["dec_normal.head.weight", "dec_normal.head.bias"]
    assert b["dec_normal.head.weight"].shape[0] == 4


def test_outputs_shapes_ranges_and_branches():
    net = tiny(confidence=True)
    image = torch.rand(2, 3, SIZE, SIZE)
    normals, log_kappa, latent = net.image_to_normals_confidence(image)
    assert normals.shape == (2, 3, SIZE, SIZE) and log_kappa.shape == (2, 1, SIZE, SIZE)
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(2, SIZE, SIZE), atol=1e-5, rtol=0)
    assert LOG_KAPPA_MIN <= log_kappa.min() and log_kappa.max() <= LOG_KAPPA_MAX
    # The inference path and the plain branch give the same normals.
    torch.testing.assert_close(net(image), normals)
    # Normals -> normals still runs with the skips off (the confidence channel is dropped).
    rec, _ = net.normals_to_normals(normals.detach())
    assert rec.shape == (2, 3, SIZE, SIZE)
    n2, conf = predict_normals_confidence(net, image)
    torch.testing.assert_close(n2, normals)
    assert conf.shape == (2, 1, SIZE, SIZE)


def test_predict_with_confidence_needs_the_head():
    from facenormals3d.errors import InputError

    with pytest.raises(InputError):
        predict_normals_confidence(tiny(), torch.rand(1, 3, SIZE, SIZE))
    assert predict_normals(tiny(), torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def _noisy_normals(sigma: float, n: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    gt = torch.zeros(1, 3, 1, n)
    gt[:, 2] = 1.0
    pred = F.normalize(gt + sigma * torch.randn(1, 3, 1, n, generator=g), dim=1)
    return pred, gt


def test_vmf_nll_is_lowest_near_the_calibrated_kappa():
    pred, gt = _noisy_normals(0.1)
    weight = torch.ones(1, 1, 1, pred.shape[-1])
    mean_1mcos = (1 - (pred * gt).sum(1)).mean().item()
    grid = torch.linspace(0, 9, 181)
    nll = torch.stack([vmf_nll(pred, torch.full_like(weight, float(lk)), gt, weight) for lk in grid])
    best = float(grid[int(nll.argmin())].exp())
    assert abs(math.log(best) - math.log(1 / mean_1mcos)) < 0.1  # kappa ~ 1 / E[1 - cos]


def test_vmf_nll_matches_the_density_and_respects_weights():
    pred, gt = _noisy_normals(0.3, 50)
    log_kappa = torch.full((1, 1, 1, 50), 1.3)
    kappa = math.exp(1.3)
    cos = (pred * gt).sum(1, keepdim=True)
    density = kappa / (2 * math.pi * (1 - math.exp(-2 * kappa))) * torch.exp(kappa * (cos - 1))
    w = torch.zeros(1, 1, 1, 50)
    w[..., :10] = 1.0
    expected = -torch.log(density)[..., :10].mean()
    torch.testing.assert_close(vmf_nll(pred, log_kappa, gt, w), expected, rtol=1e-5, atol=1e-5)
    # Gradient reaches log kappa and is finite at the clamp limits.
    lk = torch.tensor([[[[LOG_KAPPA_MIN, LOG_KAPPA_MAX]]]], requires_grad=True)
    vmf_nll(pred[..., :2], lk, gt[..., :2], torch.ones(1, 1, 1, 2)).backward()
    assert torch.isfinite(lk.grad).all()


def test_expected_angle_shrinks_with_kappa():
    a = expected_angle_deg(torch.tensor([0.0, 4.0, 8.0]))
    assert a[0] > a[1] > a[2] > 0 and a.max() <= 90


def test_confidence_weight_is_inverse_variance_capped_at_one():
    from facenormals3d.model.infer import CONFIDENT_DEG, confidence_weight

    kappa_ref = math.pi / (2 * math.radians(CONFIDENT_DEG) ** 2)
    log_kappa = torch.log(torch.tensor([kappa_ref, kappa_ref / 4, 10 * kappa_ref]))
    torch.testing.assert_close(confidence_weight(log_kappa), torch.tensor([1.0, 0.25, 1.0]))
    # The reference concentration predicts exactly the reference error.
    assert expected_angle_deg(log_kappa[:1]).item() == pytest.approx(CONFIDENT_DEG, rel=1e-5)


def test_reconstruct_weighs_the_normals_by_the_network_confidence(tmp_path, astronaut):
    """A network with a confidence head: the fusion, dense fit and detail get its weights
    (0 outside the mask, in [0, 1] inside, not all 1 for an untrained head)."""
    import numpy as np

    from facenormals3d.face.coarse import coarse_face
    from facenormals3d.model.weights import save_weights
    from facenormals3d.pipeline import Reconstructor, ReconstructSettings

    torch.manual_seed(0)
    path = save_weights(tmp_path / "conf.safetensors",
                        CrossModalNet(ModelConfig(width=1 / 16, input_size=64, confidence=True)))
    rec = Reconstructor(ReconstructSettings(weights=str(path), textures=False, albedo=False, max_faces=1))
    face, timings = rec.align(astronaut, "astronaut")[0]
    coarse = coarse_face(face.landmarks_crop, face.transform.size)
    pending = rec.network.submit(face.crop, coarse.normals, flip_average=True)
    normals, mask, confidence = rec._normals(face, coarse, {}, pending)
    assert confidence.shape == mask.shape and confidence.dtype == np.float32
    assert np.all(confidence[~mask] == 0) and 0 <= confidence[mask].min() <= confidence[mask].max() <= 1
    assert confidence[mask].std() > 0  # a real per-pixel map, not the mask
    out = rec.reconstruct_face(face, "astronaut", 0, timings)
    assert out.mesh.vertices.shape == rec.fitter.model.mean.shape and np.isfinite(out.mesh.vertices).all()
    # The map travels with the result (over the normals' face region, which holds the
    # landmarks' mask) and is written as confidence.png (255 = fully trusted).
    assert np.all(out.mask[mask]) and np.all(out.confidence[~out.mask] == 0)
    np.testing.assert_array_equal(out.confidence[mask], confidence[mask])
    confidence = out.confidence
    from PIL import Image

    from facenormals3d.writer import write_face

    (tmp_path / "face").mkdir()
    write_face(out, tmp_path / "face", previews=False)
    png = np.asarray(Image.open(tmp_path / "face" / "confidence.png"))
    np.testing.assert_array_equal(png, (confidence * 255 + 0.5).astype(np.uint8))
    # Without a confidence output there is no map and no file.
    plain = save_weights(tmp_path / "plain.safetensors", CrossModalNet(ModelConfig(width=1 / 16, input_size=64)))
    rec2 = Reconstructor(ReconstructSettings(weights=str(plain), textures=False, albedo=False, max_faces=1))
    out2 = rec2.reconstruct_face(face, "astronaut", 0, dict(timings))
    assert out2.confidence is None
    (tmp_path / "plain").mkdir()
    write_face(out2, tmp_path / "plain", previews=False)
    assert not (tmp_path / "plain" / "confidence.png").exists()


def test_confidence_loss_trains_only_the_confidence_channel():
    """The vMF term's gradient reaches the head's 4th channel and nothing else: the shared
    decoder, the encoder and the normals' channels are untouched by it."""
    net = tiny(confidence=True).train()
    image = torch.rand(2, 3, SIZE, SIZE)
    gt = F.normalize(torch.randn(2, 3, SIZE, SIZE), dim=1)
    normals, log_kappa, _ = net.image_to_normals_confidence(image)
    vmf_nll(normals.detach(), log_kappa, gt, torch.ones(2, 1, SIZE, SIZE)).backward()
    touched = {k for k, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched == {"dec_normal.head.weight", "dec_normal.head.bias"}
    head = net.dec_normal.head
    assert head.weight.grad[:3].abs().sum() == 0 and head.bias.grad[:3].abs().sum() == 0
    assert head.weight.grad[3].abs().sum() > 0

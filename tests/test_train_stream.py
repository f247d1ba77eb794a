"""Endless streams, the prior hook and the hair weights of the training loop."""

import numpy as np
import pytest
import torch

from facenormals3d.training import prior as prior_mod
from facenormals3d.training.prior import WithPrior, prior_item
from facenormals3d.model.config import ModelConfig
from facenormals3d.training.checkpoint import load_checkpoint
from facenormals3d.training.config import TrainConfig
from facenormals3d.training.data import DataSources, StreamBatches, fit_to_input
from facenormals3d.training.step import pixel_weights
from facenormals3d.training.train import train

SIZE = 32


class Endless(torch.utils.data.Dataset):
    """Item i is a sphere-cap sample seeded by i; records which indices were read."""

    endless = True

    def __init__(self, seen=None):
        self.seen = seen

    def __len__(self):
        return 2 ** 62

    def __getitem__(self, i):
        if self.seen is not None:
            self.seen.append(int(i))
        g = torch.Generator().manual_seed(int(i))
        ys, xs = torch.meshgrid(torch.linspace(1, -1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
        r = 0.6 + 0.3 * torch.rand(1, generator=g)
        inside = ((xs / r) ** 2 + (ys / r) ** 2) < 1
        z = torch.sqrt((1 - (xs / r) ** 2 - (ys / r) ** 2).clamp_min(0))
        normals = torch.stack([xs / r, ys / r, z]) * inside
        image = (0.2 + 0.7 * normals[2].clamp_min(0)).expand(3, -1, -1).clone()
        hair = (ys > 0.5).float()[None] * inside
        return {"image": image, "normals": normals, "mask": inside[None].float(), "hair": hair,
                "identity": torch.tensor(int(i))}


def test_stream_reads_consecutive_indices_and_resumes_where_it_stopped():
    seen = []
    s = StreamBatches(Endless(seen), batch_size=3, rank=0, world=1, workers=0)
    for _ in range(3):
        s.next()
    assert seen == list(range(9))
    state = s.state_dict()
    seen.clear()
    again = StreamBatches(Endless(seen), batch_size=3, rank=0, world=1, workers=0)
    again.load_state_dict(state)
    batch = again.next()
    assert seen == [9, 10, 11] and batch["identity"].tolist() == [9, 10, 11]


class ThreadCounts(Endless):
    """Item i reports the OpenBLAS and OpenCV thread counts of the process that made it."""

    def __getitem__(self, i):
        import cv2

        from facenormals3d.device import _loaded_openblas

        blas = [get() for _, get in _loaded_openblas()]
        return {"blas": torch.tensor(max(blas) if blas else 1), "cv2": torch.tensor(cv2.getNumThreads())}


def test_data_workers_run_blas_and_opencv_on_one_thread():
    import cv2

    # OpenCV's thread pool has run in this process (as after other tests): a worker that
    # changed OpenCV's thread count after the fork deadlocked here.
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        cv2.GaussianBlur(np.zeros((1024, 1024, 3), np.uint8), (0, 0), 3.0)
        batch = StreamBatches(ThreadCounts(), batch_size=2, rank=0, world=1, workers=1).next()
    finally:
        cv2.setNumThreads(before)  # the stream set this process to one thread
    assert batch["blas"].tolist() == [1, 1] and batch["cv2"].tolist() == [1, 1]


def test_ranks_read_disjoint_items():
    seen0, seen1 = [], []
    for seen, rank in ((seen0, 0), (seen1, 1)):
        s = StreamBatches(Endless(seen), batch_size=2, rank=rank, world=2, workers=0)
        s.next(), s.next()
    assert seen0 == [0, 1, 4, 5] and seen1 == [2, 3, 6, 7]


def test_hair_pixels_are_down_weighted():
    item = Endless()[0]
    batch = {k: v[None] for k, v in item.items()}
    w = pixel_weights(batch, 0.25)
    hair = batch["hair"] > 0.5
    assert torch.all(w[hair] == 0.25) and torch.all(w[~hair] == batch["mask"][~hair])
    assert torch.equal(pixel_weights({"mask": batch["mask"]}, 0.25), batch["mask"])


def fake_prior(image: np.ndarray) -> np.ndarray:
    """A flat prior on the left half of the crop, nothing on the right."""
    out = np.full(image.shape, np.nan, dtype=np.float32)
    out[:, : image.shape[1] // 2] = (0.0, 0.0, 1.0)
    return out


def test_prior_item_zero_outside_and_mask():
    got = prior_item(fake_prior, torch.rand(3, 16, 16))
    assert got["coarse_normals"].shape == (3, 16, 16) and got["prior_mask"].shape == (1, 16, 16)
    assert torch.all(got["coarse_normals"][:, :, 8:] == 0) and torch.all(got["coarse_normals"][2, :, :8] == 1)
    assert got["prior_mask"][0, :, :8].all() and not got["prior_mask"][0, :, 8:].any()
    none = prior_item(lambda image: None, torch.rand(3, 16, 16))
    assert not none["prior_mask"].any() and not none["coarse_normals"].any()


def test_resized_prior_is_not_cut_to_the_ground_truth_mask():
    item = WithPrior(Endless(), fake_prior)[0]
    batch = {k: v[None] for k, v in item.items()}
    big = {k: torch.nn.functional.interpolate(v.float(), scale_factor=2, mode="nearest") if v.ndim == 4 else v
           for k, v in batch.items()}
    small = fit_to_input(big, SIZE)
    outside = (small["mask"] == 0) & (small["prior_mask"] > 0.99)
    assert outside.any() and torch.all(small["coarse_normals"][:, 2:3][outside] > 0.99)


def test_training_on_an_endless_stream_with_a_prior_and_confidence(tmp_path, monkeypatch):
    monkeypatch.setitem(prior_mod.PRIORS, "flat-left", lambda: fake_prior)
    cfg = TrainConfig(model=ModelConfig(width=1 / 16, input_size=SIZE, coarse_normals=True, confidence=True),
                      steps=3, batch_size=2, val_every=3, val_samples=2, checkpoint_every=1, log_every=1,
                      prior="flat-left", warmup_steps=10)
    val = [Endless()[1000 + i] for i in range(2)]
    result = train(cfg, DataSources(paired_train=Endless(), paired_val=val), tmp_path)
    assert result.step == 3 and result.last_val is not None
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["data"]["paired_train"]["pos"] == 3 and ckpt["train_config"]["prior"] == "flat-left"
    rows = (tmp_path / "log_train.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(r.split(",")[header.index("confidence_nll")] != "" for r in rows[1:])


def test_unknown_prior_name_is_refused():
    with pytest.raises(ValueError, match="unknown prior"):
        prior_mod.make_prior("no-such-prior")


def test_a_prior_needs_a_prior_conditioned_model(tmp_path):
    from facenormals3d.errors import InputError

    cfg = TrainConfig(model=ModelConfig(width=1 / 16, input_size=SIZE), steps=1, batch_size=2, prior="landmarks")
    with pytest.raises(InputError, match="coarse-normals"):
        train(cfg, DataSources(paired_train=Endless()), tmp_path)


def test_init_weights_widen_the_first_convolution_for_a_prior(tmp_path):
    """A prior-conditioned model started from an image-only network behaves like it:
    same weights, zeros on the prior's input channels, so the prior is ignored at first."""
    import torch

    from facenormals3d.model.config import ModelConfig
    from facenormals3d.model.crossmodal import CrossModalNet
    from facenormals3d.model.weights import save_weights
    from facenormals3d.training.checkpoint import init_from_weights

    torch.manual_seed(0)
    small = dict(width=0.125, input_size=64)
    plain = CrossModalNet(ModelConfig(**small)).eval()
    path = save_weights(tmp_path / "plain.safetensors", plain)
    prior_net = CrossModalNet(ModelConfig(coarse_normals=True, **small)).eval()
    counts = init_from_weights(prior_net, path)
    assert counts["widened"] == 1 and counts["skipped"] == 0 and counts["copied"] > 10
    image = torch.rand(1, 3, 64, 64)
    prior = torch.nn.functional.normalize(torch.randn(1, 3, 64, 64), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(prior_net(image, prior), plain(image))


def test_init_weights_keep_the_normal_head_when_a_confidence_output_is_added(tmp_path):
    """Adding the confidence output widens the normal head by one output: the normals stay
    exactly those of the initial weights (the head used to be skipped, i.e. random)."""
    import torch

    from facenormals3d.model.config import ModelConfig
    from facenormals3d.model.crossmodal import CrossModalNet
    from facenormals3d.model.weights import save_weights
    from facenormals3d.training.checkpoint import init_from_weights

    torch.manual_seed(0)
    small = dict(width=0.125, input_size=64, coarse_normals=True)
    plain = CrossModalNet(ModelConfig(**small)).eval()
    path = save_weights(tmp_path / "plain.safetensors", plain)
    conf_net = CrossModalNet(ModelConfig(confidence=True, **small)).eval()
    counts = init_from_weights(conf_net, path)
    assert counts["widened"] == 2 and counts["skipped"] == 0  # head weight and bias
    image = torch.rand(1, 3, 64, 64)
    prior = torch.nn.functional.normalize(torch.randn(1, 3, 64, 64), dim=1)
    with torch.no_grad():
        normals, log_kappa, _ = conf_net.image_to_normals_confidence(image, prior)
        torch.testing.assert_close(normals, plain(image, prior))
        assert torch.all(log_kappa == 0)  # the new output starts at kappa = 1


def test_fitted_prior_is_the_fitted_face_seen_in_the_crop(astronaut):
    import cv2

    from facenormals3d.training.prior import make_prior

    prior = make_prior("fit")
    crop = np.ascontiguousarray(cv2.resize(astronaut[0:300, 100:400], (256, 256), interpolation=cv2.INTER_AREA))
    n = prior(crop)
    assert n.shape == (256, 256, 3) and n.dtype == np.float32
    face = np.all(np.isfinite(n), axis=-1)
    assert 0.15 < face.mean() < 0.95  # the head, not the whole crop
    np.testing.assert_allclose(np.linalg.norm(n[face], axis=-1), 1.0, atol=1e-4)
    assert np.median(n[face][:, 2]) > 0.5  # facing the camera
    assert prior(np.full((256, 256, 3), 128, np.uint8)) is None
    import pickle

    assert pickle.loads(pickle.dumps(prior))._finder is None  # picklable into data workers


def test_fitted_priors_are_pinned_and_the_newest_is_the_pipelines_landmark_fit():
    from facenormals3d.fit.landmarks import LandmarkFitSettings
    from facenormals3d.pipeline import FIT_PRIORS
    from facenormals3d.training.prior import PRIORS

    assert set(FIT_PRIORS) <= set(PRIORS)
    old, new, pipeline = PRIORS["fit"](), PRIORS["fit-v2"](), LandmarkFitSettings()
    assert (old.identity_prior, old.expression_prior) == (6.0, 10.0)  # what runs recorded as "fit" used
    assert (new.identity_prior, new.expression_prior) == (pipeline.identity_prior, pipeline.expression_prior)


class StubFrontEnd(prior_mod._FrontEndPrior):
    """Landmarks given up front (or none); the prior records the crop landmarks it gets."""

    def __init__(self, landmarks):
        super().__init__()
        self.given, self.seen = landmarks, []

    def landmarks(self, image):
        return self.given

    def from_landmarks(self, landmarks, size):
        self.seen.append(landmarks)
        return np.tile(np.array([0.0, 0.0, 1.0], np.float32), (size, size, 1))


class Constant(torch.utils.data.Dataset):
    """One 96 px render: a colour ramp, the constant normal ``NORMAL`` on every pixel."""

    def __len__(self):
        return 1

    def __getitem__(self, i):
        ys, xs = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
        image = torch.stack([xs, ys, 0.5 * (xs + ys)])
        normals = torch.tensor(NORMAL, dtype=torch.float32).view(3, 1, 1).expand(3, 96, 96).clone()
        return {"image": image, "normals": normals, "mask": torch.ones(1, 96, 96), "hair": torch.zeros(1, 96, 96),
                "identity": torch.tensor(i), "seed": torch.tensor(i)}


NORMAL = (0.6, 0.0, 0.8)


def tilted_landmarks(roll_deg: float) -> np.ndarray:
    """The shipped face model's 478 landmarks, frontal, 0.4 px per mm, turned ``roll_deg``
    clockwise in the image, centred in a 96 px image (pixels, y down)."""
    from facenormals3d.fit.model import load_face_model

    model = load_face_model()
    lm = model.landmark_points(model.mean).astype(np.float64)
    xy = (lm[:, :2] - lm[:, :2].mean(0)) * np.array([0.4, -0.4])
    a = np.radians(roll_deg)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.column_stack([xy @ turn.T + 48.0, lm[:, 2] * 0.4])


def test_front_end_framing_crops_as_reconstruct_and_turns_the_truth_with_it():
    from facenormals3d.face.align import face_crop
    from facenormals3d.face.crop import CropSettings
    from facenormals3d.face.pose import eye_line_roll
    from facenormals3d.face.texture import sample_face
    from facenormals3d.training.prior import FrontEndFramed

    landmarks = tilted_landmarks(25.0)
    stub = StubFrontEnd(landmarks)
    item = FrontEndFramed(Constant(), stub, 64)[0]
    transform = face_crop(landmarks, CropSettings(size=64))
    assert abs(transform.roll_deg - 25.0) < 1.0  # levelled by the eye line
    rgb = (Constant()[0]["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy() * 255,
                               sample_face(rgb, transform).pixels, atol=1e-3)
    # The photo's x direction points at +roll in the upright crop (y up): the normal turns with it.
    r = np.radians(transform.roll_deg)
    want = np.array([NORMAL[0] * np.cos(r), NORMAL[0] * np.sin(r), NORMAL[2]])
    mask = item["mask"][0].numpy() > 0
    got = item["normals"].permute(1, 2, 0).numpy()
    assert mask.mean() > 0.5
    np.testing.assert_allclose(got[mask], np.broadcast_to(want, got[mask].shape), atol=1e-4)
    assert not got[~mask].any()
    # The prior is built from the same landmarks in the crop: level there.
    assert abs(eye_line_roll(stub.seen[0])) < 1e-6
    assert item["prior_mask"].all() and item["coarse_normals"].shape == (3, 64, 64)


def test_front_end_framing_without_a_face_keeps_the_engines_crop_and_no_prior():
    from facenormals3d.training.prior import FrontEndFramed

    item = FrontEndFramed(Constant(), StubFrontEnd(None), 64)[0]
    centre = Constant()[0]["image"][:, 16:80, 16:80]
    np.testing.assert_allclose(item["image"].numpy(), np.floor(centre.numpy() * 255 + 0.5) / 255, atol=1e-6)
    assert item["mask"].all() and not item["prior_mask"].any()


def test_front_end_framing_needs_a_prior_and_a_margin():
    from facenormals3d.errors import InputError
    from facenormals3d.training.data import with_prior

    data = DataSources(paired_train=Endless())
    with pytest.raises(InputError, match="needs a prior"):
        with_prior(data, TrainConfig(prior="none", framing="front-end"))
    with pytest.raises(InputError, match="margin"):
        with_prior(data, TrainConfig(prior="fit-v2", framing="front-end", synth={"size": 32, "margin": 1.0}))
    with pytest.raises(InputError, match="framing"):
        with_prior(data, TrainConfig(prior="fit-v2", framing="sideways"))
    from facenormals3d.training.prior import FrontEndFramed

    with pytest.raises(InputError, match="mediapipe"):  # a prior that cannot take given landmarks
        FrontEndFramed(Constant(), fake_prior, 64)

"""Prior normals for training: the face the front end would fit, rendered into the crop.

A prior-conditioned network (``ModelConfig.coarse_normals``) reads, beside the photo,
the normals of a face fitted to it. At inference that face comes from the front end
(mediapipe detection + 478 landmarks on the photo, the crop rule, the face built from the
landmarks). To train on priors with realistic errors, the *same* front end runs on every
rendered training image, in the data worker, and never sees the ground truth.

A prior function maps one rendered crop to its prior normal map::

    prior(image: S x S x 3 uint8 sRGB) -> S x S x 3 float32 unit camera-frame normals
                                          (x right, y up, z toward the camera), NaN where
                                          the prior has no surface; or None (no face found)

Where to plug in another prior (e.g. the fitted morphable face)
    Write a class with that ``__call__`` (picklable: build heavy state lazily, drop it in
    ``__getstate__``, as :class:`LandmarkPrior` does) and add it to :data:`PRIORS` under
    a name. ``facenormals3d train --prior NAME`` and :class:`WithPrior` then use it; the
    name is recorded in the run's ``TrainConfig.prior``. Nothing else changes.

The crop frame: a synthetic sample is already a crop made by the shared crop rule (on the
model's landmarks, plus jitter), and the rule is axis-aligned (scale and shift only), so
the landmark face is built directly in the sample's pixels; its orthographic normals do
not depend on where the crop's square lies. With ``TrainConfig.framing == "front-end"``
(:class:`FrontEndFramed`) the sample is cropped again as ``reconstruct`` crops a photo and
the prior is built from the same landmarks in that crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from facenormals3d.errors import InputError

PriorFn = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass
class _FrontEndPrior:
    """What both priors share: mediapipe's landmarks of the largest face found, then a face
    from them (:meth:`from_landmarks`). The mediapipe graphs (and any other heavy state) are
    built on the first call in each process (they cannot be pickled into data workers) and
    dropped when pickled."""

    min_score: float = 0.5
    """Minimum face-detection confidence (as ``DetectSettings.min_score``)."""
    _finder: object = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {k: (None if k.startswith("_") else v) for k, v in self.__dict__.items()}

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        img = _check_image(image)
        landmarks = self.landmarks(img)
        return None if landmarks is None else self.from_landmarks(landmarks, img.shape[0])

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """``478 x 3`` pixel landmarks of the largest face in ``image`` (``H x W x 3`` uint8),
        or None when no face is found."""
        from facenormals3d.errors import NoFaceError
        from facenormals3d.face.detect import DetectSettings, FaceFinder

        if self._finder is None:
            self._finder = FaceFinder(DetectSettings(min_score=self.min_score))
        try:
            return self._finder.find(image)[0].landmarks
        except NoFaceError:
            return None

    def from_landmarks(self, landmarks: np.ndarray, size: int) -> np.ndarray | None:
        """The prior normals (``size x size x 3``, see the module doc) of the face with these
        ``478 x 3`` landmarks in the ``size`` crop's pixels; None for degenerate landmarks."""
        raise NotImplementedError


@dataclass
class LandmarkPrior(_FrontEndPrior):
    """The landmark face (:mod:`facenormals3d.face.coarse`) of the faces mediapipe finds."""

    def from_landmarks(self, landmarks: np.ndarray, size: int) -> np.ndarray | None:
        from facenormals3d.face.coarse import coarse_face

        try:
            return coarse_face(landmarks, size).normals
        except ValueError:  # degenerate landmarks (coinciding eye corners)
            return None


@dataclass(kw_only=True)
class FittedPrior(_FrontEndPrior):
    """The face model fitted to the landmarks mediapipe finds (landmark-only fit), as at inference.

    The same functions as :meth:`facenormals3d.pipeline.Reconstructor._fitted_face` use
    (:func:`facenormals3d.fit.landmarks.fit_crop`, :func:`~facenormals3d.fit.landmarks.fitted_normals`).
    """

    identity_prior: float
    expression_prior: float
    """The landmark fit's priors (:class:`~facenormals3d.fit.landmarks.LandmarkFitSettings`),
    pinned per registered name (:data:`PRIORS`) so that a run's recorded prior name
    reproduces its data whatever the pipeline's defaults become."""
    _fitter: object = field(default=None, init=False, repr=False, compare=False)

    def from_landmarks(self, landmarks: np.ndarray, size: int) -> np.ndarray | None:
        from facenormals3d.fit.landmarks import LandmarkFitSettings, LandmarkFitter, fit_crop, fitted_normals
        from facenormals3d.fit.model import load_face_model

        if self._fitter is None:
            self._fitter = LandmarkFitter(load_face_model(), LandmarkFitSettings(
                identity_prior=self.identity_prior, expression_prior=self.expression_prior))
        try:
            fit, _, frame = fit_crop(self._fitter, landmarks, size)
        except InputError:  # degenerate landmarks
            return None
        return fitted_normals(self._fitter.model, fit, frame)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1] or img.dtype != np.uint8:
        raise ValueError(f"prior input must be a square S x S x 3 uint8 crop, got {img.shape} {img.dtype}")
    return img


#: Prior functions by name (``facenormals3d train --prior NAME``); each entry builds one.
PRIORS: dict[str, Callable[[], PriorFn]] = {
    "landmarks": LandmarkPrior,
    # The landmark fit's priors until 2026-12-06 (every shipped prior-conditioned stage so far).
    "fit": partial(FittedPrior, identity_prior=6.0, expression_prior=10.0),
    # reconstruct's landmark fit since then (stronger priors: meshes 5 % closer on the test renders).
    "fit-v2": partial(FittedPrior, identity_prior=64.0, expression_prior=20.0),
}


def make_prior(name: str) -> PriorFn:
    """A new prior function of the registered ``name`` (see :data:`PRIORS`)."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; known: {sorted(PRIORS)}")
    return PRIORS[name]()


def prior_item(prior: PriorFn, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``prior`` on an item's ``3 x S x S`` float image in [0, 1]: :func:`prior_tensors`."""
    rgb = _to_uint8(image)
    return prior_tensors(prior(rgb), rgb.shape[0])


def prior_tensors(normals: np.ndarray | None, size: int) -> dict[str, torch.Tensor]:
    """A prior's normals (``size x size x 3``, NaN off its surface; None: no face found) as
    item keys: ``coarse_normals`` (``3 x S x S`` float32, 0 where the prior has no surface
    or no face was found: the network's "unknown") and ``prior_mask`` (``1 x S x S``
    float32, 1 where the prior is defined)."""
    if normals is None:
        normals = np.full((size, size, 3), np.nan, dtype=np.float32)
    normals = np.asarray(normals, dtype=np.float32)
    if normals.shape != (size, size, 3):
        raise ValueError(f"prior returned {normals.shape}, expected {(size, size, 3)}")
    valid = np.all(np.isfinite(normals), axis=-1)
    n = np.where(valid[..., None], normals, 0.0).astype(np.float32)
    return {"coarse_normals": torch.from_numpy(np.ascontiguousarray(n.transpose(2, 0, 1))),
            "prior_mask": torch.from_numpy(valid[None].astype(np.float32))}


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """``3 x H x W`` float image in [0, 1] -> ``H x W x 3`` uint8 (C order)."""
    rgb = (image.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb)


class WithPrior(Dataset):
    """Items of ``dataset`` plus the prior of their image (keys of :func:`prior_item`).

    The prior runs in whichever process reads the item (a DataLoader worker in training).
    """

    def __init__(self, dataset: Dataset, prior: PriorFn):
        self.dataset, self.prior = dataset, prior

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        # Pass through what samplers and streams ask of the wrapped dataset (e.g. ``endless``).
        if name in ("dataset", "prior"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.dataset[index])
        item.update(prior_item(self.prior, item["image"]))
        return item


class FrontEndFramed(WithPrior):
    """Items of ``dataset`` cropped as ``reconstruct`` crops a photo, plus their prior.

    ``dataset`` renders with room around the engine's crop (``SynthSettings.margin`` > 1).
    Per item, mediapipe finds the face on the whole render, the crop is the pipeline's
    (:func:`facenormals3d.face.align.face_crop`: its crop points, levelled by the eye line)
    and ``prior`` is built from the same landmarks in that crop, so the network trains on
    the framing, the roll and the prior it meets at inference. The image is resampled as
    ``reconstruct`` resamples a photo (outside pixels filled); the ground truth with it:
    normals bilinearly, renormalised and turned with the crop; the mask by nearest
    neighbour, cut to the render; hair bilinearly. Where no face is found the centre
    ``size`` square is used (the engine's own crop) with no prior, as :class:`WithPrior`
    does.

    The truth stays in the engine crop's own camera frame (see
    :mod:`facenormals3d.data.synth`); the new crop's centre is a few per cent of the crop
    away from it, so the normals lean by that angle as seen from the camera (well under a
    degree at most distances; about 2 deg for a 5 % shift at the closest, 350 mm).

    Items: ``image``, ``normals``, ``mask``, ``hair``, ``identity``, ``seed`` and the keys
    of :func:`prior_tensors`, all maps ``size x size``.
    """

    def __init__(self, dataset: Dataset, prior: _FrontEndPrior, size: int):
        if not isinstance(prior, _FrontEndPrior):
            raise InputError("train config", "framing front-end needs a prior built from mediapipe's "
                             f"landmarks (landmarks, fit, fit-v2), not {type(prior).__name__}")
        super().__init__(dataset, prior)
        self.size = int(size)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facenormals3d.face.align import face_crop
        from facenormals3d.face.crop import CropSettings, square_crop, warp_to_crop
        from facenormals3d.face.texture import sample_face

        item = self.dataset[index]
        rgb = _to_uint8(item["image"])
        side, size = rgb.shape[0], self.size
        landmarks = self.prior.landmarks(rgb)
        if landmarks is None:
            transform = square_crop(np.array([side / 2.0, side / 2.0]), size, 0.0, size)
        else:
            transform = face_crop(landmarks, CropSettings(size=size))
        image = sample_face(rgb, transform).pixels
        hwc = {k: item[k].permute(1, 2, 0).numpy() for k in ("normals", "mask", "hair")}
        normals = warp_to_crop(hwc["normals"], transform, order=1) @ transform.rotation_to_crop().T
        mask = warp_to_crop((hwc["mask"][..., 0] > 0.5).astype(np.uint8), transform, order=0) > 0
        length = np.linalg.norm(normals, axis=-1, keepdims=True)
        mask &= length[..., 0] > 0.5
        normals = np.where(mask[..., None], normals / np.maximum(length, 1e-6), 0.0).astype(np.float32)
        hair = warp_to_crop(hwc["hair"][..., 0], transform, order=1).astype(np.float32)
        prior = None if landmarks is None else self.prior.from_landmarks(transform.to_crop(landmarks), size)
        out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0,
               "normals": torch.from_numpy(np.ascontiguousarray(normals.transpose(2, 0, 1))),
               "mask": torch.from_numpy(mask[None].astype(np.float32)),
               "hair": torch.from_numpy(np.clip(hair, 0.0, 1.0)[None]),
               "identity": item["identity"], "seed": item["seed"]}
        out.update(prior_tensors(prior, size))
        return out

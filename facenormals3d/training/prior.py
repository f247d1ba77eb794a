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
not depend on where the crop's square lies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

PriorFn = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass
class LandmarkPrior:
    """The landmark face (:mod:`facenormals3d.face.coarse`) of the faces mediapipe finds.

    The largest face found is used. The mediapipe graphs are built on the first call in
    each process (they cannot be pickled into data workers) and dropped when pickled.
    """

    min_score: float = 0.5
    """Minimum face-detection confidence (as ``DetectSettings.min_score``)."""
    _finder: object = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_finder"] = None
        return state

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        from facenormals3d.errors import NoFaceError
        from facenormals3d.face.coarse import coarse_face
        from facenormals3d.face.detect import DetectSettings, FaceFinder

        img = _check_image(image)
        if self._finder is None:
            self._finder = FaceFinder(DetectSettings(min_score=self.min_score))
        try:
            faces = self._finder.find(img)
        except NoFaceError:
            return None
        try:
            return coarse_face(faces[0].landmarks, img.shape[0]).normals
        except ValueError:  # degenerate landmarks (coinciding eye corners)
            return None


@dataclass
class FittedPrior:
    """The face model fitted to the landmarks mediapipe finds (landmark-only fit), as at inference.

    The same functions as :meth:`facenormals3d.pipeline.Reconstructor._fitted_face` use
    (:func:`facenormals3d.fit.landmarks.fit_crop`, :func:`~facenormals3d.fit.landmarks.fitted_normals`).
    Heavy state (mediapipe graphs, the model's landmark bases) is built on the first call
    in each process and dropped when pickled.
    """

    identity_prior: float
    expression_prior: float
    """The landmark fit's priors (:class:`~facenormals3d.fit.landmarks.LandmarkFitSettings`),
    pinned per registered name (:data:`PRIORS`) so that a run's recorded prior name
    reproduces its data whatever the pipeline's defaults become."""
    min_score: float = 0.5
    """Minimum face-detection confidence."""
    _finder: object = field(default=None, init=False, repr=False, compare=False)
    _fitter: object = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_finder"] = state["_fitter"] = None
        return state

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        from facenormals3d.errors import InputError
        from facenormals3d.face.detect import DetectSettings, FaceFinder
        from facenormals3d.fit.landmarks import LandmarkFitSettings, LandmarkFitter, fit_crop, fitted_normals
        from facenormals3d.fit.model import load_face_model

        img = _check_image(image)
        if self._finder is None:
            self._finder = FaceFinder(DetectSettings(min_score=self.min_score))
            self._fitter = LandmarkFitter(load_face_model(), LandmarkFitSettings(
                identity_prior=self.identity_prior, expression_prior=self.expression_prior))
        try:
            landmarks = self._finder.find(img)[0].landmarks
            fit, _, frame = fit_crop(self._fitter, landmarks, img.shape[0])
        except InputError:  # no face, or degenerate landmarks
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
    """Run ``prior`` on an item's ``3 x S x S`` float image in [0, 1].

    Returns ``coarse_normals`` (``3 x S x S`` float32, 0 where the prior has no surface
    or no face was found: the network's "unknown") and ``prior_mask`` (``1 x S x S``
    float32, 1 where the prior is defined).
    """
    rgb = (image.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    size = rgb.shape[0]
    normals = prior(np.ascontiguousarray(rgb))
    if normals is None:
        normals = np.full((size, size, 3), np.nan, dtype=np.float32)
    normals = np.asarray(normals, dtype=np.float32)
    if normals.shape != (size, size, 3):
        raise ValueError(f"prior returned {normals.shape}, expected {(size, size, 3)}")
    valid = np.all(np.isfinite(normals), axis=-1)
    n = np.where(valid[..., None], normals, 0.0).astype(np.float32)
    return {"coarse_normals": torch.from_numpy(np.ascontiguousarray(n.transpose(2, 0, 1))),
            "prior_mask": torch.from_numpy(valid[None].astype(np.float32))}


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

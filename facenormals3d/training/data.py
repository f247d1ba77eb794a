"""The training data: the run's datasets (:class:`DataSources`), endless resumable batch
streams over them, and the per-batch transforms (flips, resampling to the model's input,
device transfer)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from facenormals3d.errors import InputError
from facenormals3d.model.infer import mirror_maps

if TYPE_CHECKING:
    from facenormals3d.training.config import TrainConfig


@dataclass
class DataSources:
    """Datasets of one run; each yields dicts (see :mod:`facenormals3d.data.folders`)."""

    paired_train: Dataset | None = None
    """Items with ``image``, ``normals``, ``mask`` (and ``coarse_normals`` if the model uses it)."""
    paired_val: Dataset | None = None
    """Held-out identities, same keys; validation is skipped without it."""
    images: Dataset | None = None
    """Photo-only items: ``image``, ``mask``."""
    normals: Dataset | None = None
    """Normal-only items: ``normals``, ``mask``."""

    def train_sources(self) -> dict[str, Dataset]:
        out = {k: getattr(self, k) for k in ("paired_train", "images", "normals")}
        out = {k: v for k, v in out.items() if v is not None}
        if not out:
            raise InputError("training data", "give at least one of paired, image-only or normal-only data")
        return out


class BatchStream:
    """Endless batches from one dataset in a seeded order, resumable at any batch.

    Epoch ``e`` uses :class:`DistributedSampler` order with seed ``seed`` and epoch ``e``
    (this rank's shard); the position is (epoch, batches consumed in it).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int, world: int, workers: int):
        self.dataset, self.workers = dataset, workers
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        per_rank = len(self.sampler)
        if per_rank < 1:
            raise InputError("training data", f"{len(dataset)} samples cannot feed {world} processes")
        self.batch_size = min(batch_size, per_rank)
        self.epoch, self.pos, self._it = 0, 0, None

    def _loader(self):
        self.sampler.set_epoch(self.epoch)
        order = list(self.sampler)[self.pos * self.batch_size:]
        # Own generator: a new iterator must not draw from the global RNG, or a resumed
        # run (which builds its iterators at another step) would drift from a straight one.
        gen = torch.Generator().manual_seed(self.sampler.seed + self.epoch)
        if self.workers:
            _opencv_on_one_thread()
        return iter(DataLoader(self.dataset, batch_size=self.batch_size, sampler=order, drop_last=True,
                               num_workers=self.workers, worker_init_fn=_data_worker_init, generator=gen))

    def next(self) -> dict[str, Any]:
        if self._it is None:
            self._it = self._loader()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.pos = self.epoch + 1, 0
            self._it = self._loader()
            batch = next(self._it)
        self.pos += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos, self._it = int(state["epoch"]), int(state["pos"]), None


class StreamBatches:
    """Endless batches from an endless dataset (one with ``endless = True``, e.g.
    :class:`facenormals3d.data.datasets.SynthStreamDataset`): nothing ever repeats.

    Batch ``k`` of rank ``r`` among ``world`` reads items ``(k * world + r) * B`` to
    ``+ B``; the position is the number of batches consumed, so a resumed run reads on
    where it stopped. Items are rendered by ``workers`` DataLoader processes.
    """

    def __init__(self, dataset: Dataset, batch_size: int, rank: int, world: int, workers: int):
        self.dataset, self.batch_size, self.rank, self.world = dataset, int(batch_size), rank, world
        self.workers, self.pos, self._it = workers, 0, None

    def _indices(self):
        k = self.pos
        while True:
            start = (k * self.world + self.rank) * self.batch_size
            yield from range(start, start + self.batch_size)
            k += 1

    def next(self) -> dict[str, Any]:
        if self._it is None:
            if self.workers:
                _opencv_on_one_thread()
            self._it = iter(DataLoader(self.dataset, batch_size=self.batch_size, sampler=_Endless(self._indices),
                                       num_workers=self.workers, worker_init_fn=_data_worker_init,
                                       prefetch_factor=4 if self.workers else None,
                                       persistent_workers=False))
        batch = next(self._it)
        self.pos += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": 0, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pos, self._it = int(state["pos"]), None


class _Endless(torch.utils.data.Sampler):
    """A sampler over an index generator (no length)."""

    def __init__(self, make_iter):
        self.make_iter = make_iter

    def __iter__(self):
        return self.make_iter()


def _data_worker_init(_worker_id: int) -> None:
    """One OpenBLAS thread per data worker (torch already sets its own).

    numpy's OpenBLAS otherwise starts a thread per core, whose spinning beside the trainer
    made the landmark fit's small solves slow: on 2 cores with training running, one item
    of the front-end framed stream took 0.24-0.33 s with the default threads and 0.20-0.21 s
    with one (2026-12-06, system CPU 3 s -> 0.5 s over 16 items). OpenCV is set to one
    thread in the parent before the workers fork (:func:`_opencv_on_one_thread`), not here.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so that it is limited too)

    from facenormals3d.device import limit_blas_threads

    limit_blas_threads(1)


def _opencv_on_one_thread() -> None:
    """OpenCV on one thread in this process, before data workers fork from it (they inherit
    it). Changing OpenCV's thread count in a forked worker deadlocks once the parent's OpenCV
    thread pool has run: under pytest-xdist ``cv2.setNumThreads(1)`` in a worker hung in
    ``pthread_cond_destroy`` (2026-12-07)."""
    import cv2

    cv2.setNumThreads(1)


def make_stream(dataset: Dataset, cfg: "TrainConfig", rank: int, world: int):
    """:class:`StreamBatches` for endless datasets, else a seeded epoch :class:`BatchStream`."""
    if getattr(dataset, "endless", False):
        return StreamBatches(dataset, cfg.batch_size, rank, world, cfg.num_workers)
    return BatchStream(dataset, cfg.batch_size, cfg.seed, rank, world, cfg.num_workers)


def flip_batch(batch: dict, flip: torch.Tensor) -> dict:
    """Mirror the samples where ``flip`` (bool, B) is set; normal maps also get n_x negated."""
    out = dict(batch)
    for key in ("image", "normals", "mask", "coarse_normals", "hair", "prior_mask"):
        if key in batch:
            x = batch[key]
            mirrored = mirror_maps(x, normals=key in ("normals", "coarse_normals"))
            out[key] = torch.where(flip.view(-1, 1, 1, 1), mirrored, x)
    return out


#: Maps a batch keeps at the crop's size for a model with a detail head (:func:`fit_to_input`).
FULL_KEYS = ("image", "normals", "mask", "hair")


def fit_to_input(batch: dict, size: int, keep_full: bool = False) -> dict:
    """Resample a batch's maps to the model's input size (a 128-input model trains on the
    engine's 256 crops; inference resizes the same way, see :mod:`facenormals3d.model.infer`).

    Images are area-averaged (antialiased bilinear); normals are averaged, renormalised and
    zeroed outside the resampled mask (mask = more than half the footprint was face).
    ``keep_full``: the original maps of :data:`FULL_KEYS` stay in the batch as ``KEY_full``
    (what a detail head reads and is scored on) when they were resampled.
    """
    import torch.nn.functional as F

    from facenormals3d.model.infer import resize_prior

    any_map = next(v for v in batch.values() if torch.is_tensor(v) and v.ndim == 4)
    if any_map.shape[-1] == size and any_map.shape[-2] == size:
        return batch
    out = dict(batch)
    if keep_full:
        out.update({f"{k}_full": batch[k] for k in FULL_KEYS if k in batch})

    def resample(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)

    if "mask" in batch:
        out["mask"] = (resample(batch["mask"]) > 0.5).float()
    for key in ("image", "hair", "prior_mask"):
        if key in batch:
            out[key] = resample(batch[key]).clamp(0.0, 1.0)
    if "normals" in batch:
        n = F.normalize(resample(batch["normals"]), dim=1)
        out["normals"] = n * out["mask"] if "mask" in out else n
    if "coarse_normals" in batch:
        # The prior is an input: resampled exactly as inference does, never cut to the
        # ground-truth mask (that would leak the mask into the input).
        out["coarse_normals"] = resize_prior(batch["coarse_normals"], size)
    return out


def with_prior(data: DataSources, cfg: "TrainConfig") -> DataSources:
    """``data`` with the config's prior (see :mod:`facenormals3d.training.prior`) added to
    every photo source's items as ``coarse_normals``; with ``framing == "front-end"`` the
    paired items are also cropped as ``reconstruct`` crops
    (:class:`~facenormals3d.training.prior.FrontEndFramed`). Unchanged for prior ``"none"``."""
    from facenormals3d.training.config import FRAMINGS

    if cfg.framing not in FRAMINGS:
        raise InputError("train config", f"framing must be one of {', '.join(FRAMINGS)}, not {cfg.framing!r}")
    if cfg.prior == "none":
        if cfg.framing == "front-end":
            raise InputError("train config", "framing front-end needs a prior (--prior)")
        return data
    from facenormals3d.training.prior import FrontEndFramed, WithPrior, make_prior

    fn = make_prior(cfg.prior)
    wrap = {k: WithPrior(getattr(data, k), fn) for k in ("paired_train", "paired_val", "images")
            if getattr(data, k) is not None}
    if cfg.framing == "front-end":
        if not cfg.synth or cfg.synth.get("margin", 1.0) <= 1.0:
            raise InputError("train config", "framing front-end needs --synth data rendered with a margin")
        wrap.update({k: FrontEndFramed(getattr(data, k), fn, cfg.synth["size"])
                     for k in ("paired_train", "paired_val") if getattr(data, k) is not None})
    return replace(data, **wrap)


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(device, non_blocking=True, memory_format=fmt) if torch.is_tensor(v) and v.ndim == 4
            else v for k, v in batch.items()}

"""Training the cross-modal network (single process, or DDP under ``torchrun``).

Each step runs the paper's three branches on up to three data sources:

* paired batch (image, normals, mask): image -> normals with skips on (masked L1 +
  ``1 - cos``), latent consistency ``|E_I(image) - E_N(normals)|``;
* every photo (paired images + the image-only folder): image -> image (L1, masked);
* every normal map (paired normals + the normal-only folder): normals -> normals with
  skips off (masked L1 + ``1 - cos``).

The run folder holds ``checkpoint.pt`` (model, optimizer, scheduler, step, RNG states and
data positions; written atomically every ``checkpoint_every`` steps and on SIGTERM/SIGINT),
``log_train.csv/.jsonl``, ``log_val.csv/.jsonl``, ``samples/val_STEP.png`` (image |
predicted | ground truth | error) and ``best.safetensors`` (best validation mean error).
Under ``torchrun`` every rank trains on its own shard of each source
(:class:`DistributedSampler`) and only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from facenormals3d.errors import InputError
from facenormals3d.model.config import ModelConfig
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.losses import image_l1, latent_distance, normal_angular, normal_l1, vmf_nll
from facenormals3d.outputs import atomic_write, write_json

log = logging.getLogger("facenormals3d.train")
CHECKPOINT_FORMAT = "facenormals3d-train-v1"
LOSS_KEYS = ("loss", "normal_l1", "normal_angular", "latent", "image_l1", "recon_l1", "recon_angular",
             "confidence_nll")
#: Settings that may change when a run is resumed (how long and how often, not what is learnt).
RUN_LENGTH_FIELDS = ("steps", "max_minutes", "val_every", "checkpoint_every", "log_every", "num_workers")


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Network shape."""
    steps: int = 20000
    """Optimizer steps in total."""
    batch_size: int = 8
    """Samples per source per step (per process under DDP)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to 5 %)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Steps of linear learning-rate warm-up."""
    w_normal_l1: float = 1.0
    """Image -> normals: masked L1."""
    w_normal_angular: float = 1.0
    """Image -> normals: masked 1 - cos(angle)."""
    w_latent: float = 0.1
    """Latent consistency between E_I(image) and E_N(normals) on paired data."""
    latent_loss: str = "l2"
    """``l2`` (mean squared) or ``l1`` latent consistency."""
    w_image: float = 1.0
    """Image -> image: L1 (masked where a mask is known)."""
    w_recon: float = 0.5
    """Normals -> normals (skips off): weight of its L1 + 1 - cos."""
    w_hair: float = 0.3
    """Weight of a fully hair-covered face pixel in the image -> normals losses (the
    ground truth there is the skin under the hair; items without ``hair`` count fully)."""
    w_confidence: float = 0.1
    """Weight of the von Mises-Fisher NLL that trains the confidence head (models with
    ``ModelConfig.confidence``; the normals are detached in this term)."""
    prior: str = "none"
    """Prior normals fed to a ``coarse_normals`` model: a name in
    :data:`facenormals3d.training.prior.PRIORS`, run on every training image in the data
    workers; "none" = the data brings ``coarse_normals`` itself."""
    data_seed: int = 1
    """Seed of the synthetic data (``--synth``): with the model seed and this config it
    reproduces the run's data exactly."""
    synth: dict | None = None
    """``SynthSettings.to_dict()`` of on-the-fly synthetic data (``--synth``), else None."""
    flip: bool = True
    """Random horizontal flips (normals' x negated)."""
    val_every: int = 500
    """Validate every this many steps (and at the end)."""
    val_samples: int = 64
    """Held-out samples scored per validation (the first ones of the split)."""
    checkpoint_every: int = 100
    """Write the checkpoint every this many steps."""
    log_every: int = 10
    """Append a training-log row every this many steps."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) after this much wall time; 0 = no limit."""
    seed: int = 0
    """Seed of the model initialisation, data order and augmentation."""
    num_workers: int = 0
    """DataLoader worker processes per source."""
    amp: bool = True
    """Mixed precision (float16 autocast) when training on CUDA; ignored on CPU."""
    channels_last: bool = False
    """Use the channels-last memory format."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        return cls(model=ModelConfig.from_dict(d.pop("model")), **d)


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


@dataclass
class TrainResult:
    """How a call to :func:`train` ended."""

    step: int
    """Steps done in total (including before a resume)."""
    interrupted: bool
    """Stopped early by a signal or ``max_minutes``; resume to continue."""
    last_val: dict[str, Any] | None
    """The last validation row, if any."""
    checkpoint: Path
    """Where the checkpoint is."""


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
        return iter(DataLoader(self.dataset, batch_size=self.batch_size, sampler=order, drop_last=True,
                               num_workers=self.workers, generator=gen))

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
    """One thread per data worker for OpenCV too (torch already sets its own)."""
    import cv2

    cv2.setNumThreads(1)


def make_stream(dataset: Dataset, cfg: "TrainConfig", rank: int, world: int):
    """:class:`StreamBatches` for endless datasets, else a seeded epoch :class:`BatchStream`."""
    if getattr(dataset, "endless", False):
        return StreamBatches(dataset, cfg.batch_size, rank, world, cfg.num_workers)
    return BatchStream(dataset, cfg.batch_size, cfg.seed, rank, world, cfg.num_workers)


class Branches(nn.Module):
    """All branches and losses of one step in one ``forward`` (so DDP sees one call)."""

    def __init__(self, model: CrossModalNet, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, paired: dict | None, images: dict | None, normals: dict | None) -> dict[str, torch.Tensor]:
        m, c = self.model, self.cfg
        out: dict[str, torch.Tensor] = {}
        photo_lat, photo_img, photo_mask = [], [], []
        norm_in, norm_mask = [], []
        if paired is not None:
            pred, log_kappa, lat_i = m.image_to_normals_confidence(paired["image"], paired.get("coarse_normals"))
            weight = pixel_weights(paired, c.w_hair)
            out["normal_l1"] = normal_l1(pred.float(), paired["normals"], weight)
            out["normal_angular"] = normal_angular(pred.float(), paired["normals"], weight)
            if log_kappa is not None:
                out["confidence_nll"] = vmf_nll(pred.detach().float(), log_kappa.float(), paired["normals"], weight)
            photo_lat.append(lat_i)
            photo_img.append(paired["image"])
            photo_mask.append(paired["mask"])
            norm_in.append(paired["normals"])
            norm_mask.append(paired["mask"])
        if images is not None:
            coarse = images.get("coarse_normals")
            if m.cfg.coarse_normals and coarse is None:  # photos without a prior get the "unknown" zeros
                coarse = torch.zeros_like(images["image"])
            photo_lat.append(m.encode_image(images["image"], coarse)[-1])
            photo_img.append(images["image"])
            photo_mask.append(images["mask"])
        if normals is not None:
            norm_in.append(normals["normals"])
            norm_mask.append(normals["mask"])
        if photo_lat:
            rec = m.decode_image(torch.cat(photo_lat)).float()
            out["image_l1"] = image_l1(rec, torch.cat(photo_img), torch.cat(photo_mask))
        if norm_in:
            gt, mask = torch.cat(norm_in), torch.cat(norm_mask)
            rec, lat_n = m.normals_to_normals(gt)
            out["recon_l1"] = normal_l1(rec.float(), gt, mask)
            out["recon_angular"] = normal_angular(rec.float(), gt, mask)
            if paired is not None:
                n_paired = paired["normals"].shape[0]
                out["latent"] = latent_distance(lat_i.float(), lat_n[:n_paired].float(), c.latent_loss)
        weights = {"normal_l1": c.w_normal_l1, "normal_angular": c.w_normal_angular, "latent": c.w_latent,
                   "image_l1": c.w_image, "recon_l1": c.w_recon, "recon_angular": c.w_recon,
                   "confidence_nll": c.w_confidence}
        out["loss"] = sum(weights[k] * v for k, v in out.items())
        return out


def pixel_weights(paired: dict, w_hair: float) -> torch.Tensor:
    """``B x 1 x H x W`` loss weights of a paired batch: the face mask, with pixels hair
    hides down-weighted linearly to ``w_hair`` at full coverage."""
    mask = paired["mask"]
    hair = paired.get("hair")
    if hair is None:
        return mask
    return mask * (1.0 - (1.0 - w_hair) * hair.clamp(0, 1))


def flip_batch(batch: dict, flip: torch.Tensor) -> dict:
    """Mirror the samples where ``flip`` (bool, B) is set; normal maps also get n_x negated."""
    out = dict(batch)
    sign = torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    for key in ("image", "normals", "mask", "coarse_normals", "hair", "prior_mask"):
        if key in batch:
            x = batch[key]
            mirrored = x.flip(-1) * sign if key in ("normals", "coarse_normals") else x.flip(-1)
            out[key] = torch.where(flip.view(-1, 1, 1, 1), mirrored, x)
    return out


def fit_to_input(batch: dict, size: int) -> dict:
    """Resample a batch's maps to the model's input size (a 128-input model trains on the
    engine's 256 crops; inference resizes the same way, see :mod:`facenormals3d.model.infer`).

    Images are area-averaged (antialiased bilinear); normals are averaged, renormalised and
    zeroed outside the resampled mask (mask = more than half the footprint was face).
    """
    import torch.nn.functional as F

    from facenormals3d.model.infer import resize_prior

    any_map = next(v for v in batch.values() if torch.is_tensor(v) and v.ndim == 4)
    if any_map.shape[-1] == size and any_map.shape[-2] == size:
        return batch
    out = dict(batch)

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


def with_prior(data: DataSources, prior: str) -> DataSources:
    """``data`` with the named prior (see :mod:`facenormals3d.training.prior`) added to every
    photo source's items as ``coarse_normals``; unchanged for ``"none"``."""
    if prior == "none":
        return data
    from facenormals3d.training.prior import WithPrior, make_prior

    fn = make_prior(prior)
    wrap = {k: WithPrior(getattr(data, k), fn) for k in ("paired_train", "paired_val", "images")
            if getattr(data, k) is not None}
    return replace(data, **wrap)


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(device, non_blocking=True, memory_format=fmt) if torch.is_tensor(v) and v.ndim == 4
            else v for k, v in batch.items()}


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine from 1 down to 0.05."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint without unpickling arbitrary objects (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    return ckpt


def export_weights(checkpoint: str | Path, out: str | Path, metadata: dict | None = None) -> Path:
    """Write the model of a training checkpoint as shipped weights (``.safetensors`` + JSON)."""
    from facenormals3d.model.weights import save_weights

    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ckpt["train_config"])
    model = CrossModalNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    meta = {"steps": ckpt["step"], "train_config": ckpt["train_config"], "last_val": ckpt.get("last_val")}
    meta.update(metadata or {})
    return save_weights(out, model, meta)


class _Logs:
    """CSV + JSONL logs in the run folder (rank 0 only)."""

    def __init__(self, out: Path):
        self.out = out

    def append(self, name: str, row: dict[str, Any]) -> None:
        with open(self.out / f"log_{name}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.out / f"log_{name}.csv"
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


def _distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device_name)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_name == "cuda" else "gloo")
    device = torch.device(device_name)
    if device_name == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def train(cfg: TrainConfig, data: DataSources, out_dir: str | Path, device: str = "cpu",
          resume: bool = False, progress: Callable[..., Iterable] | None = None) -> TrainResult:
    """Train (or, with ``resume``, continue training from ``out_dir/checkpoint.pt``).

    On resume the checkpoint's settings are used except :data:`RUN_LENGTH_FIELDS`,
    which come from ``cfg`` (so a run can be extended). Returns when ``cfg.steps`` are
    done, or early (``interrupted``) on SIGTERM/SIGINT or after ``cfg.max_minutes``.
    ``progress(steps, total=N)`` wraps the step range (e.g. a progress bar); None = none.
    """
    from facenormals3d.model.validation import validate, write_sample_grid

    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    rank, world, dev = _distributed(device)
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if ckpt is not None:
        saved = TrainConfig.from_dict(ckpt["train_config"])
        cfg = replace(saved, **{k: getattr(cfg, k) for k in RUN_LENGTH_FIELDS})
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", cfg.to_dict())

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.prior != "none" and not cfg.model.coarse_normals:
        raise InputError("--prior", "prior normals need a prior-conditioned model (--coarse-normals)")
    data = with_prior(data, cfg.prior)
    model = CrossModalNet(cfg.model).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    sources = data.train_sources()
    step_module: nn.Module = Branches(model, cfg)
    if world > 1:
        # Without one of the sources some parts get no gradient in a step.
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=len(sources) < 3)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    streams = {k: make_stream(v, cfg, rank, world) for k, v in sources.items()}
    step, last_val, best = 0, None, math.inf
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        for k, s in streams.items():
            s.load_state_dict(ckpt["data"][k])
        set_rng_state(ckpt["rng"])
        step, last_val, best = ckpt["step"], ckpt.get("last_val"), ckpt.get("best", math.inf)
        log.info("resumed from %s at step %d", ckpt_path, step)

    def save_checkpoint() -> None:
        if rank != 0:
            return
        state = {"format": CHECKPOINT_FORMAT, "step": step, "train_config": cfg.to_dict(),
                 "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                 "data": {k: s.state_dict() for k, s in streams.items()}, "rng": rng_state(),
                 "last_val": last_val, "best": best}
        atomic_write(ckpt_path, lambda p: torch.save(state, p))

    def run_validation() -> None:
        nonlocal last_val, best
        if rank != 0 or data.paired_val is None:
            return
        metrics, samples = validate(model, data.paired_val, cfg.val_samples, cfg.batch_size, dev)
        last_val = {"step": step, **metrics.row()}
        _Logs(out).append("val", last_val)
        write_sample_grid(out / "samples" / f"val_{step:08d}.png", samples)
        if metrics.mean < best:
            from facenormals3d.model.weights import save_weights

            best = metrics.mean
            save_weights(out / "best.safetensors", model, {"steps": step, "val": last_val})
        log.info("step %d: validation mean angular error %.2f deg", step, metrics.mean)

    stop = {"flag": False}

    def on_signal(signum, _frame):  # finish the current step, then checkpoint and leave
        stop["flag"] = True

    old_handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old_handlers[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread: the caller handles signals
            pass
    logs = _Logs(out)
    t_start = t_log = time.perf_counter()
    samples_since = 0
    model.train()
    steps = range(step, cfg.steps)
    bar = steps if progress is None else progress(steps, total=cfg.steps)
    try:
        for _ in bar:
            batches = {k: s.next() for k, s in streams.items()}
            if cfg.flip:
                batches = {k: flip_batch(b, torch.rand(len(next(iter(b.values())))) < 0.5)
                           for k, b in batches.items()}
            batches = {k: to_device(fit_to_input(b, cfg.model.input_size), dev, cfg.channels_last)
                       for k, b in batches.items()}
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                losses = step_module(batches.get("paired_train"), batches.get("images"), batches.get("normals"))
            opt.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            samples_since += world * sum(len(b["mask"]) for b in batches.values())
            if not torch.isfinite(losses["loss"]):
                raise FloatingPointError(f"loss is not finite at step {step}: {losses}")
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                now = time.perf_counter()
                row = {"step": step, **{k: losses[k].item() if k in losses else "" for k in LOSS_KEYS},
                       "lr": sched.get_last_lr()[0], "samples_per_s": samples_since / (now - t_log),
                       "elapsed_s": now - t_start}
                logs.append("train", row)
                samples_since, t_log = 0, now
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                run_validation()
            timed_out = cfg.max_minutes > 0 and time.perf_counter() - t_start > 60 * cfg.max_minutes
            halt = torch.tensor([float(stop["flag"] or timed_out)])
            if world > 1:  # every rank stops at the same step
                dist.all_reduce(halt, op=dist.ReduceOp.MAX)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or halt.item() > 0:
                save_checkpoint()
            if halt.item() > 0:
                log.info("stopped at step %d; checkpoint written, continue with --resume", step)
                break
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if world > 1:
            dist.barrier()
    return TrainResult(step=step, interrupted=step < cfg.steps, last_val=last_val, checkpoint=ckpt_path)


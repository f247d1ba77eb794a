"""Training the cross-modal network (single process, or DDP under ``torchrun``): the loop.

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

The parts live beside this module: :mod:`~facenormals3d.training.config` (the run's
settings), :mod:`~facenormals3d.training.data` (sources, streams, batch transforms),
:mod:`~facenormals3d.training.step` (branches and losses, learning-rate schedule) and
:mod:`~facenormals3d.training.checkpoint`; :class:`Trainer` holds one run's state.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from facenormals3d.errors import InputError
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.outputs import write_json
from facenormals3d.training.checkpoint import (CHECKPOINT_FORMAT, init_from_weights, load_checkpoint, rng_state,
                                               save_checkpoint, set_rng_state)
from facenormals3d.training.config import RUN_LENGTH_FIELDS, TRAIN_ONLY, TrainConfig
from facenormals3d.training.data import DataSources, fit_to_input, flip_batch, make_stream, to_device, with_prior
from facenormals3d.training.step import LOSS_KEYS, Branches, lr_factor

log = logging.getLogger("facenormals3d.train")


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


def _init_weights_sha256(cfg: TrainConfig) -> str:
    """SHA-256 of ``cfg.init_weights``; InputError when the file is missing or is not the
    weights ``cfg.init_weights_sha256`` names."""
    from facenormals3d.model.weights import sha256_file

    path = Path(cfg.init_weights)
    if not path.is_file():
        raise InputError(str(path), "--init-weights: no such file")
    sha = sha256_file(path)
    if cfg.init_weights_sha256 and sha != cfg.init_weights_sha256:
        raise InputError(str(path), f"--init-weights: SHA-256 {sha[:12]}... is not {cfg.init_weights_sha256[:12]}..., "
                                    "the weights this train config started from")
    return sha


class Trainer:
    """One training run: the model, optimizer, scheduler, data streams and run folder, set up
    from ``cfg`` or (with ``resume``) from ``out_dir/checkpoint.pt``; :meth:`run` trains.

    On resume the checkpoint's settings are used except :data:`RUN_LENGTH_FIELDS`, which
    come from ``cfg`` (so a run can be extended).
    """

    def __init__(self, cfg: TrainConfig, data: DataSources, out_dir: str | Path, device: str = "cpu",
                 resume: bool = False):
        self.out = Path(out_dir)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.rank, self.world, self.device = _distributed(device)
        ckpt = load_checkpoint(self.ckpt_path) if resume and self.ckpt_path.is_file() else None
        if ckpt is not None:
            saved = TrainConfig.from_dict(ckpt["train_config"])
            cfg = replace(saved, **{k: getattr(cfg, k) for k in RUN_LENGTH_FIELDS})
        elif cfg.init_weights:
            cfg = replace(cfg, init_weights_sha256=_init_weights_sha256(cfg))
        self.cfg = cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "train_config.json", cfg.to_dict())

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.prior != "none" and not cfg.model.coarse_normals:
            raise InputError("--prior", "prior normals need a prior-conditioned model (--coarse-normals)")
        if cfg.train_only not in TRAIN_ONLY:
            raise InputError("--train-only", f"must be one of {', '.join(TRAIN_ONLY)}, got {cfg.train_only!r}")
        if cfg.train_only == "confidence" and not (cfg.model.confidence and (cfg.init_weights or ckpt)):
            raise InputError("--train-only", "confidence alone needs --confidence and --init-weights "
                                             "(the trained network whose confidence is learnt)")
        if cfg.train_only == "detail" and not (cfg.model.detail_channels and (cfg.init_weights or ckpt)):
            raise InputError("--train-only", "detail alone needs --detail-channels and --init-weights "
                                             "(the trained network whose normals the head refines)")
        self.data = with_prior(data, cfg)
        model = CrossModalNet(cfg.model).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        sources = self.data.train_sources()
        self.step_module: nn.Module = Branches(model, cfg)
        if self.world > 1:
            # Without one of the sources some parts get no gradient in a step.
            self.step_module = nn.parallel.DistributedDataParallel(self.step_module,
                                                                   find_unused_parameters=len(sources) < 3)
        self.opt = torch.optim.AdamW(**_trainable(model, cfg), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.autocast_dtype = autocast_dtype(cfg, self.device)
        # float16 needs its gradients scaled; bfloat16 has float32's range and does not.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype is torch.float16)
        if self.autocast_dtype is torch.bfloat16 and not _cpu_has_bfloat16():
            log.warning("--bf16: this CPU has no bfloat16 instructions (oneDNN reports none); "
                        "it is emulated and steps will be several times slower than in float32 "
                        "(bench network --bf16 measures both)")
        self.streams = {k: make_stream(v, cfg, self.rank, self.world) for k, v in sources.items()}
        self.step, self.last_val, self.best = 0, None, math.inf
        if ckpt is None and cfg.init_weights:
            init_from_weights(model, cfg.init_weights)
        if ckpt is not None:
            self.load_state(ckpt)
            log.info("resumed from %s at step %d", self.ckpt_path, self.step)

    def checkpoint_state(self) -> dict[str, Any]:
        """What ``checkpoint.pt`` holds (keys fixed by :data:`CHECKPOINT_FORMAT`)."""
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "train_config": self.cfg.to_dict(),
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "data": {k: s.state_dict() for k, s in self.streams.items()}, "rng": rng_state(),
                "last_val": self.last_val, "best": self.best}

    def load_state(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint dict (see :meth:`checkpoint_state`)."""
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        for k, s in self.streams.items():
            s.load_state_dict(ckpt["data"][k])
        set_rng_state(ckpt["rng"])
        self.step, self.last_val, self.best = ckpt["step"], ckpt.get("last_val"), ckpt.get("best", math.inf)

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.checkpoint_state())

    def validate(self) -> None:
        """Score the held-out samples, log them, write a sample grid and keep the best weights."""
        from facenormals3d.training.validation import validate, write_sample_grid

        if self.rank != 0 or self.data.paired_val is None:
            return
        cfg, step = self.cfg, self.step
        metrics, samples, extra = validate(self.model, self.data.paired_val, cfg.val_samples, cfg.batch_size,
                                           self.device)
        self.last_val = {"step": step, **metrics.row(), **extra}
        _Logs(self.out).append("val", self.last_val)
        write_sample_grid(self.out / "samples" / f"val_{step:08d}.png", samples)
        score = extra["confidence_nll"] if cfg.train_only == "confidence" else metrics.mean
        if score < self.best:
            from facenormals3d.model.weights import save_weights

            self.best = score
            # The train config travels with the weights: reconstruct reads which prior they need.
            save_weights(self.out / "best.safetensors", self.model,
                         {"steps": step, "val": self.last_val, "train_config": cfg.to_dict()})
        log.info("step %d: validation mean angular error %.2f deg%s", step, metrics.mean,
                 "".join(f", {k} {v:.3f}" for k, v in extra.items()))

    def train_step(self) -> tuple[dict[str, torch.Tensor], int]:
        """One optimizer step on a batch of every source: ``(losses, samples in it on all ranks)``."""
        cfg, dev = self.cfg, self.device
        batches = {k: s.next() for k, s in self.streams.items()}
        if cfg.flip:
            batches = {k: flip_batch(b, torch.rand(len(next(iter(b.values())))) < 0.5)
                       for k, b in batches.items()}
        full = bool(cfg.model.detail_channels)  # a detail head scores the paired batch at the crop's size
        batches = {k: to_device(fit_to_input(b, cfg.model.input_size, keep_full=full and k == "paired_train"),
                                dev, cfg.channels_last)
                   for k, b in batches.items()}
        with torch.autocast(device_type=dev.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            losses = self.step_module(batches.get("paired_train"), batches.get("images"), batches.get("normals"))
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.step += 1
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"loss is not finite at step {self.step}: {losses}")
        return losses, self.world * sum(len(b["mask"]) for b in batches.values())

    def run(self, progress: Callable[..., Iterable] | None = None) -> TrainResult:
        """Train until ``cfg.steps``, or stop early (``interrupted``, with a checkpoint) on
        SIGTERM/SIGINT or after ``cfg.max_minutes``. ``progress(steps, total=N)`` wraps the
        step range (e.g. a progress bar); None = none."""
        cfg = self.cfg
        stop = {"flag": False}

        def on_signal(signum, _frame):  # finish the current step, then checkpoint and leave
            stop["flag"] = True

        old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        logs = _Logs(self.out)
        t_start = t_log = time.perf_counter()
        samples_since = 0
        self.model.train(cfg.train_only == "all")  # frozen parts keep their batch-norm statistics
        steps = range(self.step, cfg.steps)
        bar = steps if progress is None else progress(steps, total=cfg.steps)
        try:
            for _ in bar:
                losses, samples = self.train_step()
                step = self.step
                samples_since += samples
                if self.rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                    now = time.perf_counter()
                    row = {"step": step, **{k: losses[k].item() if k in losses else "" for k in LOSS_KEYS},
                           "lr": self.sched.get_last_lr()[0], "samples_per_s": samples_since / (now - t_log),
                           "elapsed_s": now - t_start}
                    logs.append("train", row)
                    samples_since, t_log = 0, now
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                timed_out = cfg.max_minutes > 0 and time.perf_counter() - t_start > 60 * cfg.max_minutes
                # A run that ends on its time budget is scored where it stopped (runs compared
                # on the same budget); one stopped by a signal is not (the user wants it to stop).
                if step % cfg.val_every == 0 or step == cfg.steps or timed_out:
                    self.validate()
                halt = torch.tensor([float(stop["flag"] or timed_out)])
                if self.world > 1:  # every rank stops at the same step
                    dist.all_reduce(halt, op=dist.ReduceOp.MAX)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or halt.item() > 0:
                    self.save_checkpoint()
                if halt.item() > 0:
                    log.info("stopped at step %d; checkpoint written, continue with --resume", step)
                    break
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if self.world > 1:
                dist.barrier()
        return TrainResult(step=self.step, interrupted=self.step < cfg.steps, last_val=self.last_val,
                           checkpoint=self.ckpt_path)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype a training step's forward pass autocasts to: float16 on CUDA with
    ``cfg.amp``, bfloat16 on the CPU with ``cfg.cpu_bf16``, else None (float32)."""
    if device.type == "cuda" and cfg.amp:
        return torch.float16
    if device.type == "cpu" and cfg.cpu_bf16:
        return torch.bfloat16
    return None


def _cpu_has_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the query: assume not
        return False


def _trainable(model: CrossModalNet, cfg: TrainConfig) -> dict[str, Any]:
    """The optimizer's ``params`` and ``weight_decay`` for ``cfg.train_only``. For the detail
    head alone: its weights; every other weight is frozen. For the confidence alone: the
    normal decoder's output convolution, whose other rows get no gradient (the confidence
    term reads detached features), and no weight decay, so AdamW leaves them exactly as they
    are; every other weight is frozen."""
    if cfg.train_only == "all":
        return {"params": model.parameters(), "weight_decay": cfg.weight_decay}
    detail = cfg.train_only == "detail"
    params = list((model.detail if detail else model.dec_normal.head).parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return {"params": params, "weight_decay": cfg.weight_decay if detail else 0.0}


def train(cfg: TrainConfig, data: DataSources, out_dir: str | Path, device: str = "cpu",
          resume: bool = False, progress: Callable[..., Iterable] | None = None) -> TrainResult:
    """Train (or, with ``resume``, continue training from ``out_dir/checkpoint.pt``): a
    :class:`Trainer` and its :meth:`Trainer.run`."""
    return Trainer(cfg, data, out_dir, device, resume).run(progress)

"""``facenormals3d train``: train the cross-modal network, resume it, or export its weights.

Data (at least one):
  --synth ICT_DIR  synthetic data rendered on the fly by --num-workers processes, never
                 repeating (sample i of --data-seed, training identities; validation on the
                 first --val-samples of the held-out identities); resumes where it stopped
  --paired DIR   shard folder written by ``facenormals3d synth`` (train/val split by identity),
                 or a folder of photo + NAME_normals pairs (layout in facenormals3d.data.folders)
  --images DIR   folder of face photos (layout in facenormals3d.data.folders)
  --normals DIR  folder of normal maps (layout in facenormals3d.data.folders)

Multi-process: ``torchrun --nproc_per_node N -m facenormals3d train ...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import fields, replace
from pathlib import Path

from facenormals3d.errors import ExitCode, InputError, OutputExistsError

#: CLI flag -> (TrainConfig field, or "model." + ModelConfig field).
FLAG_FIELDS = {
    "steps": "steps", "batch_size": "batch_size", "lr": "lr", "val_every": "val_every",
    "val_samples": "val_samples", "checkpoint_every": "checkpoint_every", "log_every": "log_every",
    "max_minutes": "max_minutes", "seed": "seed", "num_workers": "num_workers",
    "latent_weight": "w_latent", "width": "model.width", "input_size": "model.input_size",
    "data_seed": "data_seed", "prior": "prior", "hair_weight": "w_hair", "init_weights": "init_weights",
    "framing": "framing", "detail_channels": "model.detail_channels",
}

#: ``SynthSettings.margin`` of ``--framing front-end`` runs (room for the pipeline's crop:
#: on test renders it was up to 20 % wider than the engine's and 8 % off centre).
FRONT_END_MARGIN = 1.3


def add_parser(sub: argparse._SubParsersAction) -> None:
    from facenormals3d.console import add_common_options, add_device_option
    from facenormals3d.training.config import FRAMINGS, TRAIN_ONLY

    p = sub.add_parser("train", help="train the cross-modal normal network (resumable, DDP-ready)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth", metavar="ICT_DIR", help="render paired data on the fly from this ICT FaceKit folder")
    p.add_argument("--paired", metavar="DIR", help="paired shard folder (image + normals + mask)")
    p.add_argument("--images", metavar="DIR", help="image-only folder (image -> image branch)")
    p.add_argument("--normals", metavar="DIR", help="normal-only folder (normal -> normal branch)")
    p.add_argument("-o", "--out", metavar="DIR", help="run folder: checkpoint, logs, samples")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--overwrite", action="store_true", help="start over, deleting an existing run folder")
    p.add_argument("--config", metavar="JSON", help="start from this train_config.json (flags override it)")
    for flag, typ in (("steps", int), ("batch-size", int), ("lr", float), ("val-every", int),
                      ("val-samples", int), ("checkpoint-every", int), ("log-every", int),
                      ("max-minutes", float), ("seed", int), ("num-workers", int),
                      ("latent-weight", float), ("width", float), ("input-size", int),
                      ("data-seed", int), ("prior", str), ("hair-weight", float), ("init-weights", str),
                      ("detail-channels", int)):
        p.add_argument(f"--{flag}", type=typ, default=None,
                       help=f"TrainConfig.{FLAG_FIELDS[flag.replace('-', '_')]} (default from the config)")
    p.add_argument("--framing", choices=FRAMINGS, default=None,
                   help="synthetic crops framed by the engine's rule on the model's landmarks (model), or "
                        "as reconstruct crops a photo, on the landmarks mediapipe finds (front-end: renders "
                        f"with margin {FRONT_END_MARGIN}, needs --prior; TrainConfig.framing, default model)")
    p.add_argument("--coarse-normals", action="store_true",
                   help="prior-conditioned network: prior normals as 3 extra input channels (use with --prior)")
    p.add_argument("--confidence", action="store_true", help="add the per-pixel confidence (log kappa) output")
    p.add_argument("--train-only", choices=TRAIN_ONLY, default=None,
                   help="confidence: learn only the confidence output of the --init-weights network (with "
                        "--confidence); its normals stay exactly the same, a step is one forward pass. "
                        "detail: learn only the full-resolution detail head (with --detail-channels) on top of "
                        "the frozen --init-weights network (TrainConfig.train_only; default all)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast on the CPU: ~1.9x faster steps (bench network --bf16) on CPUs with AVX512-BF16 or AMX, "
                        "several times slower without (TrainConfig.cpu_bf16; may be switched on when resuming)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--export-weights", nargs=2, metavar=("CKPT", "OUT"),
                   help="only export CKPT's model as OUT.safetensors (+ JSON sidecar) and exit")
    add_device_option(p)
    add_common_options(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """TrainConfig from ``--config`` (or defaults) with the given flags applied."""
    import json

    from facenormals3d.training.config import TrainConfig

    cfg = TrainConfig()
    if args.config:
        try:
            cfg = TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise InputError(args.config, f"cannot read train config ({err})") from None
    top, model = {}, {}
    for flag, name in FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            (model if name.startswith("model.") else top)[name.removeprefix("model.")] = value
    if args.channels_last:
        top["channels_last"] = True
    if args.coarse_normals:
        model["coarse_normals"] = True
    if args.confidence:
        model["confidence"] = True
    if args.train_only:
        top["train_only"] = args.train_only
    if args.no_amp:
        top["amp"] = False
    if args.bf16:
        top["cpu_bf16"] = True
    unknown = set(top) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"internal: flags map to unknown TrainConfig fields {sorted(unknown)}")
    return replace(cfg, model=replace(cfg.model, **model), **top)


def build_data(args: argparse.Namespace, size: int, cfg):
    """``(data sources, cfg)``; with ``--synth`` the returned config records the synthetic settings."""
    from facenormals3d.training.data import DataSources

    data = DataSources()
    if args.synth:
        from dataclasses import replace as dc_replace

        from facenormals3d.data.datasets import SynthDataset, SynthStreamDataset
        from facenormals3d.data.synth import SynthSettings

        settings = SynthSettings.from_dict(cfg.synth) if cfg.synth else SynthSettings()
        if cfg.framing == "front-end" and settings.margin == 1.0:
            settings = dc_replace(settings, margin=FRONT_END_MARGIN)
        data.paired_train = SynthStreamDataset(args.synth, seed=cfg.data_seed, split="train", settings=settings)
        data.paired_val = SynthDataset(args.synth, n=cfg.val_samples, seed=cfg.data_seed, split="val",
                                       settings=settings)
        cfg = dc_replace(cfg, synth=settings.to_dict())
    if args.paired and (Path(args.paired) / "manifest.json").is_file():
        from facenormals3d.data.datasets import ShardDataset

        data.paired_train = ShardDataset(args.paired, "train")
        val = ShardDataset(args.paired, "val")
        data.paired_val = val if len(val) else None
    elif args.paired:
        from facenormals3d.data.folders import PairedFolderDataset

        data.paired_train = PairedFolderDataset(args.paired, "train", size)
        val = PairedFolderDataset(args.paired, "val", size)
        data.paired_val = val if len(val) else None
    if args.images:
        from facenormals3d.data.folders import ImageFolderDataset

        data.images = ImageFolderDataset(args.images, size)
    if args.normals:
        from facenormals3d.data.folders import NormalFolderDataset

        data.normals = NormalFolderDataset(args.normals, size)
    return data, cfg


def run(args: argparse.Namespace) -> int:
    import torch

    from facenormals3d.console import emit, progress
    from facenormals3d.device import resolve_device
    from facenormals3d.training.checkpoint import export_weights
    from facenormals3d.training.train import train

    if args.export_weights:
        path = export_weights(*args.export_weights)
        emit(args, {"weights": str(path)}, f"wrote {path} and {path.with_suffix('.json')}")
        return int(ExitCode.OK)
    if not args.out:
        raise InputError(None, "give the run folder with -o/--out")
    if not (args.synth or args.paired or args.images or args.normals):
        raise InputError(None, "give at least one of --synth, --paired, --images, --normals")
    if args.synth and args.paired:
        raise InputError(None, "give --synth or --paired, not both")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if (out / "checkpoint.pt").exists() and not args.resume:
        if not args.overwrite:
            raise OutputExistsError(out)
        if rank0:
            shutil.rmtree(out)
    cfg = build_config(args)
    if args.resume and (out / "checkpoint.pt").is_file():
        # Data settings come from the run being resumed (train() keeps its config too).
        from facenormals3d.training.checkpoint import load_checkpoint
        from facenormals3d.training.config import RUN_LENGTH_FIELDS, TrainConfig

        saved = TrainConfig.from_dict(load_checkpoint(out / "checkpoint.pt")["train_config"])
        cfg = replace(saved, **{k: getattr(cfg, k) for k in RUN_LENGTH_FIELDS})
    data, cfg = build_data(args, cfg.model.input_size, cfg)
    result = train(cfg, data, out, device=resolve_device(args.device), resume=args.resume,
                   progress=lambda it, total: progress(it, total=total, desc="train", args=args, unit="step"))
    payload = {"step": result.step, "interrupted": result.interrupted,
               "checkpoint": str(result.checkpoint), "last_val": result.last_val}
    if rank0:
        state = "stopped early (resume with --resume)" if result.interrupted else "finished"
        emit(args, payload, f"{state} at step {result.step}; checkpoint {result.checkpoint}")
    return 130 if result.interrupted else int(ExitCode.OK)

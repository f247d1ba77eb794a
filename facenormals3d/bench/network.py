"""``facenormals3d bench network``: speed and size of the cross-modal network on CPU.

For each candidate configuration (width x training input size; channels-last as
reconstruct runs it, optionally also contiguous)
it measures inference time per 256 x 256 face (batch 1; a model trained at 128 gets the
face resized down and its normals resized back, as :func:`predict_normals` does; with the
mirrored crop too where ``reconstruct`` does that, and one pass alone) and
training throughput (paired samples per second through all three branches and the latent
term, forward + backward + AdamW step). Threads are fixed (default 2, the target machine).

The inference target is in milliseconds, which depend on the CPU; the yardstick timed in the
same run is this machine's float32 matrix-multiply rate (GFLOP/s, same threads). With the
network's counted inference FLOPs it gives the time the face would take at that rate, and
the share of it the network reaches: the ms on another CPU scale with its matmul rate.
"""

from __future__ import annotations

import argparse

from facenormals3d.bench import BenchReport, target, time_call

DESCRIPTION = "cross-modal network: CPU inference ms per 256^2 face, training samples/s, parameter counts"
#: Inference target for the shipped configuration on 2 CPU cores (issue 13; issue 5 asked 150).
INFERENCE_TARGET_MS = 60.0
#: Side of the square float32 matrices of the yardstick (2 n^3 FLOP per product).
MATMUL_N = 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.375, 0.5],
                   help="width multipliers to compare (default: 0.25 0.375 0.5)")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256],
                   help="training input sizes to compare (default: 256 128)")
    p.add_argument("--contiguous", action="store_true",
                   help="also time the contiguous memory layout (reconstruct and training use channels-last)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--batch-size", type=int, default=8, help="training batch size (default: 8)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, best is kept (default: 3)")
    p.add_argument("--bf16", action="store_true",
                   help="also time training steps in bfloat16 (train --bf16) beside float32")


def _measure(cfg, channels_last: bool, batch_size: int, repeats: int, flip_average: bool,
             bf16: bool = False) -> dict:
    import torch

    from facenormals3d.model.crossmodal import CrossModalNet, count_parameters
    from facenormals3d.model.infer import predict_normals
    from facenormals3d.training.config import TrainConfig
    from facenormals3d.training.step import Branches

    torch.manual_seed(0)
    model = CrossModalNet(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    face = torch.rand(1, 3, 256, 256).contiguous(memory_format=fmt)
    prior = None
    if cfg.coarse_normals:
        prior = torch.nn.functional.normalize(torch.randn(1, 3, 256, 256), dim=1).contiguous(memory_format=fmt)
    # As reconstruct runs it: with the mirrored crop too (ReconstructSettings.flip_average).
    infer_s, _ = time_call(lambda: predict_normals(model, face, prior, flip_average=flip_average),
                           repeats=repeats)
    single_s, _ = time_call(lambda: predict_normals(model, face, prior), repeats=repeats)
    infer_gflop = _counted_gflop(lambda: predict_normals(model, face, prior, flip_average=flip_average))

    s = cfg.input_size
    batch = {"image": torch.rand(batch_size, 3, s, s),
             "normals": torch.nn.functional.normalize(torch.randn(batch_size, 3, s, s), dim=1),
             "mask": torch.ones(batch_size, 1, s, s)}
    if cfg.coarse_normals:
        batch["coarse_normals"] = torch.nn.functional.normalize(torch.randn(batch_size, 3, s, s), dim=1)
    if cfg.detail_channels:  # the detail head trains on the 256 crops (fit_to_input keep_full)
        batch.update(image_full=torch.rand(batch_size, 3, 256, 256), mask_full=torch.ones(batch_size, 1, 256, 256),
                     normals_full=torch.nn.functional.normalize(torch.randn(batch_size, 3, 256, 256), dim=1))
    batch = {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}
    step_module = Branches(model.train(), TrainConfig(model=cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(dtype=None):
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = step_module(batch, None, None)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_s, _ = time_call(train_step, repeats=max(1, repeats - 1))
    row = {"width": cfg.width, "train_size": s, "channels_last": channels_last, "input_channels": cfg.image_channels,
           "params_M": count_parameters(model) / 1e6, "train_GFLOP_per_sample": _train_gflop(model, batch),
           "infer_GFLOP_256": infer_gflop, "infer_ms_256": 1000 * infer_s, "infer_single_ms_256": 1000 * single_s,
           "train_samples_per_s": batch_size / train_s}
    if bf16:
        bf16_s, _ = time_call(lambda: train_step(torch.bfloat16), repeats=max(1, repeats - 1))
        row["train_samples_per_s_bf16"] = batch_size / bf16_s
    return row


def _train_gflop(model, batch: dict) -> float:
    """Forward + backward GFLOP per paired sample (counted, not timed: stable on a busy machine)."""
    from facenormals3d.training.config import TrainConfig
    from facenormals3d.training.step import Branches

    one = {k: v[:1] for k, v in batch.items()}
    gflop = _counted_gflop(lambda: Branches(model, TrainConfig(model=model.cfg))(one, None, None)["loss"].backward())
    model.zero_grad(set_to_none=True)
    return gflop


def _counted_gflop(fn) -> float:
    """GFLOP that ``fn()`` runs (torch's FLOP counter: convolutions, matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def matmul_gflops(repeats: int, n: int = MATMUL_N) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s, the current torch threads):
    the best of ``repeats`` timed ``n x n`` products."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    seconds, _ = time_call(lambda: torch.mm(a, b), repeats=max(3, repeats))
    return 2 * n ** 3 / seconds / 1e9


def run(args: argparse.Namespace) -> BenchReport:
    import torch

    from dataclasses import replace

    from facenormals3d.device import torch_threads
    from facenormals3d.model.config import paper_config, shipped_config
    from facenormals3d.model.crossmodal import CrossModalNet, count_parameters

    from facenormals3d.pipeline import ReconstructSettings

    shipped = shipped_config()
    flip = ReconstructSettings.flip_average
    rows = []
    candidates = [(w, s) for w in args.widths for s in args.sizes]
    if (shipped.width, shipped.input_size) not in candidates:
        candidates.insert(0, (shipped.width, shipped.input_size))
    with torch_threads(args.threads):
        gflops = matmul_gflops(args.repeats)
        for width, size in candidates:
            for cl in (True, False) if args.contiguous else (True,):
                row = _measure(replace(shipped, width=width, input_size=size), cl, args.batch_size, args.repeats,
                               flip, args.bf16)
                row["shipped"] = (width, size) == (shipped.width, shipped.input_size) and cl
                rows.append(row)
    with torch.device("meta"):  # parameter shapes only: no memory, no initialisation
        paper_params = count_parameters(CrossModalNet(paper_config()))
    ship = next(r for r in rows if r["shipped"])
    targets = [target(f"inference ms per 256^2 face, shipped config, {args.threads} threads",
                      ship["infer_ms_256"], INFERENCE_TARGET_MS)]
    notes = [f"inference as reconstruct runs it: {'the crop and its mirror image (flip average), ' if flip else ''}"
             f"infer_single_ms_256 = one pass",
             f"every candidate reads the shipped input ({shipped.image_channels} channels: RGB"
             f"{' + fitted-face prior normals' if shipped.coarse_normals else ''})"
             f"{f' and has its {shipped.detail_channels}-channel detail head' if shipped.detail_channels else ''}",
             f"parameters: shipped (width {shipped.width}, input {shipped.input_size}) "
             f"{ship['params_M']:.2f} M; paper config {paper_params / 1e6:.2f} M",
             f"training: {args.batch_size} paired samples per step through all branches, "
             f"{args.threads} threads"]
    at_rate_ms = 1000 * ship["infer_GFLOP_256"] / gflops
    notes.append(f"yardstick, same run: float32 matmul ({MATMUL_N}^2) {gflops:.1f} GFLOP/s on {args.threads} "
                 f"threads; the shipped face's {ship['infer_GFLOP_256']:.2f} GFLOP would take {at_rate_ms:.1f} ms "
                 f"at that rate, measured {ship['infer_ms_256']:.1f} ms ({at_rate_ms / ship['infer_ms_256']:.0%} "
                 f"of it): the ms scale with a CPU's matmul rate")
    if args.bf16:
        notes.append(f"bfloat16 training (train --bf16), shipped config: {ship['train_samples_per_s_bf16']:.1f} "
                     f"samples/s against {ship['train_samples_per_s']:.1f} in float32 "
                     f"({ship['train_samples_per_s_bf16'] / ship['train_samples_per_s']:.2f}x)")
    return BenchReport(name="network", rows=rows, targets=targets, notes=notes,
                       reference={"paper_params_M": paper_params / 1e6, "matmul_GFLOP_s": gflops})

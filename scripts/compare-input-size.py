#!/usr/bin/env python
"""Which network input size pays on the same time budget (issue 13): 128 vs 192 vs 256 px.

The runs it reads are started together, one per size, so that they share the machine
equally and stop on the same wall-clock budget (``--max-minutes``), each from the shipped
weights (the network is fully convolutional: a 128-px model runs at 192 or 256 with a
larger latent grid) and with the same train config but the input size::

    for s in 128 192 256; do
      nohup nice -n 10 .venv/bin/facenormals3d train --synth .cache/ICT-FaceKit \\
        -o runs/size-compare/in$s --config runs/size-compare/base.json --input-size $s \\
        --threads 1 --num-workers 0 --max-minutes 40 >> runs/size-compare/in$s.log 2>&1 &
    done

(base.json: the train config of the run being continued, with ``warmup_steps`` 20.) A run
that stops on its budget is validated where it stopped. This script then scores, on the
runs' own validation set (same identities, seed and prior), per size:

* ``floor_deg``: a perfect network at that size, i.e. the true normals area-averaged down to
  the input size and bilinearly resampled back to the data's size (what the input size
  alone costs);
* ``start_deg``: the shipped weights run at that size, before any training;
* ``end_deg``, ``steps``, ``samples``: the run's last validation and how far it got;
* ``infer_ms``: the network's forward pass on one face (batch 1, one torch thread), timed
  here for all sizes in the same run.

Usage: ``.venv/bin/python scripts/compare-input-size.py [--runs runs/size-compare] [--ict
.cache/ICT-FaceKit] [--weights assets/normalnet.safetensors] [-o report.json]``
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _last_row(path: Path) -> dict | None:
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    return rows[-1] if rows else None


def _resolution_floor(dataset, size: int) -> float:
    """Mean angular error (deg) of the true normals taken down to ``size`` and back."""
    from facenormals3d.evaluate.metrics import normal_metrics

    preds, gts, masks = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        gt = item["normals"][None]
        full = gt.shape[-1]
        small = F.interpolate(gt, size=(size, size), mode="area")
        back = F.interpolate(small, size=(full, full), mode="bilinear", align_corners=False)
        back = F.normalize(back, dim=1)
        preds.append(back[0].permute(1, 2, 0).numpy())
        gts.append(gt[0].permute(1, 2, 0).numpy())
        masks.append(item["mask"][0].numpy() > 0.5)
    return normal_metrics(np.stack(preds), np.stack(gts), np.stack(masks)).mean


def _model_at(weights: Path, size: int):
    """The shipped model rebuilt with input ``size`` (same weights: fully convolutional),
    ready for inference as ``reconstruct`` runs it."""
    from facenormals3d.model.crossmodal import CrossModalNet
    from facenormals3d.model.infer import inference_ready
    from facenormals3d.model.weights import load_weights

    shipped = load_weights(weights)
    model = CrossModalNet(replace(shipped.cfg, input_size=size))
    model.load_state_dict(shipped.state_dict())
    return inference_ready(model)


def _infer_ms(model, repeats: int = 7) -> float:
    """Median ms of :func:`predict_normals` on one random face at the model's input size."""
    from facenormals3d.model.infer import predict_normals

    size = model.cfg.input_size
    x = torch.rand(1, 3, size, size)
    coarse = torch.rand(1, 3, size, size) if model.cfg.coarse_normals else None
    predict_normals(model, x, coarse)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predict_normals(model, x, coarse)
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/size-compare"))
    ap.add_argument("--ict", type=Path, default=Path(".cache/ICT-FaceKit"))
    ap.add_argument("--weights", type=Path, default=Path("assets/normalnet.safetensors"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 256])
    ap.add_argument("-o", "--out", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from facenormals3d.data.datasets import SynthDataset
    from facenormals3d.data.synth import SynthSettings
    from facenormals3d.training.prior import WithPrior, make_prior
    from facenormals3d.training.validation import validate

    base = json.loads((args.runs / f"in{args.sizes[0]}" / "train_config.json").read_text())
    val = SynthDataset(args.ict, n=base["val_samples"], seed=base["data_seed"], split="val",
                       settings=SynthSettings.from_dict(base["synth"]))
    cached = [item for item in WithPrior(val, make_prior(base["prior"]))]  # render + fit once

    rows = []
    for size in args.sizes:
        model = _model_at(args.weights, size)
        start, _ = validate(model, cached, len(cached), 8, "cpu")
        run = args.runs / f"in{size}"
        end, last = _last_row(run / "log_val.csv"), _last_row(run / "log_train.csv")
        steps = int(end["step"]) if end else None
        rows.append({"input": size, "floor_deg": round(_resolution_floor(cached, size), 2),
                     "start_deg": round(start.mean, 2),
                     "end_deg": round(float(end["mean"]), 2) if end else None,
                     "steps": steps, "samples": steps * base["batch_size"] if steps else None,
                     "minutes": round(float(last["elapsed_s"]) / 60, 1) if last else None,
                     "infer_ms": round(_infer_ms(model), 1)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'input':>5} {'floor':>6} {'start':>6} {'end':>6} {'steps':>6} {'samples':>7} {'min':>5} {'ms/face':>7}")
    for r in rows:
        print(f"{r['input']:>5} {r['floor_deg']:>6} {r['start_deg']:>6} {str(r['end_deg']):>6} "
              f"{str(r['steps']):>6} {str(r['samples']):>7} {str(r['minutes']):>5} {r['infer_ms']:>7}")
    if args.out:
        args.out.write_text(json.dumps({"val_samples": len(cached), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

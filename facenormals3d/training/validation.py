"""Scoring the network on held-out paired data, and the sample grid drawn per validation.

The numbers come from :func:`facenormals3d.evaluate.metrics.normal_metrics`, the same
function the evaluator uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facenormals3d.conventions import normals_to_preview
from facenormals3d.evaluate.metrics import NormalMetrics, angular_error_deg, normal_metrics
from facenormals3d.model.infer import predict_normals
from facenormals3d.outputs import atomic_write

#: Error (degrees) drawn at full brightness in the error column.
ERROR_SCALE_DEG = 45.0


@torch.no_grad()
def validate(model, dataset, max_samples: int, batch_size: int, device) -> tuple[NormalMetrics, list[dict]]:
    """Metrics of image -> normals over the first ``max_samples`` items of ``dataset``.

    Returns the metrics and up to 4 samples (numpy H x W x 3 ``image``, ``pred``, ``gt``,
    H x W bool ``mask``) for :func:`write_sample_grid`. The model is left in train mode.
    """
    n = min(max_samples, len(dataset))
    if n == 0:
        raise ValueError("validation set is empty")
    model.eval()
    preds, gts, masks, samples = [], [], [], []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        image = torch.stack([it["image"] for it in items]).to(device)
        coarse = None
        if model.cfg.coarse_normals:
            coarse = torch.stack([it["coarse_normals"] for it in items]).to(device)
        # Same path as inference: resized to the model's input and back to the data's size.
        pred = predict_normals(model, image, coarse).permute(0, 2, 3, 1).numpy()
        gt = torch.stack([it["normals"] for it in items]).permute(0, 2, 3, 1).numpy()
        mask = torch.stack([it["mask"] for it in items])[:, 0].numpy() > 0.5
        preds.append(pred), gts.append(gt), masks.append(mask)
        for k in range(len(items)):
            if len(samples) < 4:
                samples.append({"image": image[k].cpu().permute(1, 2, 0).numpy(), "pred": pred[k],
                                "gt": gt[k], "mask": mask[k]})
    model.train()
    metrics = normal_metrics(np.concatenate(preds), np.concatenate(gts), np.concatenate(masks))
    return metrics, samples


def error_picture(err_deg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 heat map of angular errors: black 0 deg -> red -> yellow -> white at 45 deg."""
    g = np.clip(np.nan_to_num(err_deg) / ERROR_SCALE_DEG, 0.0, 1.0)[..., None]
    rgb = np.clip(np.concatenate([3 * g, 3 * g - 1, 3 * g - 2], axis=-1), 0.0, 1.0)
    rgb[~mask] = 0.0
    return (rgb * 255).astype(np.uint8)


def write_sample_grid(path: str | Path, samples: list[dict]) -> Path:
    """One row per sample: image | predicted normals | ground truth | angular error."""
    from facenormals3d.conventions import write_png

    rows = []
    for s in samples:
        image = (np.clip(s["image"], 0, 1) * 255).astype(np.uint8)
        err = angular_error_deg(s["pred"], s["gt"])
        rows.append(np.concatenate([image, normals_to_preview(s["pred"]),
                                    normals_to_preview(s["gt"], s["mask"]),
                                    error_picture(err, s["mask"])], axis=1))
    grid = np.concatenate(rows, axis=0)
    return atomic_write(path, lambda p: write_png(p, grid))

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
from facenormals3d.model.infer import predict_normals, predict_normals_confidence
from facenormals3d.outputs import atomic_write

#: Error (degrees) drawn at full brightness in the error column.
ERROR_SCALE_DEG = 45.0


#: Share of a validation set's face pixels, the most confident first, scored apart
#: (:func:`confidence_scores`): a useful confidence makes their error clearly lower.
CONFIDENT_SHARE = 0.8


@torch.no_grad()
def validate(model, dataset, max_samples: int, batch_size: int, device
             ) -> tuple[NormalMetrics, list[dict], dict[str, float]]:
    """Metrics of image -> normals over the first ``max_samples`` items of ``dataset``.

    Returns the metrics, up to 4 samples (numpy H x W x 3 ``image``, ``pred``, ``gt``,
    H x W bool ``mask``) for :func:`write_sample_grid`, and for a model with a confidence
    output its :func:`confidence_scores` (else an empty dict). The model is left in the mode
    it was in.
    """
    n = min(max_samples, len(dataset))
    if n == 0:
        raise ValueError("validation set is empty")
    was_training = model.training
    model.eval()
    preds, gts, masks, kappas, samples = [], [], [], [], []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        image = torch.stack([it["image"] for it in items]).to(device)
        coarse = None
        if model.cfg.coarse_normals:
            coarse = torch.stack([it["coarse_normals"] for it in items]).to(device)
        # Same path as inference: resized to the model's input and back to the data's size.
        if model.cfg.confidence:
            pred, log_kappa = predict_normals_confidence(model, image, coarse)
            kappas.append(log_kappa[:, 0].numpy())
        else:
            pred = predict_normals(model, image, coarse)
        pred = pred.permute(0, 2, 3, 1).numpy()
        gt = torch.stack([it["normals"] for it in items]).permute(0, 2, 3, 1).numpy()
        mask = torch.stack([it["mask"] for it in items])[:, 0].numpy() > 0.5
        preds.append(pred), gts.append(gt), masks.append(mask)
        for k in range(len(items)):
            if len(samples) < 4:
                samples.append({"image": image[k].cpu().permute(1, 2, 0).numpy(), "pred": pred[k],
                                "gt": gt[k], "mask": mask[k]})
    model.train(was_training)
    pred, gt, mask = np.concatenate(preds), np.concatenate(gts), np.concatenate(masks)
    extra = confidence_scores(pred, np.concatenate(kappas), gt, mask) if kappas else {}
    return normal_metrics(pred, gt, mask), samples, extra


def confidence_scores(pred: np.ndarray, log_kappa: np.ndarray, gt: np.ndarray, mask: np.ndarray
                      ) -> dict[str, float]:
    """How well a confidence map ranks and predicts the errors, over the ``mask`` pixels.

    ``pred``, ``gt``: ``B x H x W x 3`` unit normals; ``log_kappa``, ``mask``: ``B x H x W``.
    Returns ``confidence_nll`` (mean von Mises-Fisher NLL, :func:`~facenormals3d.model.losses.vmf_nll`),
    ``confident_mean_deg`` (mean error of the :data:`CONFIDENT_SHARE` most confident pixels),
    ``mean_deg`` (of all) and ``expected_mean_deg`` (the mean error the confidence predicts,
    :func:`~facenormals3d.model.losses.expected_angle_deg`: near ``mean_deg`` when calibrated).
    """
    from facenormals3d.model.losses import expected_angle_deg, vmf_nll

    def nchw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(0, 3, 1, 2)

    lk = torch.from_numpy(np.ascontiguousarray(log_kappa, np.float32))[:, None]
    weight = torch.from_numpy(mask.astype(np.float32))[:, None]
    nll = float(vmf_nll(nchw(pred), lk, nchw(gt), weight))
    err = angular_error_deg(pred[mask], gt[mask])
    order = np.argsort(-log_kappa[mask], kind="stable")
    top = order[:max(1, int(round(CONFIDENT_SHARE * len(order))))]
    return {"confidence_nll": nll, "confident_mean_deg": float(np.nanmean(err[top])),
            "mean_deg": float(np.nanmean(err)),
            "expected_mean_deg": float(expected_angle_deg(lk)[weight > 0].mean())}


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

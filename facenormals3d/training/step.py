"""One training step's branches and losses (:class:`Branches`) and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.losses import image_l1, latent_distance, normal_angular, normal_l1, vmf_nll
from facenormals3d.model.networks import resize_to
from facenormals3d.training.config import TrainConfig

#: The loss terms of a step, in the training log's column order.
LOSS_KEYS = ("loss", "normal_l1", "normal_angular", "latent", "image_l1", "recon_l1", "recon_angular",
             "confidence_nll")


class Branches(nn.Module):
    """All branches and losses of one step in one ``forward`` (so DDP sees one call)."""

    def __init__(self, model: CrossModalNet, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, paired: dict | None, images: dict | None, normals: dict | None) -> dict[str, torch.Tensor]:
        m, c = self.model, self.cfg
        if c.train_only == "confidence":
            return self._confidence_only(paired)
        if c.train_only == "detail":
            return self._detail_only(paired)
        out: dict[str, torch.Tensor] = {}
        photo_lat, photo_img, photo_mask = [], [], []
        norm_in, norm_mask = [], []
        if paired is not None:
            pred, log_kappa, lat_i, target, weight = self._image_to_normals(paired)
            out.update(normal_terms(pred, target["normals"], weight))
            if log_kappa is not None:
                out["confidence_nll"] = vmf_nll(pred.detach().float(), resize_to(log_kappa.float(), pred.shape[-2:]),
                                                target["normals"], weight)
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
        out["loss"] = self._weighted_sum(out)
        return out

    def _image_to_normals(self, paired: dict) -> tuple:
        """``(normals, log kappa or None, latent, maps they are scored against, pixel weights)``
        of a paired batch: at the crop's size from a detail head (see :func:`scored_maps`)."""
        pred, log_kappa, latent = self.model.image_to_normals_confidence(
            paired["image"], paired.get("coarse_normals"), paired.get("image_full"))
        target = scored_maps(paired, pred)
        return pred, log_kappa, latent, target, pixel_weights(target, self.cfg.w_hair)

    def _weighted_sum(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The step's loss: the terms weighted by the config."""
        c = self.cfg
        weights = {"normal_l1": c.w_normal_l1, "normal_angular": c.w_normal_angular, "latent": c.w_latent,
                   "image_l1": c.w_image, "recon_l1": c.w_recon, "recon_angular": c.w_recon,
                   "confidence_nll": c.w_confidence}
        return sum(weights[k] * v for k, v in terms.items())

    def _confidence_only(self, paired: dict | None) -> dict[str, torch.Tensor]:
        """The confidence term alone (``TrainConfig.train_only == "confidence"``), with the
        frozen normals' errors for the log."""
        if paired is None:
            raise ValueError("training the confidence alone needs paired data")
        pred, log_kappa, _ = self.model.image_to_normals_confidence(paired["image"], paired.get("coarse_normals"))
        weight = pixel_weights(paired, self.cfg.w_hair)
        nll = vmf_nll(pred.detach().float(), log_kappa.float(), paired["normals"], weight)
        with torch.no_grad():
            out = normal_terms(pred, paired["normals"], weight)
        return {**out, "confidence_nll": nll, "loss": nll}

    def _detail_only(self, paired: dict | None) -> dict[str, torch.Tensor]:
        """The image -> normals terms at the crop's resolution (``TrainConfig.train_only ==
        "detail"``): only the detail head has trainable weights, so only it is differentiated."""
        if paired is None or "image_full" not in paired:
            raise ValueError("training the detail head alone needs paired data kept at the crop's size")
        pred, _, _, target, weight = self._image_to_normals(paired)
        out = normal_terms(pred, target["normals"], weight)
        out["loss"] = self._weighted_sum(out)
        return out


def normal_terms(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """The image -> normals loss terms (masked L1 and ``1 - cos``) of ``pred`` against ``gt``
    (``B x 3 x H x W``) with per-pixel ``weight`` (``B x 1 x H x W``)."""
    return {"normal_l1": normal_l1(pred.float(), gt, weight),
            "normal_angular": normal_angular(pred.float(), gt, weight)}


def scored_maps(paired: dict, pred: torch.Tensor) -> dict:
    """The maps ``pred`` (``B x 3 x H x W``) is scored against: the paired batch's own, or,
    for normals a detail head made at the crop's size, the ``*_full`` maps
    (:func:`facenormals3d.training.data.fit_to_input` with ``keep_full``)."""
    if pred.shape[-2:] == paired["normals"].shape[-2:]:
        return paired
    full = {k: paired[f"{k}_full"] for k in ("normals", "mask", "hair") if f"{k}_full" in paired}
    if full.get("normals") is None or full["normals"].shape[-2:] != pred.shape[-2:]:
        raise ValueError(f"no ground truth of the predicted size {tuple(pred.shape[-2:])} in the batch")
    return full


def pixel_weights(paired: dict, w_hair: float) -> torch.Tensor:
    """``B x 1 x H x W`` loss weights of a paired batch: the face mask, with pixels hair
    hides down-weighted linearly to ``w_hair`` at full coverage."""
    mask = paired["mask"]
    hair = paired.get("hair")
    if hair is None:
        return mask
    return mask * (1.0 - (1.0 - w_hair) * hair.clamp(0, 1))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine from 1 down to 0.05."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))

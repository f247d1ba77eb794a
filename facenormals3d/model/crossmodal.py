"""The cross-modal network: image and normal autoencoders sharing one latent space,
with deactivable skip connections from the image encoder into the normal decoder.

Branches (Abrevaya et al., CVPR 2020):

* image -> normals: ``E_I`` -> latent -> ``D_N`` with skips ON (the inference path);
* image -> image:   ``E_I`` -> latent -> ``D_I`` (no skips);
* normals -> normals: ``E_N`` -> latent -> ``D_N`` with skips OFF (nothing merged).

The same ``D_N`` weights serve both normal branches; switching the skips off is the
same as merging all-zero skip tensors (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facenormals3d.model.config import ModelConfig
from facenormals3d.model.networks import build_parts

#: Range of the predicted log concentration (kappa from ~0.05, uniform-ish, to ~8100, ~1 deg).
LOG_KAPPA_MIN, LOG_KAPPA_MAX = -3.0, 9.0


def _check_input(x: torch.Tensor, channels: int, size: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] % 32 or x.shape[3] % 32:
        raise ValueError(f"{name}: expected B x {channels} x H x W with H, W multiples of 32 "
                         f"(model input {size}), got {tuple(x.shape)}")


class CrossModalNet(nn.Module):
    """Images are ``B x 3 x H x W`` float in [0, 1]; normals ``B x 3 x H x W`` in [-1, 1]
    (camera space, zero outside the face); coarse normals (optional input) likewise."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        parts = build_parts(cfg)
        self.enc_image = parts["enc_image"]
        self.enc_normal = parts["enc_normal"]
        self.dec_normal = parts["dec_normal"]
        self.dec_image = parts["dec_image"]
        self.skips = parts["skips"]
        self.detail = parts.get("detail")
        """The full-resolution :class:`~facenormals3d.model.networks.DetailHead`, or None."""

    # -- encoders -------------------------------------------------------------------
    def encode_image(self, image: torch.Tensor, coarse: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Image-encoder feature pyramid; the last entry is the latent."""
        x = image * 2.0 - 1.0  # centre [0, 1] pixels like the normals' [-1, 1]
        if self.cfg.coarse_normals:
            if coarse is None:
                raise ValueError("this model was built with coarse_normals=True: pass `coarse`")
            x = torch.cat([x, coarse], dim=1)
        _check_input(x, self.cfg.image_channels, self.cfg.input_size, "image")
        return self.enc_image(x)

    def encode_normals(self, normals: torch.Tensor) -> torch.Tensor:
        """Latent of a normal map, ``B x C x H/32 x W/32``."""
        _check_input(normals, 3, self.cfg.input_size, "normals")
        return self.enc_normal(normals)[-1]

    # -- decoders -------------------------------------------------------------------
    def decode_normals(self, latent: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Unit normals ``B x 3 x H x W``; ``skips=None`` is the switched-off path."""
        return self.decode_normals_confidence(latent, skips)[0]

    def decode_normals_confidence(self, latent: torch.Tensor, skips: list[torch.Tensor] | None = None
                                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(unit normals ``B x 3 x H x W``, ``log kappa`` ``B x 1 x H x W`` or None).

        ``log kappa`` is the per-pixel von Mises-Fisher concentration of the normal
        (higher = more confident; clamped to [-3, 9]); None unless ``cfg.confidence``.
        It is the head's 4th channel read from *detached* features: its loss trains that
        channel alone and never bends the shared decoder or the normals.
        """
        normals, log_kappa, _ = self._decode_normals(latent, skips)
        return normals, log_kappa

    def _decode_normals(self, latent: torch.Tensor, skips: list[torch.Tensor] | None
                        ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """:meth:`decode_normals_confidence`'s pair and the decoder's last features."""
        feats = self.dec_normal.features(latent, skips)
        head = self.dec_normal.head
        normals = F.normalize(F.conv2d(feats, head.weight[:3], head.bias[:3]), dim=1, eps=1e-6)
        if not self.cfg.confidence:
            return normals, None, feats
        log_kappa = F.conv2d(feats.detach(), head.weight[3:4], head.bias[3:4])
        return normals, log_kappa.clamp(LOG_KAPPA_MIN, LOG_KAPPA_MAX), feats

    def decode_image(self, latent: torch.Tensor) -> torch.Tensor:
        """RGB in (0, 1), ``B x 3 x H x W``."""
        return torch.sigmoid(self.dec_image(latent))

    # -- branches -------------------------------------------------------------------
    def image_to_normals(self, image: torch.Tensor, coarse: torch.Tensor | None = None,
                         use_skips: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit normals, latent) of an image; skips on unless ``use_skips=False``."""
        feats = self.encode_image(image, coarse)
        skips = self.skips(feats) if use_skips else None
        return self.decode_normals(feats[-1], skips), feats[-1]

    def image_to_normals_confidence(self, image: torch.Tensor, coarse: torch.Tensor | None = None,
                                    full_image: torch.Tensor | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(unit normals, ``log kappa`` or None, latent) of an image, skips on.

        ``full_image`` (``B x 3 x H' x W'``): the crop ``image`` was resized from. A model with
        a detail head then returns its normals at ``H' x W'`` (``log kappa`` stays at the
        input's size); without a head, or without ``full_image``, at the input's size.
        """
        feats = self.encode_image(image, coarse)
        normals, log_kappa, dec_feats = self._decode_normals(feats[-1], self.skips(feats))
        if self.detail is not None and full_image is not None:
            normals = self.detail(full_image, normals, dec_feats)
        return normals, log_kappa, feats[-1]

    def image_to_image(self, image: torch.Tensor, coarse: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode_image(self.encode_image(image, coarse)[-1])

    def normals_to_normals(self, normals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstructed unit normals, latent); skips off."""
        latent = self.encode_normals(normals)
        return self.decode_normals(latent, None), latent

    def forward(self, image: torch.Tensor, coarse: torch.Tensor | None = None) -> torch.Tensor:
        """The inference path: image -> unit normals ``B x 3 x H x W``."""
        return self.image_to_normals(image, coarse)[0]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

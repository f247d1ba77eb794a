"""Encoders and decoders of the cross-modal network.

``ResNetEncoder`` is a ResNet-18 (He et al. 2016) without the classifier, trained from
scratch. It returns the feature pyramid the decoders need::

    index  name    channels (width 1)   resolution (256 input)
    0      stem    64                   128  (7x7 stride-2 conv, before max-pool)
    1      layer1  64                   64
    2      layer2  128                  32
    3      layer3  256                  16
    4      layer4  512                  8    <- the shared latent

``Decoder`` is the paper's decoder: a 1x1 conv lifts the latent to the first width
(768), then 5 stages of (2x bilinear upsample, 3x3 conv, ReLU) with widths
640-320-320-192-64 bring it back to the input resolution, and a 1x1 conv maps to the
output channels. Skip tensors, when given, are merged after a stage's ReLU into the
*last* ``k`` channels of the decoder tensor by element-wise max (see :func:`merge_skip`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facenormals3d.model.config import ModelConfig


class StridedPointwise(nn.Conv2d):
    """1x1 convolution (no padding) whose ``stride`` subsamples its input first, then runs
    at unit stride: the same outputs and parameters as ``nn.Conv2d(c_in, c_out, 1, stride)``.

    oneDNN's AVX2 kernel for the strided 1x1 convolution's weight gradient on channels-last
    input writes past its workspace when ``c_in`` is under its channel block of 8
    (uxlfoundation/oneDNN#6035): heap corruption and a crash, or a wrong gradient. Seen on
    an AVX2-only CPU with torch 2.11 for 2-6 input channels (narrow test networks); the
    shipped widths (>= 36 channels) gave exact gradients there. Subsampling first keeps
    every width off that path.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, bias: bool = False):
        super().__init__(c_in, c_out, 1, 1, bias=bias)
        self.step = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x c_in x H x W`` -> ``B x c_out x ceil(H / stride) x ceil(W / stride)``."""
        return super().forward(x[..., ::self.step, ::self.step] if self.step > 1 else x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm and an identity/projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(StridedPointwise(c_in, c_out, stride),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet-18 feature pyramid. ``forward(x: B x C x H x W) -> [stem, l1, l2, l3, l4]``."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        stem, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layers = nn.ModuleList([
            nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))
            for c_in, c_out, stride in ((stem, w1, 1), (w1, w2, 2), (w2, w3, 2), (w3, w4, 2))])
        self.channels = tuple(widths)
        """Channels of each returned feature map."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        y = self.pool(feats[0])
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        return feats


def merge_skip(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Merge ``skip`` (B x k x H x W) into the last k channels of ``x`` (B x C x H x W, k <= C)
    by element-wise max. Both are ReLU outputs (>= 0), so an all-zero skip leaves ``x`` unchanged."""
    k = skip.shape[1]
    return torch.cat([x[:, :-k], torch.maximum(x[:, -k:], skip)], dim=1)


class Decoder(nn.Module):
    """Latent ``B x C_lat x h x w`` -> ``B x out_channels x 32h x 32w`` (before the output activation)."""

    def __init__(self, latent_channels: int, widths: Sequence[int], out_channels: int):
        super().__init__()
        self.lift = nn.Conv2d(latent_channels, widths[0], 1)
        self.stages = nn.ModuleList([nn.Conv2d(c_in, c_out, 3, 1, 1)
                                     for c_in, c_out in zip(widths[:-1], widths[1:])])
        self.head = nn.Conv2d(widths[-1], out_channels, 1)
        self.widths = tuple(widths)
        """Channels after the lift and after each stage."""

    def forward(self, latent: torch.Tensor,
                skips: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """``skips[i]`` (or None) is merged after stage i; ``skips=None`` merges nothing."""
        return self.head(self.features(latent, skips))

    def features(self, latent: torch.Tensor,
                 skips: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """The last stage's ``B x widths[-1] x 32h x 32w`` features (what ``head`` reads)."""
        x = F.relu(self.lift(latent))
        for i, conv in enumerate(self.stages):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.relu(conv(x))
            if skips is not None and i < len(skips) and skips[i] is not None:
                x = merge_skip(x, skips[i])
        return x


class SkipProjections(nn.Module):
    """1x1 conv (no bias) + ReLU per skip level: image-encoder features -> decoder skip tensors.

    Decoder stage i (output resolution 2^(i+1) x latent) takes encoder feature
    ``3 - i`` (layer3, layer2, layer1, stem). The last stage (full resolution) has no
    encoder feature of its size and gets no skip. No bias, so an all-zero encoder feature
    gives an all-zero skip, exactly like a switched-off skip.
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_widths: Sequence[int]):
        super().__init__()
        stage_out = decoder_widths[1:]
        self.sources = (3, 2, 1, 0)
        self.proj = nn.ModuleList([
            nn.Conv2d(encoder_channels[src], min(encoder_channels[src], stage_out[i]), 1, bias=False)
            for i, src in enumerate(self.sources)])

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [F.relu(p(feats[src])) for p, src in zip(self.proj, self.sources)]


#: Channels the detail head takes from the normal decoder's last features (a 1x1
#: projection at the input resolution, resized up with the normals).
DETAIL_FEATURES = 8


class DetailHead(nn.Module):
    """Normals at the crop's resolution from the normals of the network's smaller input.

    ``forward(image, normals, feats)``: ``image`` ``B x 3 x H x W`` in [0, 1] (the crop
    before it was resized to the input), ``normals`` ``B x 3 x h x w`` unit, ``feats``
    ``B x C x h x w`` (the normal decoder's last features) -> unit normals ``B x 3 x H x W``.
    The normals and a projection of the features are resized bilinearly to ``H x W``; three
    3x3 convolutions read them beside the image and output a correction added to the resized
    normals (renormalised). The last convolution starts at zero, so an untrained head returns
    exactly the resized normals: a trained network gains the head without changing its output.
    """

    def __init__(self, feat_channels: int, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(feat_channels, DETAIL_FEATURES, 1)
        self.body = nn.Sequential(nn.Conv2d(6 + DETAIL_FEATURES, channels, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(channels, 3, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, normals: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        size = tuple(image.shape[-2:])
        up = F.normalize(resize_to(normals, size), dim=1, eps=1e-6)
        f = resize_to(F.relu(self.proj(feats)), size)
        x = torch.cat([image * 2.0 - 1.0, up, f], dim=1)
        return F.normalize(up + self.out(self.body(x)), dim=1, eps=1e-6)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``B x C x h x w`` -> ``B x C x size`` (bilinear, half-pixel centres); unchanged when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def build_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
    """The parts of the model for ``cfg``: encoders, decoders, skip projections, and the
    detail head when ``cfg.detail_channels`` is set."""
    enc, dec = cfg.enc, cfg.dec
    parts = {
        "enc_image": ResNetEncoder(cfg.image_channels, enc),
        "enc_normal": ResNetEncoder(3, enc),
        "dec_normal": Decoder(enc[-1], dec, cfg.normal_channels),
        "dec_image": Decoder(enc[-1], dec, 3),
        "skips": SkipProjections(enc, dec),
    }
    if cfg.detail_channels:
        parts["detail"] = DetailHead(dec[-1], cfg.detail_channels)
    return parts

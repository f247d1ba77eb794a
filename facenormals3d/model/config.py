"""Sizes of the cross-modal network, in one dataclass that travels with the weights.

The paper configuration (``width=1.0``, 256 input) has about 39 M parameters with our
reading of the decoder widths (the paper quotes ~35 M); a width multiplier scales every
channel count so a smaller model can be trained on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from facenormals3d.errors import InputError

#: ResNet-18 channel counts: stem, layer1..layer4.
RESNET18_WIDTHS = (64, 64, 128, 256, 512)
#: Decoder widths from the paper: the lifted latent, then the output of each of the 5 stages.
PAPER_DECODER_WIDTHS = (768, 640, 320, 320, 192, 64)


@dataclass
class ModelConfig:
    """Shape of the network. Saved as JSON next to the weights."""

    width: float = 1.0
    """Multiplier applied to every channel count (1.0 = the paper)."""
    input_size: int = 256
    """Side of the square input crop in pixels; a multiple of 32."""
    coarse_normals: bool = False
    """Extension beyond the paper: feed a coarse (landmark) normal map as 3 extra input
    channels of the image encoder. Off = the paper's image-only network."""
    confidence: bool = False
    """Extension beyond the paper: the normal decoder also outputs a per-pixel
    concentration ``log kappa`` (a von Mises-Fisher confidence, see
    :func:`facenormals3d.model.losses.vmf_nll`). Off = the paper's 3-channel output."""
    detail_channels: int = 0
    """Extension beyond the paper: channels of the full-resolution detail head
    (:class:`facenormals3d.model.networks.DetailHead`), which turns the normals of an input
    smaller than the crop (``input_size`` 128 for 256 crops) into normals at the crop's
    resolution from the crop itself. 0 = off: the normals are resized up bilinearly."""
    encoder_widths: tuple[int, ...] = field(default=RESNET18_WIDTHS)
    """Unscaled encoder widths (stem, layer1, layer2, layer3, layer4)."""
    decoder_widths: tuple[int, ...] = field(default=PAPER_DECODER_WIDTHS)
    """Unscaled decoder widths: lifted latent, then 5 stage outputs."""

    def __post_init__(self) -> None:
        self.encoder_widths = tuple(int(w) for w in self.encoder_widths)
        self.decoder_widths = tuple(int(w) for w in self.decoder_widths)
        if not self.width > 0:
            raise InputError("ModelConfig.width", f"must be positive, got {self.width}")
        if self.input_size < 32 or self.input_size % 32:
            raise InputError("ModelConfig.input_size", f"must be a multiple of 32, got {self.input_size}")
        if len(self.encoder_widths) != 5 or len(self.decoder_widths) != 6:
            raise InputError("ModelConfig", "need 5 encoder widths and 6 decoder widths")
        if self.detail_channels < 0:
            raise InputError("ModelConfig.detail_channels", f"must be >= 0, got {self.detail_channels}")

    def scaled(self, w: int) -> int:
        """A channel count ``w`` times the width multiplier (at least 1)."""
        return max(1, int(round(w * self.width)))

    @property
    def enc(self) -> tuple[int, ...]:
        """Scaled encoder widths."""
        return tuple(self.scaled(w) for w in self.encoder_widths)

    @property
    def dec(self) -> tuple[int, ...]:
        """Scaled decoder widths."""
        return tuple(self.scaled(w) for w in self.decoder_widths)

    @property
    def image_channels(self) -> int:
        """Channels the image encoder reads: RGB (+ 3 coarse-normal channels)."""
        return 6 if self.coarse_normals else 3

    @property
    def normal_channels(self) -> int:
        """Channels the normal decoder outputs: xyz (+ log kappa)."""
        return 4 if self.confidence else 3

    @property
    def latent_size(self) -> int:
        """Spatial side of the latent (input / 32)."""
        return self.input_size // 32

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_widths"] = list(self.encoder_widths)
        d["decoder_widths"] = list(self.decoder_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError("model config", f"unknown keys {sorted(unknown)}")
        return cls(**d)


def paper_config() -> ModelConfig:
    """The paper's full-width network at 256 x 256."""
    return ModelConfig(width=1.0, input_size=256)


def shipped_config() -> ModelConfig:
    """The configuration of the weights shipped in ``assets/`` (trained on 2 CPU cores).

    Chosen with ``facenormals3d bench network`` for a budget of a few hours on 2 CPU
    cores: input 128 (crops resized from 256 and the normals back) trains on ~4x more
    samples than input 256 in the same time. Width 0.375 until 2026-12-06 (~16 GFLOP per
    paired training sample), then width 0.5 (~28 GFLOP), and since 2026-12-07 width 0.5625
    (~35 GFLOP, 12.3 M parameters), each grown from the narrower weights by
    :mod:`facenormals3d.model.widen` when they had flattened. Inference with flip average
    33 ms a face on 2 cores against 28 ms at 0.5 (``bench network``, 2026-12-07; 60 ms
    limit; ~41 ms at 0.5 on a slower machine earlier). The shipped weights are prior-conditioned
    (``coarse_normals``: RGB + the fitted face's normals, 6 input channels) and, since stage 15
    (2026-12-07), carry a 16-channel detail head that makes the 256 crop's normals from the
    128 input's (+15 % inference FLOPs); a test checks that this matches ``assets/normalnet.json``.
    """
    return ModelConfig(width=0.5625, input_size=128, coarse_normals=True, detail_channels=16)

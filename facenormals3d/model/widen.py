"""Growing a trained cross-modal network to a larger width without changing what it computes.

:func:`widen` copies a network into one built with a larger ``ModelConfig.width`` (every other
setting equal), so training can go on with more capacity from the trained network's behaviour
instead of from scratch. It is function-preserving widening (after Chen et al., "Net2Net",
ICLR 2016) in its zero-output form: each layer's old channels keep their weights, the new
channels keep the fresh network's random weights on their inputs, and every weight that
*reads* a new channel starts at zero. The new channels then compute something but nothing
uses it yet; their outgoing weights get gradients at once and grow in training.

Channel placement. Each channel space (a layer's outputs) keeps its old channels and gains
new ones in front (old channel ``j`` moves to ``j + d``), except where the decoder merges a
skip tensor into the *last* ``k`` channels of a stage (:func:`~facenormals3d.model.networks.merge_skip`):
there the old skip-merged channels stay last and the new channels go just before them, so
that the skip tensor's new channels (in front of its old ones) are merged into new decoder
channels only. Residual shortcuts need the same placement on both sides of the sum, which
front placement gives whenever the two spaces have the same old and new sizes (checked).
Batch-norm statistics of new channels start at mean 0, variance 1. A detail head
(:class:`~facenormals3d.model.networks.DetailHead`) keeps its own width: its projection reads
the normal decoder's old last-stage channels where they now are, and none of the new ones.
"""

from __future__ import annotations

import torch
from torch import nn

from facenormals3d.errors import InputError
from facenormals3d.model.crossmodal import CrossModalNet
from facenormals3d.model.networks import Decoder, DetailHead, ResNetEncoder, SkipProjections


def widen(src: CrossModalNet, dst: CrossModalNet) -> None:
    """Copy ``src`` into ``dst`` (a fresh network whose config differs only by a width at
    least as large) so that ``dst`` computes ``src``'s normals, images and reconstructions
    (the same up to float rounding: new terms add exact zeros). ``dst`` is changed in place."""
    a, b = src.cfg, dst.cfg
    same = ("input_size", "coarse_normals", "confidence", "detail_channels", "encoder_widths", "decoder_widths")
    if any(getattr(a, k) != getattr(b, k) for k in same):
        raise InputError("widen", "the networks may differ only by their width")
    if any(x > y for x, y in zip(a.enc + a.dec, b.enc + b.dec)):
        raise InputError("widen", f"cannot narrow width {a.width} to {b.width}")
    with torch.no_grad():
        features = _encoder(src.enc_image, dst.enc_image)
        if _encoder(src.enc_normal, dst.enc_normal) != features:
            raise AssertionError("both encoders place their channels alike")
        skips = _skips(src.skips, dst.skips, features)
        last = _decoder(src.dec_normal, dst.dec_normal, features[-1], skips)
        _decoder(src.dec_image, dst.dec_image, features[-1], skips)
        if src.detail is not None:
            _detail(src.detail, dst.detail, last)


def _front(old: int, new: int) -> list[int]:
    """New positions of ``old`` channels in a space grown to ``new``, new ones in front."""
    return list(range(new - old, new))


def _copy(dst: torch.Tensor, src: torch.Tensor, out: list[int], inp: list[int] | None = None) -> None:
    """``src`` into ``dst`` at output positions ``out`` (axis 0) and, for weights, input
    positions ``inp`` (axis 1); every input column not in ``inp`` is zeroed (new channels
    are not read), new output rows keep ``dst``'s values."""
    o = torch.tensor(out)
    if inp is None:
        dst[o] = src
        return
    i = torch.tensor(inp)
    unread = torch.ones(dst.shape[1], dtype=torch.bool)
    unread[i] = False
    dst[:, unread] = 0
    dst[o[:, None], i[None, :]] = src


def _conv(src: nn.Conv2d, dst: nn.Conv2d, out: list[int], inp: list[int]) -> None:
    _copy(dst.weight, src.weight, out, inp)
    if src.bias is not None:
        _copy(dst.bias, src.bias, out)


def _norm(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, out: list[int]) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        _copy(getattr(dst, name), getattr(src, name), out)
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _encoder(src: ResNetEncoder, dst: ResNetEncoder) -> list[list[int]]:
    """Widen one encoder; returns the placement of each returned feature map's channels."""
    inputs = list(range(src.stem[0].in_channels))
    stem = _front(src.channels[0], dst.channels[0])
    _conv(src.stem[0], dst.stem[0], stem, inputs)
    _norm(src.stem[1], dst.stem[1], stem)
    places, prev = [stem], stem
    for layer_src, layer_dst in zip(src.layers, dst.layers):
        for block_src, block_dst in zip(layer_src, layer_dst):
            inner = _front(block_src.conv1.out_channels, block_dst.conv1.out_channels)
            out = _front(block_src.conv2.out_channels, block_dst.conv2.out_channels)
            _conv(block_src.conv1, block_dst.conv1, inner, prev)
            _norm(block_src.bn1, block_dst.bn1, inner)
            _conv(block_src.conv2, block_dst.conv2, out, inner)
            _norm(block_src.bn2, block_dst.bn2, out)
            if isinstance(block_src.shortcut, nn.Sequential):
                _conv(block_src.shortcut[0], block_dst.shortcut[0], out, prev)
                _norm(block_src.shortcut[1], block_dst.shortcut[1], out)
            elif prev != out:
                raise AssertionError("an identity shortcut needs one placement on both sides")
            prev = out
        places.append(prev)
    return places


def _skips(src: SkipProjections, dst: SkipProjections, features: list[list[int]]) -> list[list[int]]:
    """Widen the skip projections; returns each skip tensor's channel placement."""
    out = []
    for p_src, p_dst, level in zip(src.proj, dst.proj, src.sources):
        place = _front(p_src.out_channels, p_dst.out_channels)
        _conv(p_src, p_dst, place, features[level])
        out.append(place)
    return out


def _decoder(src: Decoder, dst: Decoder, latent: list[int], skips: list[list[int]]) -> list[int]:
    """Widen one decoder; returns the placement of its last stage's channels (what ``head``
    and a detail head read)."""
    place = _front(src.widths[0], dst.widths[0])
    _conv(src.lift, dst.lift, place, latent)
    for i, (c_src, c_dst) in enumerate(zip(src.stages, dst.stages)):
        old, new = c_src.out_channels, c_dst.out_channels
        if i < len(skips):
            k, k_new = len(skips[i]), skips[i][-1] + 1  # the skip tensor's old and new channels
            grown = new - old
            if k_new - k > grown:
                raise AssertionError("a stage's new skip channels must land on new channels")
            # Old channels in place, new ones next, the old skip-merged ones last.
            stage = list(range(old - k)) + [j + grown for j in range(old - k, old)]
        else:
            stage = _front(old, new)
        _conv(c_src, c_dst, stage, place)
        place = stage
    _conv(src.head, dst.head, list(range(src.head.out_channels)), place)
    return place


def _detail(src: DetailHead, dst: DetailHead, features: list[int]) -> None:
    """Copy a detail head whose feature projection now reads the decoder channels at ``features``."""
    _conv(src.proj, dst.proj, list(range(src.proj.out_channels)), features)
    dst.body.load_state_dict(src.body.state_dict())
    dst.out.load_state_dict(src.out.state_dict())


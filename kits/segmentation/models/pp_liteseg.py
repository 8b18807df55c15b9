"""PP-LiteSeg (Peng et al., 2022): a light decoder over a backbone's 1/8, 1/16 and 1/32 features.

SPPM (simple pyramid pooling) summarises the deepest map; UAFM (unified attention fusion)
merges it step by step with the shallower maps, weighting the two inputs per pixel with a
spatial attention map built from their channel means and maxima. A small seg head on the 1/8
output gives the logits; optional auxiliary heads on the 1/16 and 1/32 outputs add deep
supervision during training.
"""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.errors import ConfigError

from ..registry import BACKBONES, HEADS, MODELS
from .backbones import ConvBNReLU
from .base import SegModel


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _channel_max(x, training: bool):
    """``x.max(axis=1, keepdim=True)``; in training through argmax + gather, whose gradient
    paddle computes about 50x faster on CPU than the generic reduce-max gradient."""
    if not training:
        return x.max(axis=1, keepdim=True)
    return paddle.take_along_axis(x, x.argmax(axis=1, keepdim=True), axis=1)


@HEADS.register
class SPPM(nn.Layer):
    """Average-pool to each ``bins`` grid, project, upsample, sum, then a 3x3 conv."""

    def __init__(self, in_channels: int, inter_channels: int = 128, out_channels: int = 128,
                 bins: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.bins = list(bins)
        self.stages = nn.LayerList([ConvBNReLU(in_channels, inter_channels, 1) for _ in self.bins])
        self.out = ConvBNReLU(inter_channels, out_channels, 3)

    def forward(self, x):
        size = x.shape[2:]
        total = None
        for bin_size, stage in zip(self.bins, self.stages):
            y = _resize(stage(F.adaptive_avg_pool2d(x, bin_size)), size)
            total = y if total is None else total + y
        return self.out(total)


class UAFM(nn.Layer):
    """Fuse a shallow map ``x`` with an upsampled deep map ``y``: ``x * a + y * (1 - a)`` where
    ``a`` is a sigmoid spatial attention over [mean_c(x), max_c(x), mean_c(y), max_c(y)]."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int):
        super().__init__()
        self.proj = ConvBNReLU(low_channels, high_channels, 3)
        self.attention = nn.Sequential(ConvBNReLU(4, 2, 3), ConvBNReLU(2, 1, 3, act=False))
        self.out = ConvBNReLU(high_channels, out_channels, 3)

    def forward(self, x, y):
        x = self.proj(x)
        y = _resize(y, x.shape[2:])
        stats = paddle.concat([x.mean(axis=1, keepdim=True), _channel_max(x, self.training),
                               y.mean(axis=1, keepdim=True), _channel_max(y, self.training)], axis=1)
        weight = F.sigmoid(self.attention(stats))
        return self.out(x * weight + y * (1 - weight))


class SegHead(nn.Sequential):
    def __init__(self, in_channels: int, mid_channels: int, num_outputs: int):
        super().__init__(ConvBNReLU(in_channels, mid_channels, 3), nn.Conv2D(mid_channels, num_outputs, 1))


@MODELS.register
class PPLiteSeg(SegModel):
    """PP-LiteSeg on any BACKBONES entry that returns three maps (strides 8, 16, 32).

    Args:
        backbone: a BACKBONES config, e.g. ``{type: EfficientNetLite0, pretrained: efficientnet_lite0_imagenet}``.
        arm_channels: UAFM output widths at strides 8, 16, 32.
        head_channels: seg head widths at strides 8, 16, 32 (the last two are auxiliary).
        sppm_channels / sppm_bins: the pyramid pooling width and grids.
        aux_weights: loss weights of the 1/16 and 1/32 auxiliary heads; empty builds none.
    """

    def __init__(self, num_classes: int, backbone: dict, arm_channels: Sequence[int] = (32, 64, 128),
                 head_channels: Sequence[int] = (32, 64, 64), sppm_channels: int = 128,
                 sppm_bins: Sequence[int] = (1, 2, 4), aux_weights: Sequence[float] = (1.0, 1.0),
                 loss: dict | None = None, test_config: dict | None = None, void_output: bool = False):
        super().__init__(num_classes, void_output=void_output, loss=loss, test_config=test_config,
                         aux_weights=aux_weights)
        self.backbone = BACKBONES.build(backbone)
        chans = list(self.backbone.out_channels)
        if len(chans) != 3 or len(arm_channels) != 3 or len(head_channels) != 3:
            raise ConfigError(f"PPLiteSeg needs 3 backbone maps, 3 arm_channels and 3 head_channels; got "
                              f"{len(chans)} maps ({chans}), {list(arm_channels)}, {list(head_channels)}")
        if len(self.aux_weights) > 2:
            raise ConfigError(f"PPLiteSeg has at most 2 auxiliary heads, got aux_weights {self.aux_weights}")
        self.sppm = SPPM(chans[-1], sppm_channels, sppm_channels, sppm_bins)
        highs = list(arm_channels[1:]) + [sppm_channels]
        self.fusions = nn.LayerList([UAFM(chans[i], highs[i], arm_channels[i]) for i in range(3)])
        heads = 1 + len(self.aux_weights)
        self.heads = nn.LayerList([SegHead(arm_channels[i], head_channels[i], self.out_channels)
                                   for i in range(heads)])

    def _decode(self, image) -> list:
        feats = self.backbone(image)
        y = self.sppm(feats[-1])
        outs = []
        for i in (2, 1, 0):
            y = self.fusions[i](feats[i], y)
            outs.append(y)
        return outs[::-1]  # strides 8, 16, 32

    def export_forward(self, image):
        """``image [N,3,H,W]`` normalised -> logits ``[N,C,H,W]``."""
        return _resize(self.heads[0](self._decode(image)[0]), image.shape[2:])

    def train_logits(self, image) -> list:
        outs = self._decode(image)
        return [_resize(head(out), image.shape[2:]) for head, out in zip(self.heads, outs)]


__all__ = ["PPLiteSeg", "SPPM", "UAFM", "SegHead"]

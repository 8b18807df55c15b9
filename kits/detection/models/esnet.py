"""ESNet (Enhanced ShuffleNet), the PP-PicoDet backbone.

Stem (3x3/2 conv + 3x3/2 max-pool), then three stages of ES blocks. A stage opens with a
stride-2 block (two branches, one with squeeze-excitation, fused by a depthwise + pointwise
conv) and continues with stride-1 blocks (half the channels pass through, the other half goes
pointwise -> depthwise -> SE -> pointwise, then a 2-group channel shuffle). Each block's
hidden width is ``out_channels * channel_ratio[i]`` rounded to a multiple of 8.
"""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import BACKBONES
from .layers import ConvNormAct, SEModule, make_divisible

# PicoDet-S (scale 0.75) hidden-width ratios, one per block of the 3 + 7 + 3 blocks.
PICODET_S_RATIOS = (0.875, 0.5, 0.5, 0.5, 0.625, 0.5, 0.625, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)


class ESBlock(nn.Layer):
    """Stride-1 ES block: channel split, SE branch, concat and channel shuffle."""

    def __init__(self, channels: int, mid: int, act: str):
        super().__init__()
        half = channels // 2
        self.pw = ConvNormAct(half, mid // 2, 1, act=act)
        self.dw = ConvNormAct(mid // 2, mid // 2, 3, groups=mid // 2, act=None)
        self.se = SEModule(mid)
        self.linear = ConvNormAct(mid, half, 1, act=act)

    def forward(self, x):
        keep, branch = paddle.split(x, 2, axis=1)
        branch = self.pw(branch)
        branch = self.linear(self.se(paddle.concat([branch, self.dw(branch)], axis=1)))
        return channel_shuffle(paddle.concat([keep, branch], axis=1), 2)


class ESBlockDown(nn.Layer):
    """Stride-2 ES block: a depthwise branch and an SE branch, fused by depthwise + pointwise convs."""

    def __init__(self, in_ch: int, out_ch: int, mid: int, act: str):
        super().__init__()
        half = out_ch // 2
        self.branch1 = nn.Sequential(
            ConvNormAct(in_ch, in_ch, 3, 2, groups=in_ch, act=None),
            ConvNormAct(in_ch, half, 1, act=act),
        )
        self.pw = ConvNormAct(in_ch, mid // 2, 1, act=act)
        self.dw = ConvNormAct(mid // 2, mid // 2, 3, 2, groups=mid // 2, act=None)
        self.se = SEModule(mid // 2)
        self.linear = ConvNormAct(mid // 2, half, 1, act=act)
        self.fuse_dw = ConvNormAct(out_ch, out_ch, 3, groups=out_ch, act=act)
        self.fuse_pw = ConvNormAct(out_ch, out_ch, 1, act=act)

    def forward(self, x):
        left = self.branch1(x)
        right = self.linear(self.se(self.dw(self.pw(x))))
        return self.fuse_pw(self.fuse_dw(paddle.concat([left, right], axis=1)))


@BACKBONES.register()
class ESNet(nn.Layer):
    """ESNet returning the stride 8, 16 and 32 stage outputs (``out_channels`` lists their widths).

    Args:
        scale: width multiplier; stage widths are ``make_divisible((128, 256, 512) * scale)``.
        channel_ratio: hidden-width ratio per block (``sum(stage_repeats)`` entries).
        stage_repeats: blocks per stage (the first one strides by 2).
        act: activation of the convs ('hardswish').
    """

    def __init__(self, scale: float = 0.75, channel_ratio: Sequence[float] = PICODET_S_RATIOS,
                 stage_repeats: Sequence[int] = (3, 7, 3), act: str = "hardswish"):
        super().__init__()
        if len(channel_ratio) != sum(stage_repeats):
            raise ValueError(f"channel_ratio needs {sum(stage_repeats)} entries, got {len(channel_ratio)}")
        widths = [make_divisible(c * scale) for c in (128, 256, 512)]
        stem_ch = 24
        self.stem = ConvNormAct(3, stem_ch, 3, 2, act=act)
        ratios = iter(channel_ratio)
        stages, in_ch = [], stem_ch
        for repeats, out_ch in zip(stage_repeats, widths):
            blocks = []
            for i in range(repeats):
                mid = make_divisible(int(out_ch * next(ratios)))
                blocks.append(ESBlockDown(in_ch, out_ch, mid, act) if i == 0 else ESBlock(out_ch, mid, act))
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.LayerList(stages)
        self.out_channels = widths

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), kernel_size=3, stride=2, padding=1)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def channel_shuffle(x, groups: int):
    """Interleave channel groups with reshape/transpose: paddle2onnx has no converter for
    paddle's fused ``channel_shuffle`` op, and this form exports to every engine."""
    _, channels, h, w = x.shape
    # static sizes when the traced input has them (no Shape ops in the graph), a tensor otherwise
    shape = [0, channels, h, w] if h > 0 and w > 0 else paddle.shape(x)
    return x.reshape([0, groups, channels // groups, -1]).transpose([0, 2, 1, 3]).reshape(shape)

"""CSP-PAN, the PP-PicoDet neck: a depthwise path-aggregation FPN built from CSP layers.

Every input level is reduced to ``out_channels`` by a 1x1 conv; a top-down pass (nearest 2x
upsampling + concat + CSP layer) and a bottom-up pass (stride-2 depthwise-separable conv +
concat + CSP layer) follow. With ``num_features = len(in_channels) + 1`` one extra coarser
level is the sum of two stride-2 depthwise-separable convs (of the reduced top input and of
the top output).
"""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import NECKS
from .layers import ConvNormAct, DepthwiseSeparable


class CSPLayer(nn.Layer):
    """Cross-stage partial layer: a shortcut 1x1 branch and a 1x1 + bottleneck branch, concatenated."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5, num_blocks: int = 1, act: str = "hardswish"):
        super().__init__()
        mid = out_ch // 2
        self.short_conv = ConvNormAct(in_ch, mid, 1, act=act)
        self.main_conv = ConvNormAct(in_ch, mid, 1, act=act)
        self.blocks = nn.Sequential(*[
            nn.Sequential(ConvNormAct(mid, mid, 1, act=act), DepthwiseSeparable(mid, mid, kernel, act=act))
            for _ in range(num_blocks)
        ])
        self.final_conv = ConvNormAct(2 * mid, out_ch, 1, act=act)

    def forward(self, x):
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(paddle.concat([main, short], axis=1))


@NECKS.register()
class CSPPAN(nn.Layer):
    """Path-aggregation neck returning ``num_features`` maps of ``out_channels`` each, fine to coarse.

    Args:
        in_channels: widths of the backbone maps (fine to coarse, each half the size of the last).
        out_channels: width of every output map.
        kernel_size: depthwise kernel of the CSP bottlenecks and the down-sampling convs.
        num_csp_blocks: bottlenecks per CSP layer.
        num_features: outputs; ``len(in_channels) + 1`` adds the extra coarser level.
    """

    def __init__(self, in_channels: Sequence[int] = (96, 192, 384), out_channels: int = 96, kernel_size: int = 5,
                 num_csp_blocks: int = 1, num_features: int = 4, act: str = "hardswish"):
        super().__init__()
        levels = len(in_channels)
        if num_features not in (levels, levels + 1):
            raise ValueError(f"num_features must be {levels} or {levels + 1}, got {num_features}")
        c = out_channels
        self.reduce = nn.LayerList([ConvNormAct(ch, c, 1, act=act) for ch in in_channels])
        self.top_down = nn.LayerList([CSPLayer(2 * c, c, kernel_size, num_csp_blocks, act) for _ in range(levels - 1)])
        self.downsample = nn.LayerList([DepthwiseSeparable(c, c, kernel_size, 2, act) for _ in range(levels - 1)])
        self.bottom_up = nn.LayerList([CSPLayer(2 * c, c, kernel_size, num_csp_blocks, act) for _ in range(levels - 1)])
        self.extra = num_features > levels
        if self.extra:
            self.extra_from_input = DepthwiseSeparable(c, c, kernel_size, 2, act)
            self.extra_from_output = DepthwiseSeparable(c, c, kernel_size, 2, act)
        self.out_channels = [c] * num_features

    def forward(self, feats):
        feats = [conv(f) for conv, f in zip(self.reduce, feats)]
        inner = [feats[-1]]
        # top_down[i] merges level i with the one above it (coarse levels are processed first).
        for i in range(len(feats) - 2, -1, -1):
            # size, not scale_factor: paddle2onnx cannot convert PIR's scale attribute of nearest_interp
            h, w = feats[i].shape[2:]
            size = [h, w] if h > 0 and w > 0 else paddle.shape(feats[i])[2:]  # static when known
            up = F.interpolate(inner[0], size=size, mode="nearest")
            inner.insert(0, self.top_down[i](paddle.concat([up, feats[i]], axis=1)))
        outs = [inner[0]]
        for i in range(len(feats) - 1):
            down = self.downsample[i](outs[-1])
            outs.append(self.bottom_up[i](paddle.concat([down, inner[i + 1]], axis=1)))
        if self.extra:
            outs.append(self.extra_from_input(feats[-1]) + self.extra_from_output(outs[-1]))
        return outs

"""Backbones for the segmentation decoders: EfficientNet-Lite0 with ImageNet weights, and STDC.

Every backbone returns a list of feature maps (shallow to deep) and lists their channels in
``out_channels``. A backbone entry may name ``pretrained`` weights: the backbone loads them when
it is built, so ImageNet features reach the model however it is assembled, while the top-level
``pretrained`` key stays reserved for weights of the whole model.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from kits.core.backbones import EfficientNetLite0
from kits.core.pretrained import load_into

from ..registry import BACKBONES

BACKBONES.register(EfficientNetLite0)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2D(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias_attr=False),
                  nn.BatchNorm2D(cout)]
        super().__init__(*layers, *([nn.ReLU()] if act else []))


class STDCBlock(nn.Layer):
    """Short-term dense concatenate module: a 1x1 conv then ``steps - 1`` 3x3 convs, each halving
    the width, all outputs concatenated (the last keeps its width so the sum is ``cout``).
    ``stride=2`` downsamples after the first conv (depthwise strided conv; the skip is pooled)."""

    def __init__(self, cin: int, cout: int, steps: int = 4, stride: int = 1):
        super().__init__()
        if steps < 2 or cout % (2 ** (steps - 1)):
            raise ValueError(f"STDC block: {cout} channels do not split over {steps} steps")
        widths = [cout // 2 ** (i + 1) for i in range(steps - 1)]
        widths.append(widths[-1])
        self.convs = nn.LayerList([ConvBNReLU(cin, widths[0], 1)] + [
            ConvBNReLU(widths[i - 1], widths[i], 3) for i in range(1, steps)])
        self.stride = stride
        if stride == 2:
            self.down = ConvBNReLU(widths[0], widths[0], 3, 2, groups=widths[0], act=False)
            self.pool = nn.AvgPool2D(3, 2, padding=1)

    def forward(self, x):
        first = self.convs[0](x)
        y = self.down(first) if self.stride == 2 else first
        outs = [self.pool(first) if self.stride == 2 else first]
        for conv in self.convs[1:]:
            y = conv(y)
            outs.append(y)
        return paddle.concat(outs, axis=1)


STDC_LAYERS = {"STDC1": (2, 2, 2), "STDC2": (4, 5, 3)}


@BACKBONES.register
class STDCNet(nn.Layer):
    """STDC network (Fan et al., CVPR 2021): features at strides 8, 16 and 32 (256/512/1024
    channels at ``base=64``). ``variant`` STDC1 or STDC2; randomly initialised."""

    def __init__(self, variant: str = "STDC1", base: int = 64, steps: int = 4, pretrained: str | None = None):
        super().__init__()
        if variant not in STDC_LAYERS:
            raise ValueError(f"STDCNet variant must be one of {sorted(STDC_LAYERS)}, got '{variant}'")
        self.stem = nn.Sequential(ConvBNReLU(3, base // 2, 3, 2), ConvBNReLU(base // 2, base, 3, 2))
        stages, cin = [], base
        for i, repeats in enumerate(STDC_LAYERS[variant]):
            cout = base * 4 * 2 ** i
            stages.append(nn.Sequential(*[STDCBlock(cin if j == 0 else cout, cout, steps, 2 if j == 0 else 1)
                                          for j in range(repeats)]))
            cin = cout
        self.stages = nn.LayerList(stages)
        self.out_channels = [base * 4 * 2 ** i for i in range(3)]
        if pretrained:
            load_into(self, pretrained)

    def forward(self, x) -> list:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


__all__ = ["EfficientNetLite0", "STDCNet", "STDCBlock", "ConvBNReLU"]

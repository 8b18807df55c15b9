"""EfficientNet-Lite (Tan & Le; the mobile-friendly variant): MBConv blocks, ReLU6, no SE.

The weights come from TensorFlow, so strided convs use TF "SAME" padding (extra padding goes to
the bottom/right; paddle's ``padding='SAME'`` computes exactly that for every input size) and
BN uses eps 1e-3. Stem and head widths stay fixed across variants. Inputs are RGB ``(x - 127) / 128``.

``forward(x)`` returns the feature maps at ``out_strides`` (any of 4, 8, 16, 32) for detection
and segmentation necks; ``classify(x)`` runs the ImageNet head when ``num_classes > 0``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import paddle
import paddle.nn as nn

# repeats, kernel, stride, expand ratio, in channels, out channels (the EfficientNet-B0 table)
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# width multiplier, depth multiplier, dropout before the classifier
VARIANTS = {"lite0": (1.0, 1.0, 0.2), "lite1": (1.0, 1.1, 0.2), "lite2": (1.1, 1.2, 0.3),
            "lite3": (1.2, 1.4, 0.3), "lite4": (1.4, 1.8, 0.3)}
_BN = {"epsilon": 1e-3, "momentum": 0.99}


def _round_channels(channels: int, multiplier: float, divisor: int = 8) -> int:
    if multiplier == 1.0:
        return channels
    scaled = max(divisor, int(channels * multiplier + divisor / 2) // divisor * divisor)
    return scaled + divisor if scaled < 0.9 * channels * multiplier else scaled


class ConvBN(nn.Layer):
    """Conv (TF-same padding when strided) + BN + optional ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        padding = "SAME" if stride > 1 else kernel // 2  # stride 1: SAME is symmetric anyway
        self.conv = nn.Conv2D(cin, cout, kernel, stride, padding=padding, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, **_BN)
        self.act = nn.ReLU6() if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class MBConv(nn.Layer):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_path: float = 0.0):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else None
        self.dw = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.skip = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        if not self.skip:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = paddle.floor(keep + paddle.rand([y.shape[0], 1, 1, 1], dtype=y.dtype))
            y = y / keep * mask
        return x + y


class EfficientNetLite(nn.Layer):
    """EfficientNet-Lite backbone; ``out_channels`` lists the channels of the returned maps."""

    def __init__(self, variant: str = "lite0", out_strides: tuple = (8, 16, 32), num_classes: int = 0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant '{variant}'; choose from {sorted(VARIANTS)}")
        bad = [s for s in out_strides if s not in (4, 8, 16, 32)]
        if bad:
            raise ValueError(f"out_strides must be among 4, 8, 16, 32, got {bad}")
        width, depth, dropout = VARIANTS[variant]
        self.out_strides = tuple(out_strides)
        self.stem = ConvBN(3, 32, 3, 2)
        specs = self._block_specs(width, depth)
        self.blocks = nn.LayerList([
            MBConv(*spec, drop_path=drop_path_rate * i / len(specs)) for i, spec in enumerate(specs)])
        self._taps, self.out_channels = self._feature_taps(specs)
        self.num_classes = num_classes
        if num_classes > 0:
            self.head = ConvBN(specs[-1][1], 1280)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(1280, num_classes)

    def _block_specs(self, width: float, depth: float) -> list[tuple]:
        specs = []
        for idx, (repeats, kernel, stride, expand, cin, cout) in enumerate(_STAGES):
            fixed = idx in (0, len(_STAGES) - 1)  # Lite keeps the first and last stage depth
            n = repeats if fixed else int(math.ceil(depth * repeats))
            cin = 32 if idx == 0 else _round_channels(cin, width)
            cout = _round_channels(cout, width)
            for i in range(n):
                specs.append((cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        return specs

    def _feature_taps(self, specs: list[tuple]) -> tuple[dict, list]:
        taps, stride = {}, 2
        for i, spec in enumerate(specs):
            stride *= spec[3]
            taps[stride] = i  # the last block at each stride
        return {taps[s]: s for s in self.out_strides}, [specs[taps[s]][1] for s in self.out_strides]

    def forward(self, x) -> list:
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                feats.append(x)
        return feats

    def classify(self, x):
        """ImageNet logits ``[N, num_classes]``."""
        if self.num_classes <= 0:
            raise RuntimeError("this EfficientNetLite was built without a classifier (num_classes=0)")
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.head(x).mean(axis=[2, 3])
        return self.fc(self.dropout(x))


_RENAMES = [
    (r"^_conv_stem\.", "stem.conv."), (r"^_bn0\.", "stem.bn."), (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."), (r"^_fc\.", "fc."), (r"^_blocks\.", "blocks."),
    (r"\._expand_conv\.", ".expand.conv."), (r"\._bn0\.", ".expand.bn."),
    (r"\._depthwise_conv\.", ".dw.conv."), (r"\._bn1\.", ".dw.bn."),
    (r"\._project_conv\.", ".project.conv."), (r"\._bn2\.", ".project.bn."),
    (r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"),
]


def convert_torch_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename a lukemelas-style EfficientNet(-Lite) state dict to this module's names."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        name = key
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        out[name] = value.T.copy() if name == "fc.weight" else value  # paddle Linear is [in, out]
    return out


def EfficientNetLite0(out_strides: tuple = (8, 16, 32), drop_path_rate: float = 0.0,
                      pretrained: str | None = None) -> EfficientNetLite:
    """EfficientNet-Lite0 features at ``out_strides``; ``pretrained: efficientnet_lite0_imagenet``
    loads the ImageNet weights (inputs RGB ``(x - 127) / 128``); the classifier is not built."""
    from kits.core.pretrained import load_into

    net = EfficientNetLite("lite0", tuple(out_strides), num_classes=0, drop_path_rate=drop_path_rate)
    if pretrained:
        load_into(net, pretrained)  # the ImageNet head/fc tensors are reported as unused
    return net

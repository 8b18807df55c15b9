"""Building blocks shared by the PicoDet backbone, neck and head."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal

# Paddle's hardsigmoid slope; the exported graphs carry exactly this float32 value.
HSIGMOID_SLOPE = 0.1666667


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never dropping more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(name: str | None) -> nn.Layer:
    table = {"hardswish": nn.Hardswish, "relu": nn.ReLU, "silu": nn.Silu, None: nn.Identity}
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; choose one of {sorted(k for k in table if k)}")
    return table[name]()


class ConvNormAct(nn.Layer):
    """Conv (no bias) -> BatchNorm -> activation, 'same' padding.

    Weights exported with BN folded into the conv load as ``conv.weight = W``, ``bn.bias = b``,
    ``bn.weight = 1``, ``bn._mean = 0``, ``bn._variance = 1 - eps`` (exact in eval mode).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = "hardswish"):
        super().__init__()
        self.conv = nn.Conv2D(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups,
                              weight_attr=ParamAttr(initializer=KaimingNormal()), bias_attr=False)
        self.bn = nn.BatchNorm2D(out_ch, epsilon=1e-5)
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    """Squeeze-excitation with a ReLU bottleneck of ``channels // reduction`` and a hard sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.squeeze = nn.Conv2D(channels, channels // reduction, 1)
        self.excite = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        scale = F.relu(self.squeeze(F.adaptive_avg_pool2d(x, 1)))
        return x * F.hardsigmoid(self.excite(scale), slope=HSIGMOID_SLOPE, offset=0.5)


class DepthwiseSeparable(nn.Layer):
    """Depthwise k x k conv and pointwise 1x1 conv, each with norm and activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5, stride: int = 1, act: str = "hardswish"):
        super().__init__()
        self.dw = ConvNormAct(in_ch, in_ch, kernel, stride, groups=in_ch, act=act)
        self.pw = ConvNormAct(in_ch, out_ch, 1, act=act)

    def forward(self, x):
        return self.pw(self.dw(x))


def freeze_norm_stats(layer: nn.Layer, frozen: bool = True) -> int:
    """Make every BatchNorm in ``layer`` normalise with its running statistics, also in train mode.

    Its scale and shift stay trainable (a per-channel affine layer). Returns how many were set.
    """
    count = 0
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)):
            sub._use_global_stats = True if frozen else None
            count += 1
    return count


def flatten_hw(x: paddle.Tensor) -> paddle.Tensor:
    """[N, C, H, W] -> [N, H*W, C] (row-major over H, W)."""
    return x.flatten(2).transpose([0, 2, 1])

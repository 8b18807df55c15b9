"""ESPNetv2 (Mehta et al., CVPR 2019) for segmentation: EESP encoder + pyramid-pooling decoder.

EESP blocks reduce with a grouped 1x1 conv, run ``branches`` depthwise dilated 3x3 convs whose
outputs are summed hierarchically, and merge with a grouped 1x1 conv. Strided blocks concat an
average-pooled copy of their input and add a projection of the downsampled image. The decoder
runs an efficient pyramid pool at each scale and fuses encoder maps through sigmoid-gated
projections. Inputs: RGB, ``(x / 255 - mean) / std`` with the ImageNet mean and std.
"""

from __future__ import annotations

import math
import re

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.errors import ConfigError

from ..registry import MODELS
from .base import SegModel

# channels of level1..level5 and the classifier, per width scale ``s``
SCALES = {0.5: [16, 32, 64, 128, 256, 1024], 1.0: [32, 64, 128, 256, 512, 1024],
          1.25: [32, 80, 160, 320, 640, 1024], 1.5: [32, 96, 192, 384, 768, 1024],
          2.0: [32, 128, 256, 512, 1024, 1280]}


class BNAct(nn.Layer):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2D(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.bn(x))


class ConvBNAct(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = nn.PReLU(cout) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class EESP(nn.Layer):
    """Reduce -> depthwise dilated branches (sorted by receptive field, hierarchical sums) -> merge.

    ``r_lim`` caps the receptive field; branches above it fall back to a plain 3x3. With
    ``strided=True`` (inside a downsampler) the merged map is returned before residual/activation.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, branches: int = 4, r_lim: int = 7,
                 strided: bool = False):
        super().__init__()
        width = cout // branches
        if width * branches != cout:
            raise ValueError(f"EESP output {cout} must divide into {branches} branches")
        self.reduce = ConvBNAct(cin, width, 1, groups=branches)
        kernels = sorted(3 + 2 * i if 3 + 2 * i <= r_lim else 3 for i in range(branches))
        self.branches = nn.LayerList([
            nn.Conv2D(width, width, 3, stride, padding=(k - 1) // 2, dilation=(k - 1) // 2, groups=width,
                      bias_attr=False) for k in kernels])
        self.merge_norm = BNAct(cout)
        self.expand = ConvBNAct(cout, cout, 1, groups=branches, act=False)
        self.strided = strided
        self.residual = stride == 1 and cin == cout
        self.act = None if strided else nn.PReLU(cout)

    def forward(self, x):
        reduced = self.reduce(x)
        outs = [self.branches[0](reduced)]
        for branch in self.branches[1:]:
            outs.append(branch(reduced) + outs[-1])
        y = self.expand(self.merge_norm(paddle.concat(outs, axis=1)))
        if self.strided:
            return y
        return self.act(x + y if self.residual else y)


def _pool_image(x, times: int):
    for _ in range(times):
        x = F.avg_pool2d(x, 3, stride=2, padding=1, exclusive=False)
    return x


class EESPDown(nn.Layer):
    """Halves the resolution: [avg-pool(x), strided EESP(x)] + projection of the pooled image."""

    def __init__(self, cin: int, cout: int, r_lim: int, image_steps: int, branches: int = 4):
        super().__init__()
        self.eesp = EESP(cin, cout - cin, stride=2, branches=branches, r_lim=r_lim, strided=True)
        self.image_proj = nn.Sequential(ConvBNAct(3, 3, 3), ConvBNAct(3, cout, 1, act=False))
        self.image_steps = image_steps
        self.act = nn.PReLU(cout)

    def forward(self, x, image):
        y = paddle.concat([F.avg_pool2d(x, 3, stride=2, padding=1, exclusive=False), self.eesp(x)], axis=1)
        return self.act(y + self.image_proj(_pool_image(image, self.image_steps)))


class ESPNetv2Encoder(nn.Layer):
    """The ImageNet ESPNetv2 trunk up to level 4; returns the 1/2, 1/4, 1/8 and 1/16 maps."""

    def __init__(self, scale: float = 2.0):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"ESPNetv2 scale must be one of {sorted(SCALES)}, got {scale}")
        ch = self.channels = SCALES[scale][:4]
        self.level1 = ConvBNAct(3, ch[0], 3, 2)
        self.level2_0 = EESPDown(ch[0], ch[1], r_lim=13, image_steps=2)
        self.level3_0 = EESPDown(ch[1], ch[2], r_lim=11, image_steps=3)
        self.level3 = nn.LayerList([EESP(ch[2], ch[2], r_lim=9) for _ in range(3)])
        self.level4_0 = EESPDown(ch[2], ch[3], r_lim=9, image_steps=4)
        self.level4 = nn.LayerList([EESP(ch[3], ch[3], r_lim=7) for _ in range(7)])

    def forward(self, image):
        l1 = self.level1(image)
        l2 = self.level2_0(l1, image)
        l3 = self.level3_0(l2, image)
        for layer in self.level3:
            l3 = layer(l3)
        l4 = self.level4_0(l3, image)
        for layer in self.level4:
            l4 = layer(l4)
        return l1, l2, l3, l4


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class PyramidPool(nn.Layer):
    """Efficient pyramid pooling: one depthwise 3x3 per scale on a resized copy, then merged."""

    def __init__(self, cin: int, proj: int, cout: int, scales=(2.0, 1.5, 1.0, 0.5, 0.1), out_norm: bool = True):
        super().__init__()
        self.scales = sorted(scales, reverse=True)
        self.proj = ConvBNAct(cin, proj, 1)
        self.stages = nn.LayerList([
            nn.Conv2D(proj, proj, 3, padding=1, groups=proj, bias_attr=False) for _ in self.scales])
        self.merge_norm = BNAct(proj * len(self.scales))
        self.merge_conv = ConvBNAct(proj * len(self.scales), proj, 3, groups=proj)
        self.out_conv = nn.Conv2D(proj, cout, 1, bias_attr=False if out_norm else None)
        self.out_norm = BNAct(cout) if out_norm else None

    def forward(self, x):
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        outs = []
        for scale, stage in zip(self.scales, self.stages):
            size = [max(int(math.ceil(height * scale)), 5), max(int(math.ceil(width * scale)), 5)]
            if scale < 1.0:
                outs.append(_resize(stage(F.adaptive_avg_pool2d(x, size)), [height, width]))
            elif scale > 1.0:
                outs.append(F.adaptive_avg_pool2d(stage(_resize(x, size)), [height, width]))
            else:
                outs.append(stage(x))
        y = F.channel_shuffle(self.merge_norm(paddle.concat(outs, axis=1)), len(self.scales))
        y = self.out_conv(self.merge_conv(y))
        return self.out_norm(y) if self.out_norm is not None else y


class GatedProjection(nn.Layer):
    """Grouped 3x3 projection of an encoder map, scaled by a global sigmoid gate per channel."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.gate = nn.Conv2D(cin, cout, 1, bias_attr=False)
        self.expand = ConvBNAct(cin, cout, 3, groups=math.gcd(cin, cout))

    def forward(self, x):
        return self.expand(x) * F.sigmoid(self.gate(F.adaptive_avg_pool2d(x, 1)))


@MODELS.register
class ESPNetv2(SegModel):
    """ESPNetv2 segmentation network; logits at input resolution. ``loss`` is a LOSSES config;
    ``void_output`` adds a last void channel (the bundled Cityscapes weights have one)."""

    def __init__(self, num_classes: int = 20, scale: float = 2.0, dec_width: int = 16, void_output: bool = False,
                 loss: dict | None = None, test_config: dict | None = None):
        super().__init__(num_classes, void_output=void_output, loss=loss, test_config=test_config)
        outputs = self.out_channels
        self.encoder = ESPNetv2Encoder(scale)
        ch = self.encoder.channels
        planes = [4 * dec_width, 3 * dec_width, 2 * dec_width]
        proj = max(min(outputs // 2, dec_width), 1)
        self.dec1 = PyramidPool(ch[3], proj, planes[0])
        self.dec2 = PyramidPool(planes[0], proj, planes[1])
        self.dec3 = PyramidPool(planes[1], proj, planes[2])
        self.dec4 = PyramidPool(planes[2], proj, outputs, out_norm=False)
        self.skip2, self.norm2 = GatedProjection(ch[2], planes[0]), BNAct(planes[0])
        self.skip3, self.norm3 = GatedProjection(ch[1], planes[1]), BNAct(planes[1])
        self.skip4, self.norm4 = GatedProjection(ch[0], planes[2]), BNAct(planes[2])

    def export_forward(self, image):
        """``image [N,3,H,W]`` normalised -> logits ``[N,C,H,W]``."""
        l1, l2, l3, l4 = self.encoder(image)
        x = self.dec1(l4)
        for skip, norm, dec, feat in ((self.skip2, self.norm2, self.dec2, l3),
                                      (self.skip3, self.norm3, self.dec3, l2),
                                      (self.skip4, self.norm4, self.dec4, l1)):
            x = dec(norm(_resize(x, feat.shape[2:]) + skip(feat)))
        return _resize(x, image.shape[2:])

    def input_spec(self, height: int | None = None, width: int | None = None) -> list:
        """The pyramid pools resize by factors of the feature size, so export needs a fixed size."""
        if not height or not width:
            raise ConfigError("ESPNetv2 exports at a fixed input size: pass height and width")
        return [paddle.static.InputSpec([None, 3, height, width], "float32", "image")]


# Upstream (sacmehta/EdgeNets) module names -> ours, applied in order.
_RENAMES = [
    (r"^base_net\.", "encoder."), (r"\.proj_1x1\.", ".reduce."), (r"\.spp_dw\.(\d+)\.conv\.", r".branches.\1."),
    (r"\.conv_1x1_exp\.", ".expand."), (r"\.br_after_cat\.", ".merge_norm."), (r"\.module_act\.", ".act."),
    (r"\.inp_reinf\.", ".image_proj."),
    (r"^bu_dec_l(\d)\.", r"dec\1."), (r"^merge_enc_dec_l(\d)\.", r"skip\1."),
    (r"^bu_br_l(\d)\.0\.", r"norm\1.bn."), (r"^bu_br_l(\d)\.1\.", r"norm\1.act."),
    (r"\.projection_layer\.", ".proj."), (r"\.merge_layer\.0\.", ".merge_norm."),
    (r"\.merge_layer\.2\.", ".merge_conv."), (r"\.merge_layer\.3\.", ".out_conv."), (r"^(dec\d)\.br\.", r"\1.out_norm."),
    (r"\.wt_layer\.1\.", ".gate."), (r"\.expansion_layer\.", ".expand."),
    # Sequential-indexed conv/BN/PReLU triples of the decoder
    (r"\.cbr\.0\.", ".conv."), (r"\.cbr\.1\.", ".bn."), (r"\.cbr\.2\.", ".act."),
    (r"\.br\.0\.", ".bn."), (r"\.br\.1\.", ".act."),
    (r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"), (r"\.act\.weight$", ".act._weight"),
]


def convert_torch_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename an upstream ESPNetv2 segmentation state dict to this model's names.

    The strided EESP blocks upstream own an activation they never apply: it is dropped here.
    """
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked") or re.search(r"_0\.eesp\.module_act\.", key):
            continue
        name = key[len("module."):] if key.startswith("module.") else key
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        out[name] = value
    return out

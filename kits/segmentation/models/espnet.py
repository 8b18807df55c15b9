"""ESPNet (Mehta et al., ECCV 2018): efficient spatial pyramids of dilated convolutions.

The encoder (ESPNet-C) reduces the image 8x with ESP modules (reduce with a 1x1 or strided 3x3
conv, split into five dilated 3x3 branches, sum them hierarchically to avoid gridding, concat).
The light decoder projects the 1/4 and 1/8 features to ``num_classes`` channels and upsamples
with 2x transposed convolutions. ``skip_image=True`` concatenates the 1/2 features *with* the
downsampled image (19 channels) before the last conv, as the CamVid weights expect; the
Cityscapes weights use the 16 conv channels only.

Inputs follow the original recipe: BGR, ``((x - mean) / std) / 255``.
"""

from __future__ import annotations

import re

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.errors import ConfigError

from ..registry import MODELS
from .base import SegModel

_EPS = 1e-3


class BNPReLU(nn.Layer):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2D(channels, epsilon=_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.bn(x))


class ConvBNPReLU(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel, stride, padding=kernel // 2, bias_attr=False)
        self.norm = BNPReLU(cout)

    def forward(self, x):
        return self.norm(self.conv(x))


class ESPModule(nn.Layer):
    """Reduce -> five dilated branches (rates 1..16) -> hierarchical sums -> concat -> BN+PReLU.

    ``stride=2`` reduces with a strided 3x3 conv (the downsampling variant); ``residual`` adds the
    input before the normalisation when shapes allow.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, residual: bool = True):
        super().__init__()
        if cout < 5:
            raise ValueError(f"an ESP module needs at least 5 output channels, got {cout}")
        width = cout // 5
        first = cout - 4 * width  # the rate-1 branch takes the remainder
        kernel = 3 if stride == 2 else 1
        self.reduce = nn.Conv2D(cin, width, kernel, stride, padding=kernel // 2, bias_attr=False)
        self.branches = nn.LayerList([
            nn.Conv2D(width, first if i == 0 else width, 3, padding=2 ** i, dilation=2 ** i, bias_attr=False)
            for i in range(5)])
        self.residual = residual and stride == 1 and cin == cout
        self.norm = BNPReLU(cout)

    def forward(self, x):
        reduced = self.reduce(x)
        outs = [branch(reduced) for branch in self.branches]
        merged = [outs[0], outs[1]]
        for out in outs[2:]:
            merged.append(merged[-1] + out)
        y = paddle.concat(merged, axis=1)
        return self.norm(x + y if self.residual else y)


class ImagePyramid(nn.Layer):
    """The image average-pooled ``times`` times by 2 (padding counted, as in the original)."""

    def __init__(self, times: int):
        super().__init__()
        self.times = times

    def forward(self, x):
        for _ in range(self.times):
            x = F.avg_pool2d(x, 3, stride=2, padding=1, exclusive=False)
        return x


class ESPNetEncoder(nn.Layer):
    """ESPNet-C: returns the 1/2, 1/4 and 1/8 features and the 1/8 class map."""

    def __init__(self, num_classes: int, p: int = 2, q: int = 8):
        super().__init__()
        self.level1 = ConvBNPReLU(3, 16, 3, 2)
        self.image2, self.image4 = ImagePyramid(1), ImagePyramid(2)
        self.b1 = BNPReLU(16 + 3)
        self.level2_0 = ESPModule(16 + 3, 64, stride=2)
        self.level2 = nn.LayerList([ESPModule(64, 64) for _ in range(p)])
        self.b2 = BNPReLU(128 + 3)
        self.level3_0 = ESPModule(128 + 3, 128, stride=2)
        self.level3 = nn.LayerList([ESPModule(128, 128) for _ in range(q)])
        self.b3 = BNPReLU(256)
        self.classifier = nn.Conv2D(256, num_classes, 1, bias_attr=False)

    def forward(self, x):
        out1 = self.level1(x)
        cat1 = self.b1(paddle.concat([out1, self.image2(x)], axis=1))
        down2 = self.level2_0(cat1)
        out2 = down2
        for layer in self.level2:
            out2 = layer(out2)
        cat2 = self.b2(paddle.concat([out2, down2, self.image4(x)], axis=1))
        down3 = self.level3_0(cat2)
        out3 = down3
        for layer in self.level3:
            out3 = layer(out3)
        cat3 = self.b3(paddle.concat([down3, out3], axis=1))
        return out1, cat1, cat2, self.classifier(cat3)


def _up2(cin: int, cout: int | None = None) -> nn.Conv2DTranspose:
    return nn.Conv2DTranspose(cin, cout or cin, 2, stride=2, bias_attr=False)


@MODELS.register
class ESPNet(SegModel):
    """ESPNet with its light decoder; logits come back at input resolution.

    ``loss`` is a LOSSES config (default cross-entropy ignoring 255). With fewer than 5 outputs
    the decoder runs 5 channels wide and only its last layer narrows. ``void_output``: the last
    of ``num_classes + 1`` outputs is a void class (as in the bundled CamVid and Cityscapes weights).
    ``decoder_width`` (default: the output count, at least 5) sets the decoder's channels apart
    from the output count: fine-tuning the 20-wide Cityscapes weights with ``decoder_width: 20``
    keeps the whole pretrained decoder and starts only the last layer fresh.
    """

    def __init__(self, num_classes: int = 19, p: int = 2, q: int = 8, skip_image: bool = True,
                 void_output: bool = False, decoder_width: int | None = None, loss: dict | None = None,
                 test_config: dict | None = None):
        super().__init__(num_classes, void_output=void_output, loss=loss, test_config=test_config)
        if decoder_width is not None and decoder_width < 1:
            raise ConfigError(f"decoder_width must be >= 1, got {decoder_width}")
        c = decoder_width or max(self.out_channels, 5)
        self.skip_image = skip_image
        self.encoder = ESPNetEncoder(c, p, q)
        self.proj2 = nn.Conv2D(128 + 3, c, 1, bias_attr=False)
        self.norm3 = nn.BatchNorm2D(c, epsilon=_EPS)
        self.up3 = _up2(c)
        self.fuse23_norm = BNPReLU(2 * c)
        self.fuse23 = ESPModule(2 * c, c, residual=False)
        self.up2 = _up2(c)
        self.up2_norm = BNPReLU(c)
        self.fuse1 = ConvBNPReLU((19 if skip_image else 16) + c, c, 3)
        self.up1 = _up2(c, self.out_channels)

    def export_forward(self, image):
        """``image [N,3,H,W]`` normalised -> logits ``[N,C,H,W]``."""
        height, width = image.shape[2], image.shape[3]
        padded = _pad_to_multiple(image, 8)
        out1, cat1, cat2, coarse = self.encoder(padded)
        up3 = self.up3(self.norm3(coarse))
        fused = self.fuse23(self.fuse23_norm(paddle.concat([self.proj2(cat2), up3], axis=1)))
        up2 = self.up2_norm(self.up2(fused))
        skip = cat1 if self.skip_image else out1
        logits = self.up1(self.fuse1(paddle.concat([up2, skip], axis=1)))
        return logits[:, :, :height, :width]

    def input_spec(self, height: int | None = None, width: int | None = None) -> list:
        """A free size exports too, but then height and width must be multiples of 8."""
        return [paddle.static.InputSpec([None, 3, height, width], "float32", "image")]


def _pad_to_multiple(x, multiple: int):
    # the decoder concatenates 2x-upsampled maps with encoder maps: sizes must divide by 8
    height, width = x.shape[2], x.shape[3]
    if not isinstance(height, int) or height < 0 or width < 0:
        return x
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, [0, pad_w, 0, pad_h], mode="constant", value=0.0)


# Upstream (sacmehta/ESPNet) module names -> ours, applied in order.
_RENAMES = [
    (r"^level3_C\.conv\.", "proj2."), (r"^br\.", "norm3."), (r"^up_l3\.0\.", "up3."),
    (r"^combine_l2_l3\.0\.", "fuse23_norm."), (r"^combine_l2_l3\.1\.", "fuse23."),
    (r"^up_l2\.0\.", "up2."), (r"^up_l2\.1\.", "up2_norm."), (r"^conv\.(bn|act)\.", r"fuse1.norm.\1."),
    (r"^conv\.conv\.", "fuse1.conv."), (r"^classifier\.", "up1."),
    (r"^encoder\.classifier\.conv\.", "encoder.classifier."),
    (r"^encoder\.level1\.(bn|act)\.", r"encoder.level1.norm.\1."),
    (r"\.c1\.conv\.", ".reduce."), (r"\.d1\.conv\.", ".branches.0."), (r"\.d2\.conv\.", ".branches.1."),
    (r"\.d4\.conv\.", ".branches.2."), (r"\.d8\.conv\.", ".branches.3."), (r"\.d16\.conv\.", ".branches.4."),
    (r"^(encoder\.level[23]_0)\.(bn|act)\.", r"\1.norm.\2."),  # the downsampling ESP has a bare BN/PReLU
    (r"\.bn\.(bn|act)\.", r".norm.\1."),
    (r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"), (r"\.act\.weight$", ".act._weight"),
]


def convert_torch_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename an upstream ESPNet state dict to this model's names (shapes are unchanged)."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        name = key[len("module."):] if key.startswith("module.") else key
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        out[name] = value
    return out

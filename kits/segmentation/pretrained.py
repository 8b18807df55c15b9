"""Bundled pretrained segmentation weights: ESPNet (p=2, q=8) and ESPNetv2 (s=2.0).

Converted from the original PyTorch releases (sacmehta/ESPNet and sacmehta/EdgeNets, both MIT;
the notices are kept in ``pretrained/LICENSE.*-MIT``) by ``tools/convert_torch_weights.py``.
Each entry records the model config that fits the weights, the preprocessing they were trained
with (``(x - mean) / std * scale_after`` on 0-255 pixels; ``size`` is width x height) and the
names of the output channels. The CamVid and Cityscapes weights were trained with void as an
extra last class: ``void_output`` keeps that channel without counting it as a class of the data.
"""

from __future__ import annotations

import numpy as np

import kits.core.backbones  # noqa: F401  (registers efficientnet_lite0_imagenet)
from kits.core.pretrained import WeightSpec, load_into, register_weights

_MIT_ESPNET = "MIT (Copyright (c) 2018 Sachin Mehta; see kits/segmentation/pretrained/LICENSE.ESPNet-MIT)"
_MIT_EDGENETS = "MIT (Copyright (c) 2021 Sachin Mehta; see kits/segmentation/pretrained/LICENSE.EdgeNets-MIT)"
_EDGENETS = "GitHub sacmehta/EdgeNets @ 2b232d3f, model/segmentation/model_zoo/espnetv2/espnetv2_s_2.0_{}.pth"
_IMAGENET_RGB = {"channel_order": "RGB", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
                 "scale_after": 1.0}

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist", "Void"]
CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                      "bus", "train", "motorcycle", "bicycle", "background"]
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]

# name -> model config, preprocessing and class names; the safetensors file is named after the key
PRETRAINED = {
    "espnet_camvid": {
        "model": {"type": "ESPNet", "num_classes": 11, "void_output": True, "p": 2, "q": 8, "skip_image": True},
        "preprocess": {"channel_order": "BGR", "mean": [110.331, 108.409, 105.034],
                       "std": [72.125, 72.689, 69.903], "scale_after": 1 / 255, "size": [480, 360]},
        "classes": CAMVID_CLASSES,
        "sha256": "9ccb4a0795db5cca0e36f723a6d2c58e81aba1fbe1e6d44e650f200e011f8a94",
        "source": "GitHub sacmehta/ESPNet @ afe71c38, pretrained/decoder/espnet_p_2_q_8_camvid.pth",
        "license": _MIT_ESPNET,
    },
    "espnet_cityscapes": {
        "model": {"type": "ESPNet", "num_classes": 19, "void_output": True, "p": 2, "q": 8, "skip_image": False},
        "preprocess": {"channel_order": "BGR", "mean": [72.3923111, 82.90893555, 73.15840149],
                       "std": [45.3192215, 46.15289307, 44.91483307], "scale_after": 1 / 255,
                       "size": [1024, 512]},
        "classes": CITYSCAPES_CLASSES,
        "sha256": "8d9e323145b6babf8bced5fb6637c5637180c16a66d17dee28791452f89e00b5",
        "source": "GitHub sacmehta/ESPNet @ afe71c38, pretrained/decoder/espnet_p_2_q_8.pth (Cityscapes)",
        "license": _MIT_ESPNET,
    },
    "espnetv2_cityscapes_512x256": {
        "model": {"type": "ESPNetv2", "num_classes": 19, "void_output": True, "scale": 2.0},
        "preprocess": {**_IMAGENET_RGB, "size": [512, 256]},
        "classes": CITYSCAPES_CLASSES,
        "sha256": "537cbf9ff0bb8a32bc4afe9bb5815a62f425d38be7122aa8ec2cd36c48590ced",
        "source": _EDGENETS.format("city_512x256"),
        "license": _MIT_EDGENETS,
    },
    "espnetv2_cityscapes_1024x512": {
        "model": {"type": "ESPNetv2", "num_classes": 19, "void_output": True, "scale": 2.0},
        "preprocess": {**_IMAGENET_RGB, "size": [1024, 512]},
        "classes": CITYSCAPES_CLASSES,
        "sha256": "17b802e28a98ca3e95a1d6768d37cb25c7231b94973ad972063352740bf5ca53",
        "source": _EDGENETS.format("city_1024x512"),
        "license": _MIT_EDGENETS,
    },
    "espnetv2_pascal_384x384": {
        "model": {"type": "ESPNetv2", "num_classes": 21, "scale": 2.0},
        "preprocess": {**_IMAGENET_RGB, "size": [384, 384]},
        "classes": VOC_CLASSES,
        "sha256": "c8a41e4ad56f3b167e277f763a4f24b9665e0b76b1b63a586d5cc04a7c7d06bc",
        "source": _EDGENETS.format("pascal_384x384"),
        "license": _MIT_EDGENETS,
    },
}

for _name, _entry in PRETRAINED.items():
    register_weights(WeightSpec(
        name=_name, file=f"segmentation/pretrained/{_name}.safetensors", sha256=_entry["sha256"],
        source=_entry["source"], license=_entry["license"], model=_entry["model"]["type"],
        description=f"{_entry['model']}, classes {_entry['classes']}; input {_entry['preprocess']}"))


def normalize(image_bgr: np.ndarray, name: str) -> np.ndarray:
    """An HWC uint8 BGR image -> the CHW float32 input the named weights expect."""
    prep = PRETRAINED[name]["preprocess"]
    img = image_bgr.astype(np.float32)
    if prep["channel_order"] == "RGB":
        img = img[:, :, ::-1]
    img = (img - np.asarray(prep["mean"], np.float32)) / np.asarray(prep["std"], np.float32)
    return np.ascontiguousarray((img * np.float32(prep["scale_after"])).transpose(2, 0, 1))


def build_pretrained(name: str, **overrides):
    """The model for ``name`` with its weights loaded, in eval mode."""
    from .models import MODELS

    if name not in PRETRAINED:
        raise KeyError(f"no pretrained segmentation model '{name}'; known: {sorted(PRETRAINED)}")
    model = MODELS.build({**PRETRAINED[name]["model"], **overrides})
    load_into(model, name, strict=not overrides)
    model.eval()
    return model


__all__ = ["PRETRAINED", "CAMVID_CLASSES", "CITYSCAPES_CLASSES", "VOC_CLASSES", "normalize", "build_pretrained"]

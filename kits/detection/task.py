"""The detection kit's adapter to the shared Trainer, and its deploy spec."""

from __future__ import annotations

import numpy as np

from kits.core.task import Task

from . import data, models  # noqa: F401  (fill the registries)
from . import pretrained as _pretrained  # noqa: F401  (register bundled weights)
from .metrics import DetectionMetric
from .registry import ASSIGNERS, BACKBONES, DATASETS, HEADS, LOSSES, MODELS, NECKS, TRANSFORMS

POSTPROCESS_KEYS = ("score_threshold", "iou_threshold", "nms_top_k", "keep_top_k")


class DetectionTask(Task):
    name = "detection"
    models = MODELS
    datasets = DATASETS
    components = (BACKBONES, NECKS, HEADS, LOSSES, ASSIGNERS, TRANSFORMS)

    def build_model(self, cfg):
        """The model, with ``init_classes`` names (``{stop: stop sign}``) turned into indices of the
        dataset's label list and of the COCO classes of the bundled weights."""
        section = dict(cfg["model"])
        if section.get("init_classes"):
            section["init_classes"] = resolve_init_classes(cfg, section["init_classes"])
        return self.models.build(section)

    def build_metric(self, cfg, dataset):
        post = (cfg.get("export") or {}).get("postprocess", {})
        return DetectionMetric(dataset, {k: v for k, v in post.items() if k in POSTPROCESS_KEYS})

    def deploy_spec(self, cfg, model) -> dict:
        """Fixed-size resize + normalisation in, GFL decoding + multi-class NMS out."""
        post = {"type": "PicoDetPostprocess", "strides": list(model.head.strides), "reg_max": model.head.reg_max,
                **{k: v for k, v in (cfg.get("export") or {}).get("postprocess", {}).items() if k in POSTPROCESS_KEYS}}
        levels = len(model.head.strides)
        return {"task": "detection", "config_hash": cfg.sha256(), "labels": class_names(cfg, model),
                "outputs": [f"scores_{i}" for i in range(levels)] + [f"dists_{i}" for i in range(levels)],
                "preprocess": preprocess_ops(cfg, model), "postprocess": [post]}


def resolve_init_classes(cfg, mapping: dict) -> dict[int, int]:
    from kits.core.errors import ConfigError, did_you_mean

    from .pretrained import coco_names

    section = cfg.get("train_dataset") or cfg.get("val_dataset") or {}
    ours = _label_names(section)
    theirs = coco_names()
    resolved = {}
    for key, value in mapping.items():
        pairs = []
        for name, names, side in ((key, ours, "the dataset's classes"), (value, theirs, "the COCO classes")):
            if isinstance(name, int):
                pairs.append(name)
            elif names and name in names:
                pairs.append(names.index(name))
            else:
                raise ConfigError(f"{cfg.origin('model.init_classes')}: '{name}' is not one of {side}."
                                  f"{did_you_mean(str(name), names or [])}")
        resolved[pairs[0]] = pairs[1]
    return resolved


def _label_names(section: dict) -> list[str]:
    from pathlib import Path

    from .data.records import read_label_list

    if section.get("type") == "VOCDetection" or "label_list" in section:
        return read_label_list(Path(section["root"]) / section.get("label_list", "label_list.txt"))
    if section.get("type") == "COCODetection":
        return DATASETS.build(section).class_names
    return []


def preprocess_ops(cfg, model) -> list[dict]:
    """The deploy ops equal to the config's validation transforms: decode, resize to the model's
    input size (stretched, or fitted with ``keep_ratio`` and padded as the config pads), normalise.
    Options the config leaves out take the transforms' own defaults."""
    from kits.deploy.ops import INTERPOLATIONS, float32_decimals

    from .data.transforms import Normalize, Pad, Resize

    h, w = model.input_size
    val = [TRANSFORMS.build(t) for t in cfg.get_path("val_dataset.transforms", []) or []]

    def configured(kind, default):
        return next((t for t in val if isinstance(t, kind)), None) or default()

    norm, resize = configured(Normalize, Normalize), configured(Resize, lambda: Resize([h, w]))
    interp = next((k for k, v in INTERPOLATIONS.items() if v == resize.interp), "linear")
    ops = [{"type": "DecodeImage", "to_rgb": norm.to_rgb},
           {"type": "Resize", "size": [h, w], "keep_ratio": bool(resize.keep_ratio), "interp": interp}]
    if resize.keep_ratio:  # the exported model takes one fixed size: pad the fitted image up to it
        fill = configured(Pad, lambda: Pad([h, w])).fill
        ops.append({"type": "Pad", "size": [h, w], "value": [float(v) for v in np.broadcast_to(fill, 3)]})
    return ops + [{"type": "Normalize", "mean": float32_decimals(norm.mean), "std": float32_decimals(norm.std),
                   "scale": 1.0},
                  {"type": "HWC2CHW"}]


def class_names(cfg, model) -> list[str]:
    """The label list of the config's dataset; COCO names for an 80-class model without one."""
    from pathlib import Path

    from .data.records import read_label_list
    from .pretrained import coco_names

    section = cfg.get("val_dataset") or cfg.get("train_dataset") or {}
    if "label_list" in section or section.get("type") == "VOCDetection":
        return read_label_list(Path(section["root"]) / section.get("label_list", "label_list.txt"))
    if model.num_classes == 80:
        return coco_names()
    return [str(i) for i in range(model.num_classes)]

"""The detection kit's adapter to the shared Trainer, and its deploy spec."""

from __future__ import annotations

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

    def __init__(self):
        self.metric: DetectionMetric | None = None  # the last one built, for evaluation reports

    def build_metric(self, cfg, dataset):
        post = (cfg.get("export") or {}).get("postprocess", {})
        self.metric = DetectionMetric(dataset, {k: v for k, v in post.items() if k in POSTPROCESS_KEYS})
        return self.metric

    def deploy_spec(self, cfg, model) -> dict:
        """Fixed-size resize + normalisation in, GFL decoding + multi-class NMS out."""
        post = {"type": "PicoDetPostprocess", "strides": list(model.head.strides), "reg_max": model.head.reg_max,
                **{k: v for k, v in (cfg.get("export") or {}).get("postprocess", {}).items() if k in POSTPROCESS_KEYS}}
        levels = len(model.head.strides)
        return {"task": "detection", "config_hash": cfg.sha256(), "labels": class_names(cfg, model),
                "outputs": [f"scores_{i}" for i in range(levels)] + [f"dists_{i}" for i in range(levels)],
                "preprocess": preprocess_ops(cfg, model), "postprocess": [post]}


def preprocess_ops(cfg, model) -> list[dict]:
    """The deploy ops equal to the config's validation transforms (decode, resize, normalise)."""
    h, w = model.input_size
    norm = next((t for t in cfg.get_path("val_dataset.transforms", []) if t.get("type") == "Normalize"), {})
    return [{"type": "DecodeImage", "to_rgb": bool(norm.get("to_rgb", False))},
            {"type": "Resize", "size": [h, w], "keep_ratio": False},
            {"type": "Normalize", "mean": list(norm.get("mean", [103.53, 116.28, 123.675])),
             "std": list(norm.get("std", [57.375, 57.12, 58.395])), "scale": 1.0},
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

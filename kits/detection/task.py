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

    def build_metric(self, cfg, dataset):
        post = (cfg.get("export") or {}).get("postprocess", {})
        return DetectionMetric(dataset, {k: v for k, v in post.items() if k in POSTPROCESS_KEYS})

    def deploy_spec(self, cfg, model) -> dict:
        """Fixed-size resize + BGR normalisation in, GFL decoding + multi-class NMS out."""
        h, w = model.input_size
        norm = next((t for t in cfg.get_path("val_dataset.transforms", []) if t.get("type") == "Normalize"), {})
        post = {"type": "PicoDetPostprocess", "strides": list(model.head.strides), "reg_max": model.head.reg_max,
                **{k: v for k, v in (cfg.get("export") or {}).get("postprocess", {}).items() if k in POSTPROCESS_KEYS}}
        names = _class_names(cfg, model)
        return {"task": "detection", "input_size": [h, w],
                "preprocess": [{"type": "Resize", "size": [h, w], "keep_ratio": False},
                               {"type": "Normalize", "mean": norm.get("mean", [103.53, 116.28, 123.675]),
                                "std": norm.get("std", [57.375, 57.12, 58.395]), "to_rgb": False},
                               {"type": "ToCHW"}],
                "postprocess": [post], "labels": names}


def _class_names(cfg, model) -> list[str]:
    section = cfg.get("val_dataset") or cfg.get("train_dataset") or {}
    try:
        return DATASETS.build({**section, "transforms": [], "batch_transforms": []}).class_names
    except Exception:  # the data may not be on the exporting machine: fall back to numbers
        return [str(i) for i in range(model.num_classes)]

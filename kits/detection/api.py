"""The detection kit's public API.

    from kits import detection as det
    det.train("configs/detection/picodet_s_416_roadsign.yml")
    model = det.load_model("configs/detection/picodet_s_416_roadsign.yml", "output/picodet_roadsign/best_model.safetensors")
    results = det.predict(model, ["road0.jpg"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from kits.core import runner
from kits.core.config import Config
from kits.core.pretrained import list_weights

from .data import COCODetection, VOCDetection, read_image
from .models import PicoDet
from kits.deploy.detection_ops import postprocess
from .pretrained import coco_names
from .registry import MODELS, TRANSFORMS
from .task import DetectionTask, preprocess_ops

__all__ = [
    "train", "evaluate", "compress", "task_for", "export", "predict", "load_model", "list_models", "list_pretrained", "visualize",
    "DetectionTask", "PicoDet", "VOCDetection", "COCODetection", "postprocess", "coco_names",
    "MODELS", "TRANSFORMS",
]


def task_for(cfg=None) -> DetectionTask:
    """The trainer adapter of this kit (one task type here; the NLP kit picks one per config)."""
    return DetectionTask()


def _cfg(config, overrides: Iterable[str] = ()) -> Config:
    return runner.as_config(config, overrides)


def train(config: str | os.PathLike | Config | dict, overrides: Iterable[str] = (), resume=None,
          dry_run: bool = False) -> dict:
    """Train (or with ``dry_run`` only validate and build) from a config; returns a summary dict."""
    return runner.run_train(config, task_for, overrides, resume, dry_run)


def evaluate(config, weights: str | os.PathLike | None = None, overrides: Iterable[str] = (),
             report_dir: str | os.PathLike | None = None) -> dict:
    """COCO mAP / AP50 / AP75 / per-class AP and VOC mAP on the config's ``val_dataset``.

    Writes ``pr_curve.png`` and a few ``overlay_*.jpg`` (ground truth green, predictions orange)
    into ``report_dir`` (default: ``<trainer.output_dir>/eval``).
    """
    return runner.evaluate(_cfg(config, overrides), task_for(), weights=weights, report_dir=report_dir)


def compress(config, recipe, weights: str | os.PathLike | None = None, overrides: Iterable[str] = (),
             recipe_overrides: Iterable[str] = (), output: str | os.PathLike | None = None) -> dict:
    """Compress the model with a recipe from ``configs/slim/`` (see kits.slim); returns the report
    of baseline vs compressed, both measured as exported files in the target engines."""
    from kits.slim import compress as run_compress

    return run_compress(config, recipe, task_for, weights=weights, overrides=overrides,
                        recipe_overrides=recipe_overrides, output=output)


def load_model(config, weights: str | os.PathLike | None = None, overrides: Iterable[str] = ()):
    """Build the config's model in eval mode with ``weights`` (default: the config's ``pretrained``)."""
    cfg = _cfg(config, overrides)
    model = runner.load_model(cfg, DetectionTask(), weights)
    model.preprocess = preprocess_ops(cfg, model)  # what predict() runs, as the exported model does
    return model


def export(config, weights: str | os.PathLike | None = None, formats: Sequence[str] = ("onnx",),
           output: str | os.PathLike | None = None, options: dict | None = None, overrides: Iterable[str] = ()):
    """Export the model with ``weights`` to inference formats plus ``deploy.yml`` (see kits.export)."""
    from kits.export import export as run_export

    cfg = _cfg(config, overrides)
    model = load_model(cfg, weights)
    out = Path(output) if output else Path(cfg["trainer"]["output_dir"]) / "export"
    return run_export(model, DetectionTask().deploy_spec(cfg, model), out, formats, options)


def list_models() -> list[str]:
    return MODELS.names()


def list_pretrained() -> list[str]:
    return [n for n in list_weights() if n.startswith("picodet")]


def predict(model, images: Sequence[str | os.PathLike | np.ndarray], score_threshold: float = 0.3,
            preprocess: list[dict] | None = None) -> list[np.ndarray]:
    """Detections per image as [K, 6] arrays (class, score, x1, y1, x2, y2) in original pixels.

    ``preprocess`` is a deploy-style op list; by default the one ``load_model`` took from the
    config (so prediction matches the exported model), else PicoDet's COCO defaults (BGR resize +
    normalise).
    """
    import paddle

    from kits.deploy.ops import PREPROCESS, build_pipeline

    ops = build_pipeline(preprocess or getattr(model, "preprocess", None) or preprocess_ops(Config({}), model),
                         PREPROCESS)
    results = []
    for image in images:
        sample = {"image": image} if isinstance(image, np.ndarray) else {"image": read_image(Path(image))}
        for op in ops:
            sample = op(sample)
        with paddle.no_grad():
            out = model({"image": paddle.to_tensor(np.asarray(sample["image"])[None])})
        dets = postprocess(out["cls_scores"], out["reg_dists"], tuple(sample["input_shape"]),
                           [tuple(sample["orig_shape"])], scale_factors=[sample["scale_factor"]])[0]
        results.append(dets[dets[:, 1] >= score_threshold])
    return results


def visualize(image: np.ndarray, detections: np.ndarray, class_names: Sequence[str] = ()) -> np.ndarray:
    """Draw [K, 6] detections on a copy of a BGR image."""
    canvas = image.copy()
    for cls, score, x1, y1, x2, y2 in detections:
        color = tuple(int(c) for c in np.random.default_rng(int(cls)).integers(64, 256, 3))
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(canvas, p1, p2, color, 2)
        name = class_names[int(cls)] if int(cls) < len(class_names) else str(int(cls))
        cv2.putText(canvas, f"{name} {score:.2f}", (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, color, 1, cv2.LINE_AA)
    return canvas

"""The segmentation kit's public API.

    from kits import segmentation as seg
    seg.evaluate("configs/segmentation/espnet_camvid.yml")
    seg.train("configs/segmentation/litesegefflite0_camvid.yml")
    model = seg.load_model("configs/segmentation/espnet_camvid.yml")
    masks = seg.predict(model, ["street.jpg"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from kits.core import runner
from kits.core.config import Config
from kits.core.errors import ConfigError
from kits.core.pretrained import list_weights
from kits.core.schema import validate_trainer

from .data import FileListSegmentation, FolderSegmentation, labelme_to_masks, read_image
from .metrics import SegMetric
from .models import ESPNet, ESPNetv2, PPLiteSeg
from .pretrained import PRETRAINED, build_pretrained
from .registry import BACKBONES, DATASETS, LOSSES, MODELS, TRANSFORMS
from .task import SegmentationTask
from .visualize import colorize, overlay

__all__ = [
    "train", "evaluate", "compress", "task_for", "export", "predict", "load_model", "list_models", "list_pretrained",
    "visualize", "colorize",
    "SegmentationTask", "FileListSegmentation", "FolderSegmentation", "SegMetric", "labelme_to_masks",
    "ESPNet", "ESPNetv2", "PPLiteSeg", "build_pretrained", "MODELS", "BACKBONES", "LOSSES", "DATASETS",
    "TRANSFORMS",
]


def task_for(cfg=None) -> SegmentationTask:
    """The trainer adapter of this kit (one task type here; the NLP kit picks one per config)."""
    return SegmentationTask()


def _cfg(config, overrides: Iterable[str] = ()) -> Config:
    return runner.as_config(config, overrides)


def train(config: str | os.PathLike | Config | dict, overrides: Iterable[str] = (), resume=None,
          dry_run: bool = False) -> dict:
    """Train (or with ``dry_run`` only validate and build) from a config; returns a summary dict."""
    return runner.run_train(config, task_for, overrides, resume, dry_run)


def evaluate(config, weights: str | os.PathLike | None = None, overrides: Iterable[str] = (),
             report_dir: str | os.PathLike | None = None) -> dict:
    """mIoU, per-class IoU, Acc, mAcc, Kappa and mDice on the config's ``val_dataset``.

    Writes ``confusion_matrix.png``/``.csv`` and a few prediction overlays into ``report_dir``
    (default ``<trainer.output_dir>/eval``).
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
    """The config's model in eval mode with ``weights`` (default: the config's ``pretrained``).

    The val transforms ride along as ``model.eval_transforms`` for ``predict``.
    """
    cfg = _cfg(config, overrides)
    model = runner.load_model(cfg, SegmentationTask(), weights)
    model.eval_transforms = list((cfg.get("val_dataset") or {}).get("transforms", []))
    return model


def export(config, weights: str | os.PathLike | None = None, formats: Sequence[str] = ("onnx",),
           output: str | os.PathLike | None = None, options: dict | None = None, overrides: Iterable[str] = ()):
    """Export the model with ``weights`` to inference formats plus ``deploy.yml`` (see kits.export).

    The graph takes any image size where the model allows it (ESPNet: padded to a multiple of 8),
    else the size of ``export.input_size`` / the val ``Resize`` / the training crop.
    """
    from kits.export import export as run_export

    cfg = _cfg(config, overrides)
    model = load_model(cfg, weights)
    task = SegmentationTask()
    out = Path(output) if output else Path(validate_trainer(cfg).output_dir) / "export"
    return run_export(task.export_model(cfg, model), task.deploy_spec(cfg, model), out, formats, options)


def list_models() -> list[str]:
    return MODELS.names()


def list_pretrained() -> list[str]:
    """Whole-model weights (``pretrained:``) and backbone weights (``backbone.pretrained:``)."""
    return sorted(PRETRAINED) + [n for n in list_weights() if n.startswith("efficientnet")]


def predict(model, images: Sequence[str | os.PathLike | np.ndarray],
            transforms: Sequence[Mapping] | None = None) -> list[np.ndarray]:
    """Class-id maps (HxW int32, original image size) for image files or BGR arrays.

    ``transforms`` default to ``model.eval_transforms`` (set by ``load_model``).
    """
    import paddle
    import paddle.nn.functional as F

    steps = transforms if transforms is not None else getattr(model, "eval_transforms", None)
    if steps is None:
        raise ConfigError("predict needs the preprocessing: pass transforms=[...] or use load_model(config)")
    built = [TRANSFORMS.build(t) for t in steps]
    was_training = model.training
    model.eval()
    results = []
    for image in images:
        img = read_image(Path(image)) if not isinstance(image, np.ndarray) else image
        sample = {"image": img}
        for transform in built:
            sample = transform(sample)
        with paddle.no_grad():
            logits = model({"image": paddle.to_tensor(sample["image"][None])})["logits"]
            logits = F.interpolate(logits, size=list(img.shape[:2]), mode="bilinear", align_corners=False)
        results.append(logits.argmax(axis=1).numpy()[0].astype(np.int32))
    if was_training:
        model.train()
    return results


def visualize(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.5, ignore_index: int = 255) -> np.ndarray:
    """A BGR image with the class-id map blended over it."""
    return overlay(image, label_map, alpha, ignore_index)

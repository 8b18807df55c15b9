"""The segmentation kit's adapter to the shared Trainer, and its deploy spec."""

from __future__ import annotations

from pathlib import Path

import paddle.nn as nn

from kits.core.errors import ConfigError, did_you_mean
from kits.core.task import Task

from . import data, models  # noqa: F401  (fill the registries)
from . import pretrained as _pretrained  # noqa: F401  (register bundled weights)
from .data.datasets import resolve_class_names
from .data.transforms import INTERPOLATIONS, Normalize, Resize
from .metrics import SegMetric
from .models import ESPNet
from .models.base import InferenceConfig
from .registry import BACKBONES, DATASETS, HEADS, LOSSES, MODELS, TRANSFORMS

# Models whose traced graph takes any input size, with the multiple H and W are padded to.
# ESPNet's decoder concatenates 2x-upsampled maps with encoder maps: in eager mode it pads itself,
# a traced graph of free size needs sizes divisible by 8. Other models export at a fixed size
# (paddle2onnx converts PP-LiteSeg's and ESPNetv2's adaptive pooling for static sizes only).
FREE_SIZE_EXPORT = {ESPNet: 8}
FREE_EXAMPLE = [1, 3, 64, 64]  # parity-check input of a free-size export


class SegmentationTask(Task):
    """Datasets are built in ``train`` or ``val`` mode from their section."""

    name = "segmentation"
    models = MODELS
    datasets = DATASETS
    components = (BACKBONES, HEADS, LOSSES, TRANSFORMS)

    def validate(self, cfg) -> None:
        super().validate(cfg)
        for split in ("train_dataset", "val_dataset"):
            if isinstance(cfg.get(split), dict) and "mode" in cfg[split]:
                raise ConfigError(f"{cfg.origin(split + '.mode')}: '{split}.mode' is set from the section name; "
                                  "remove it")
        self._check_nested_types(cfg, "model", cfg.get("model"))
        test_config = cfg.get_path("model.test_config") or {}
        if not isinstance(test_config, dict):
            raise ConfigError(f"{cfg.origin('model.test_config')}: 'model.test_config' must be a mapping")
        for key, value in test_config.items():  # one at a time, so the error names the file that set it
            try:
                InferenceConfig.parse({key: value})
            except ConfigError as exc:
                raise ConfigError(f"{cfg.origin('model.test_config.' + key)}: {exc}") from None

    def build_dataset(self, cfg, split: str):
        section = cfg.get(f"{split}_dataset")
        return None if section is None else self.datasets.build(section, mode=split)

    def build_metric(self, cfg, dataset) -> SegMetric:
        return SegMetric(dataset)

    def _check_nested_types(self, cfg, path: str, node) -> None:
        """Unknown ``type`` names in nested dicts (``loss``, ``backbone``) fail here, not at build time."""
        if isinstance(node, dict):
            name = node.get("type")
            known = [reg for reg in (self.models, *self.components) if name in reg]
            if isinstance(name, str) and not known:
                names = sorted({n for reg in (self.models, *self.components) for n in reg.names()})
                raise ConfigError(f"{cfg.origin(path + '.type')}: unknown type '{name}' in '{path}'."
                                  f"{did_you_mean(name, names)} Valid types: {', '.join(names)}")
            for key, value in node.items():
                self._check_nested_types(cfg, f"{path}.{key}", value)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self._check_nested_types(cfg, f"{path}[{i}]", item)

    # -- export ------------------------------------------------------------------------------
    def export_size(self, cfg, model) -> tuple[int, int] | None:
        """The fixed input size [h, w] the model is exported at, or None for a free size.

        ``export.input_size``, else a fixed ``Resize`` of the val transforms; without either a
        free size where the model allows it, else the training ``RandomPaddingCrop.crop_size``.
        """
        resize = _val_steps(cfg)[0]
        given = cfg.get_path("export.input_size")
        if given is not None:
            return _pair(given, cfg.origin("export.input_size"))
        if resize and not resize.keep_ratio:
            return resize.size
        if free_size_multiple(model) is not None:
            return None
        if resize:  # keep_ratio: padded to the target box
            return resize.size
        crop = next((t.get("crop_size") for t in cfg.get_path("train_dataset.transforms", []) or []
                     if t.get("type") == "RandomPaddingCrop"), None)
        if crop is None:
            raise ConfigError(f"{type(model).__name__} exports at a fixed input size and the config gives none: "
                              "set export.input_size: [height, width] (or a Resize in val_dataset.transforms)")
        return _pair(crop, cfg.origin("train_dataset.transforms"))

    def export_model(self, cfg, model):
        """What the exporter traces: the model, or the model at its fixed export size."""
        size = self.export_size(cfg, model)
        return model if size is None else FixedSizeExport(model, *size)

    def deploy_spec(self, cfg, model) -> dict:
        """The val transforms (decode, resize, normalisation) in; per-pixel class ids out, from the
        logits resized bilinearly to the original image as ``predict`` and the metric do."""
        resize, norm = _val_steps(cfg)
        size, multiple = self.export_size(cfg, model), free_size_multiple(model)
        keep = bool(resize and resize.keep_ratio)
        box = size if size is not None else (resize.size if resize else None)
        pre = [{"type": "DecodeImage", "to_rgb": norm.channel_order == "RGB"}]
        if box is not None:
            interp = next((k for k, v in INTERPOLATIONS.items() if resize and v == resize.interp), "linear")
            pre.append({"type": "Resize", "size": list(box), "keep_ratio": keep, "interp": interp})
        pre.append(_normalize_op(norm))
        if size is not None and keep:  # a fixed graph: the fitted image is padded to the box
            pre.append({"type": "Pad", "size": list(size)})
        elif size is None and multiple and multiple > 1:
            pre.append({"type": "Pad", "multiple_of": multiple})
        pre.append({"type": "HWC2CHW"})
        post = {"type": "SegmentationMask", "interp": "linear"}
        if model.out_channels > model.num_classes:
            post["void_index"] = model.num_classes
        spec = {"task": "segmentation", "config_hash": cfg.sha256(), "labels": class_names(cfg, model),
                "outputs": ["logits"], "preprocess": pre, "postprocess": [post]}
        if size is None:
            spec["example_shapes"] = {"image": list(FREE_EXAMPLE)}
        return spec


class FixedSizeExport(nn.Layer):
    """The model as the exporter sees it at a fixed input size (``input_spec(height, width)``)."""

    def __init__(self, model, height: int, width: int):
        super().__init__()
        self.model, self.size = model, (height, width)

    def export_forward(self, image):
        return self.model.export_forward(image)

    def input_spec(self) -> list:
        return self.model.input_spec(*self.size)

    def eval_outputs(self, outputs: list) -> dict:
        return self.model.eval_outputs(outputs)


def free_size_multiple(model) -> int | None:
    """The multiple H and W are padded to when ``model`` exports with a free size; None: fixed size only."""
    return next((m for cls, m in FREE_SIZE_EXPORT.items() if isinstance(model, cls)), None)


def _val_steps(cfg) -> tuple[Resize | None, Normalize]:
    """The val transforms, built, as (Resize or None, Normalize); others cannot run in the runtime.
    Options the config leaves out take the transforms' own defaults."""
    steps = cfg.get_path("val_dataset.transforms") or cfg.get_path("train_dataset.transforms") or []
    kinds = {"Resize", "Normalize"}
    bad = [t.get("type") for t in steps if t.get("type") not in kinds]
    if bad:
        raise ConfigError(f"{cfg.origin('val_dataset.transforms')}: val transforms {bad} cannot be exported; "
                          "deployment runs Resize and Normalize only")
    built = [TRANSFORMS.build(t) for t in steps]
    resize = next((t for t in built if isinstance(t, Resize)), None)
    norm = next((t for t in built if isinstance(t, Normalize)), None) or Normalize()
    return resize, norm


def _normalize_op(norm: Normalize) -> dict:
    """The kit's Normalize as the runtime op."""
    from kits.deploy.ops import float32_decimals

    op = {"type": "Normalize", "mean": float32_decimals(norm.mean), "std": float32_decimals(norm.std), "scale": 1.0}
    if float(norm.scale_after) != 1.0:
        op["scale_after"] = float32_decimals(norm.scale_after)[0]
    return op


def _pair(value, where: str) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ConfigError(f"{where}: an input size must be a positive int or [height, width], got {value!r}")
    return size


def class_names(cfg, model) -> list[str]:
    """The names of the config's dataset classes (``class_0..`` when it names none)."""
    section = cfg.get("val_dataset") or cfg.get("train_dataset") or {}
    return resolve_class_names(Path(section.get("root", ".")), section.get("class_names"), model.num_classes)

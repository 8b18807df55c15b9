"""The segmentation kit's adapter to the shared Trainer."""

from __future__ import annotations

from kits.core.errors import ConfigError, did_you_mean
from kits.core.task import Task

from . import data, models  # noqa: F401  (fill the registries)
from . import pretrained as _pretrained  # noqa: F401  (register bundled weights)
from .metrics import SegMetric
from .models.base import InferenceConfig
from .registry import BACKBONES, DATASETS, HEADS, LOSSES, MODELS, TRANSFORMS


class SegmentationTask(Task):
    """Datasets are built in ``train`` or ``val`` mode from their section; the metric keeps the
    confusion matrix of the last evaluation in ``self.metric`` for reports."""

    name = "segmentation"
    models = MODELS
    datasets = DATASETS
    components = (BACKBONES, HEADS, LOSSES, TRANSFORMS)

    def __init__(self):
        self.metric: SegMetric | None = None

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
        self.metric = SegMetric(dataset)
        return self.metric

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

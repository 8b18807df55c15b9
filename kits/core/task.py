"""The adapter between a kit and the shared Trainer.

A kit subclasses ``Task`` once per task type; the trainer only ever calls these methods, so it
never needs to know what the model is.
"""

from __future__ import annotations

from typing import Any, Sequence

from .config import Config
from .data import default_collate
from .errors import ConfigError
from .registry import Registry
from .schema import check_component, check_sections


class Metric:
    """Accumulates predictions over an evaluation pass."""

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, outputs: dict, batch: dict) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


class Task:
    """Builds a kit's model, datasets and metric from a config; subclasses set the registries."""

    name = "task"
    models: Registry = Registry("model")
    datasets: Registry = Registry("dataset")
    components: Sequence[Registry] = ()  # backbones, heads, losses...: nested ``type`` lookups

    # -- validation -------------------------------------------------------------------------
    def validate(self, cfg: Config) -> None:
        """Check every section's keys against the classes they name, then cross-field rules."""
        from .optim import OPTIMIZERS, SCHEDULERS

        check_sections(cfg)
        check_component(cfg, "model", [self.models, *self.components])
        for split in ("train_dataset", "val_dataset"):
            check_component(cfg, split, [self.datasets, *self.components], required=split == "train_dataset")
        check_component(cfg, "optimizer", [OPTIMIZERS], injected=("model", "grad_clip"), extra=("lr",))
        check_component(cfg, "lr_scheduler", [SCHEDULERS], injected=("base_lr", "total_steps"),
                        extra=("warmup_epochs",), required=False)
        self.check_classes(cfg)

    def check_classes(self, cfg: Config) -> None:
        """``num_classes`` of the model and of each dataset must agree when both are given."""
        model_n = cfg.get_path("model.num_classes")
        for split in ("train_dataset", "val_dataset"):
            data_n = cfg.get_path(f"{split}.num_classes")
            if model_n is not None and data_n is not None and model_n != data_n:
                raise ConfigError(f"{cfg.origin(split + '.num_classes')}: {split}.num_classes={data_n} "
                                  f"but model.num_classes={model_n}; they must match")

    # -- building ---------------------------------------------------------------------------
    def build_model(self, cfg: Config):
        return self.models.build(cfg["model"])

    def build_dataset(self, cfg: Config, split: str):
        """``split`` is ``train`` or ``val``; returns None when the config has no such section."""
        section = cfg.get(f"{split}_dataset")
        return None if section is None else self.datasets.build(section)

    def collate(self, samples: list[dict]) -> dict[str, Any]:
        return default_collate(samples)

    def collate_for(self, dataset):
        """A dataset's own ``collate`` (it knows its batch transforms), else the task's."""
        return getattr(dataset, "collate", None) or self.collate

    def build_metric(self, cfg: Config, dataset) -> Metric | None:
        """The metric for ``dataset`` (which holds the ground truth and class names)."""
        return None

    def export_model(self, cfg: Config, model):
        """What the exporter traces (``export_forward`` / ``input_spec``): the model itself unless a
        kit needs a wrapper, e.g. a fixed export size."""
        return model

    def deploy_spec(self, cfg: Config, model) -> dict:
        """What the runtime needs beside the graph, written to ``deploy.yml`` by the exporter.

        Keys: ``task``, ``preprocess`` / ``postprocess`` (lists of ``{type: Op, ...}`` that
        ``kits.deploy.ops`` implements), ``labels``, optional ``outputs`` (names of the exported
        outputs), ``example_shapes`` / ``input_ranges`` (per input, for dynamic dims and integer
        inputs) and ``config_hash`` (``cfg.sha256()``).
        """
        return {"config_hash": cfg.sha256()}

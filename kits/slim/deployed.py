"""Scoring an exported artifact in the engine that will run it, with the kit's own metric.

``EngineModel`` looks like a kit model in eval mode: it takes a batch, runs the exported graph in an
engine and turns the raw outputs back into the model's evaluation outputs (``model.eval_outputs``),
so the same Metric that scores the training graph scores the deployed file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kits.core.data import build_loader
from kits.core.trainer import evaluate_model


class EngineModel:
    """An exported model directory run by ``backend``, with the eval contract of ``model``."""

    training = False

    def __init__(self, model_dir: str | Path, backend: str, model, threads: int | None = None):
        from kits.deploy import Predictor

        self.predictor = Predictor(model_dir, backend, threads=threads)
        self.names = [info.name for info in self.predictor.spec.inputs]
        self.to_outputs = getattr(model, "eval_outputs", None) or _single_output

    def eval(self):
        return self

    def train(self):
        raise RuntimeError("an exported model cannot be trained")

    def __call__(self, batch: dict) -> dict:
        import paddle

        feed = [np.asarray(batch[name].numpy() if hasattr(batch[name], "numpy") else batch[name])
                for name in self.names]
        outs = self.predictor.run_raw(feed)
        return self.to_outputs([paddle.to_tensor(o) for o in outs])


def _single_output(outputs: list) -> dict:
    if len(outputs) != 1:
        raise TypeError(f"the model has {len(outputs)} exported outputs; give it an eval_outputs(outputs) method "
                        "that maps them to its evaluation outputs")
    return {"logits": outputs[0]}


class Subset:
    """The first ``n`` samples of a dataset (evaluation on a fixed, reproducible slice)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, min(n, len(dataset))

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index >= self.n:
            raise IndexError(index)
        return self.dataset[index]

    def __getattr__(self, name):  # class names, ground truth, collate of the wrapped dataset
        return getattr(self.dataset, name)


def val_loader(task, cfg, batch_size: int, samples: int | None = None):
    """The config's validation set (optionally its first ``samples``) and a loader over it."""
    dataset = task.build_dataset(cfg, "val")
    if samples:
        dataset = Subset(dataset, samples)
    return dataset, build_loader(dataset, None, batch_size, task.collate_for(dataset), 0)


def score(net, task, cfg, dataset, loader) -> dict[str, float]:
    """The kit metric of ``net`` (a paddle model or an EngineModel) over ``loader``."""
    metric = task.build_metric(cfg, dataset)
    return evaluate_model(net, loader, metric)


def calibration_batches(task, cfg, samples: int, batch_size: int = 1, names=None):
    """``samples`` training images/texts after the validation transforms (no augmentation), as feeds."""
    from kits.core.config import Config

    section = dict(cfg["train_dataset"])
    val_section = cfg.get("val_dataset") or {}
    for key in ("transforms", "batch_transforms"):  # calibration sees what inference sees
        if key in val_section:
            section[key] = val_section[key]
        else:
            section.pop(key, None)
    calib_cfg = Config({**cfg, "train_dataset": section, "val_dataset": section}, path=cfg.path, origins=cfg.origins)
    dataset = task.build_dataset(calib_cfg, "val")
    loader = build_loader(Subset(dataset, samples), None, batch_size, task.collate_for(dataset), 0)
    for batch in loader:
        yield {name: np.asarray(batch[name]) for name in names} if names else batch

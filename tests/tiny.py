"""A tiny model, dataset and task used to test the shared core without any kit."""

from __future__ import annotations

import numpy as np
import paddle

from kits.core import Registry
from kits.core.task import Metric, Task

MODELS = Registry("model")
DATASETS = Registry("dataset")


@MODELS.register
class TinyNet(paddle.nn.Layer):
    """A 2-layer MLP classifier with dropout (so RNG state matters for exact resume)."""

    def __init__(self, in_dim: int = 8, hidden: int = 16, num_classes: int = 3, dropout: float = 0.1,
                 fail_at_step: int | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.fc1 = paddle.nn.Linear(in_dim, hidden)
        self.norm = paddle.nn.LayerNorm(hidden)
        self.drop = paddle.nn.Dropout(dropout)
        self.fc2 = paddle.nn.Linear(hidden, num_classes)
        self.fail_at_step, self.calls = fail_at_step, 0

    def export_forward(self, x):
        return self.fc2(self.drop(paddle.nn.functional.relu(self.norm(self.fc1(x)))))

    def forward(self, batch):
        logits = self.export_forward(batch["x"])
        if not self.training:
            return {"logits": logits}
        self.calls += 1
        loss = paddle.nn.functional.cross_entropy(logits, batch["y"])
        if self.fail_at_step is not None and self.calls >= self.fail_at_step:
            loss = loss * float("nan")
        return {"loss": loss, "ce": loss}


@DATASETS.register
class BlobDataset:
    """Gaussian blobs with a random per-sample jitter (exercises per-sample RNG seeding)."""

    def __init__(self, root: str = "", size: int = 64, in_dim: int = 8, num_classes: int = 3, seed: int = 0,
                 jitter: float = 0.1, bad_index: int | None = None):
        rng = np.random.default_rng(seed)
        self.num_classes = num_classes
        self.centers = rng.normal(size=(num_classes, in_dim)).astype("float32") * 2
        self.labels = rng.integers(0, num_classes, size=size)
        self.points = (self.centers[self.labels] + rng.normal(size=(size, in_dim))).astype("float32")
        self.jitter, self.bad_index = jitter, bad_index

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if i == self.bad_index:
            from kits.core.errors import DataError

            raise DataError(f"sample {i} is corrupt (file blob_{i}.npy)")
        x = self.points[i] + np.random.normal(scale=self.jitter, size=self.points[i].shape).astype("float32")
        return {"x": x, "y": np.int64(self.labels[i])}


class Accuracy(Metric):
    def reset(self):
        self.correct = self.total = 0

    def update(self, outputs, batch):
        pred = outputs["logits"].numpy().argmax(-1)
        self.correct += int((pred == batch["y"].numpy()).sum())
        self.total += len(pred)

    def compute(self):
        return {"accuracy": self.correct / max(self.total, 1)}


class TinyTask(Task):
    name = "tiny"
    models = MODELS
    datasets = DATASETS

    def build_metric(self, cfg, dataset):
        return Accuracy()


def tiny_config(tmp_path, **trainer):
    """A minimal valid config dict for the tiny task."""
    base = {"epochs": 2, "batch_size": 8, "num_workers": 0, "output_dir": str(tmp_path / "out"),
            "progress": False, "visualdl": False, "log_interval": 1000}
    base.update(trainer)
    return {
        "model": {"type": "TinyNet"},
        "train_dataset": {"type": "BlobDataset", "size": 64},
        "val_dataset": {"type": "BlobDataset", "size": 32, "seed": 0},
        "optimizer": {"type": "AdamW", "lr": 0.01},
        "lr_scheduler": {"type": "Cosine", "warmup_steps": 2},
        "trainer": base,
    }

"""Trainer overhead: steps/s of the shared Trainer vs a bare hand-written paddle loop.

Same model, data, batch size, optimizer and LR schedule, measured in the same process with the
runs interleaved (bare, trainer, bare, trainer, ...) so machine noise hits both alike. Prints one
JSON object; the figure of merit is ``ratio`` = trainer / bare steps per second (target >= 0.95).

    python benchmarks/trainer_overhead.py [--steps 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from kits.core import Registry  # noqa: E402
from kits.core.config import Config  # noqa: E402
from kits.core.optim import build_optimizer, build_scheduler  # noqa: E402
from kits.core.task import Task  # noqa: E402
from kits.core.trainer import Trainer  # noqa: E402

MODELS, DATASETS = Registry("model"), Registry("dataset")


@MODELS.register
class SmallCNN(paddle.nn.Layer):
    """A small conv net (about 0.1 GFLOP per 32-image batch) typical of an edge model's blocks."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        layers, cin = [], 3
        for cout in (width, width * 2, width * 4):
            layers += [paddle.nn.Conv2D(cin, cout, 3, padding=1), paddle.nn.BatchNorm2D(cout),
                       paddle.nn.ReLU(), paddle.nn.MaxPool2D(2)]
            cin = cout
        self.features = paddle.nn.Sequential(*layers)
        self.head = paddle.nn.Linear(cin, num_classes)

    def forward(self, batch):
        logits = self.head(self.features(batch["image"]).mean(axis=[2, 3]))
        return {"loss": paddle.nn.functional.cross_entropy(logits, batch["label"])}


@DATASETS.register
class RandomImages:
    def __init__(self, size: int = 2048, hw: int = 32, num_classes: int = 10):
        rng = np.random.default_rng(0)
        self.images = rng.normal(size=(size, 3, hw, hw)).astype("float32")
        self.labels = rng.integers(0, num_classes, size=size)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": np.int64(self.labels[i])}


class BenchTask(Task):
    name = "bench"
    models, datasets = MODELS, DATASETS


def config(steps: int, batch: int, out: str) -> Config:
    return Config({
        "model": {"type": "SmallCNN"},
        "train_dataset": {"type": "RandomImages"},
        "optimizer": {"type": "Momentum", "lr": 0.01, "weight_decay": 1e-4},
        "lr_scheduler": {"type": "Cosine", "warmup_steps": 10},
        "trainer": {"iters": steps, "batch_size": batch, "num_workers": 0, "output_dir": out,
                    "save_interval": 10 ** 9, "log_interval": 10 ** 9, "progress": False, "visualdl": False},
    }, path="<benchmark>")


def bare_loop(steps: int, batch: int) -> float:
    """The loop a user would write by hand; returns steps per second."""
    paddle.seed(0)
    model, data = SmallCNN(), RandomImages()
    sched = build_scheduler({"type": "Cosine", "warmup_steps": 10}, 0.01, steps, 1)
    opt = build_optimizer({"type": "Momentum", "lr": 0.01, "weight_decay": 1e-4}, model, sched)
    loader = paddle.io.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    model.train()
    done, start = 0, time.perf_counter()
    while done < steps:
        for batch_data in loader:
            loss = model(batch_data)["loss"]
            loss.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
            done += 1
            if done == steps:
                break
    return steps / (time.perf_counter() - start)


def trainer_loop(steps: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config(steps, batch, out), BenchTask())
        start = time.perf_counter()
        trainer.train()
        # the end-of-training weight export is not part of the loop being compared
        return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bare_loop(10, args.batch)  # warm up kernels and allocator
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(args.steps, args.batch))
        ours.append(trainer_loop(args.steps, args.batch))
    result = {
        "benchmark": "trainer_overhead", "model": "SmallCNN 32x32", "batch_size": args.batch,
        "steps": args.steps, "rounds": args.rounds, "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "bare_steps_per_s": round(statistics.median(bare), 2),
        "trainer_steps_per_s": round(statistics.median(ours), 2),
        "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
        "ratio_per_round": [round(o / b, 3) for o, b in zip(ours, bare)],
        "target_ratio": 0.95,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

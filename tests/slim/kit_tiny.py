"""Tiny text-classification and segmentation setups for compression tests, small enough for
seconds per run on one thread: a 2-layer Transformer encoder trained on a few sentences, and a
PP-LiteSeg with few channels on synthetic 64x64 images of shapes."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from kits.core import runner
from kits.core.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nlp"))
from nlp_fixtures import TINY_ENCODER, sentiment_dir  # noqa: E402

SEQ_LEN = 16
TEXT_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def tiny_text_cfg(out: Path, epochs: int = 8) -> Config:
    """SequenceClassifier (hidden 32, 2 layers, FFN 64) on 16 sentiment sentences; the training run
    builds vocab.txt / labels.txt in its output dir, as a config without a vocabulary does."""
    root = str(sentiment_dir(out))
    data = {
        "kit": "nlp",
        "model": {"type": "SequenceClassifier", "num_classes": 2, "encoder": {**TINY_ENCODER, "num_layers": 2},
                  "head": {"pooling": "mean", "dropout": 0.0}},
        "train_dataset": {"type": "TextClassificationDataset", "root": root, "list": "train.tsv", "header": True,
                          "tokenizer": {"type": "WordPiece", "min_freq": 1, "max_size": 64}},
        "val_dataset": {"type": "TextClassificationDataset", "root": root, "list": "dev.tsv", "header": True},
        "optimizer": {"type": "AdamW", "lr": 0.003},
        "trainer": {"epochs": epochs, "batch_size": 4, "num_workers": 0, "eval_interval": epochs,
                    "save_interval": epochs, "log_interval": 4, "visualdl": False, "progress": False,
                    "device": "cpu", "seed": 0, "best_metric": "accuracy", "output_dir": str(out / "train")},
    }
    return Config(data, path="<tiny text>")


def trained_text_model(out: Path) -> tuple[Config, Path]:
    """The tiny text config and the weights of a short training run (dev accuracy 1.0 in practice)."""
    from kits.nlp.task import task_for

    cfg = tiny_text_cfg(out)
    runner.train(cfg, task_for(cfg))
    return cfg, out / "train" / "best_model.safetensors"


def text_shapes(length: int = SEQ_LEN) -> dict:
    return {name: [1, length] for name in TEXT_INPUTS}


# ---- segmentation -------------------------------------------------------------------------------

SEG_SIZE = 64
SEG_CLASSES = ("background", "box", "disk")


def write_shapes(root: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` noisy images with a red box (class 1) and a blue disk (class 2), and their masks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        image = rng.integers(90, 140, (SEG_SIZE, SEG_SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SEG_SIZE, SEG_SIZE), np.uint8)
        x, y = rng.integers(4, 28, 2)
        image[y:y + 24, x:x + 24] = (40, 40, 220)  # BGR red
        mask[y:y + 24, x:x + 24] = 1
        cx, cy = rng.integers(14, 50, 2)
        cv2.circle(image, (int(cx), int(cy)), 10, (220, 60, 40), -1)
        cv2.circle(mask, (int(cx), int(cy)), 10, 2, -1)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
        lines.append(f"images/{i}.png masks/{i}.png")
    return lines


def tiny_seg_cfg(out: Path, train_images: int = 4, val_images: int = 2) -> Config:
    """PP-LiteSeg on STDC (base 16) with 16-32 channel decoders, exported at 64x64 (fixed size)."""
    root = out / "shapes"
    lines = write_shapes(root, train_images + val_images)
    (root / "train.txt").write_text("\n".join(lines[:train_images]) + "\n")
    (root / "val.txt").write_text("\n".join(lines[train_images:]) + "\n")
    (root / "labels.txt").write_text("\n".join(SEG_CLASSES) + "\n")
    steps = [{"type": "Resize", "target_size": [SEG_SIZE, SEG_SIZE]}, {"type": "Normalize"}]
    section = {"type": "FileListSegmentation", "root": str(root), "class_names": "labels.txt", "transforms": steps}
    data = {
        "kit": "segmentation",
        "model": {"type": "PPLiteSeg", "num_classes": len(SEG_CLASSES), "backbone": {"type": "STDCNet", "base": 16},
                  "arm_channels": [16, 24, 32], "head_channels": [16, 16, 16], "sppm_channels": 32,
                  "sppm_bins": [1, 2]},  # 64 px: the 1/32 map is 2x2
        "train_dataset": {**section, "list": "train.txt"},
        "val_dataset": {**section, "list": "val.txt"},
        "optimizer": {"type": "Adam", "lr": 1e-3},
        "trainer": {"epochs": 1, "batch_size": 2, "num_workers": 0, "eval_interval": 1000, "save_interval": 1000,
                    "visualdl": False, "progress": False, "device": "cpu", "seed": 0, "best_metric": "mIoU",
                    "output_dir": str(out / "train")},
    }
    return Config(data, path="<tiny segmentation>")

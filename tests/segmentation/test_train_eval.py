"""End to end on a few real CamVid images: a tiny training run lowers the loss, and tools/eval.py
scores any file list given with -o (checked against an independent computation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kits.core.callbacks import Callback
from kits.core.config import Config
from kits.core.trainer import Trainer
from kits.segmentation.task import SegmentationTask

ROOT = Path(__file__).resolve().parents[2]
CAMVID = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "camvid"


@pytest.fixture
def camvid():
    if not CAMVID.is_dir():
        pytest.skip(f"needs {CAMVID} (CamVid is research-only and not shipped)")
    return CAMVID.resolve()


def _subset(camvid: Path, split: str, n: int, out: Path) -> Path:
    lines = (camvid / f"{split}_list.txt").read_text().splitlines()[:n]
    out.write_text("\n".join(lines) + "\n")
    return out


class _Losses(Callback):
    name = "record_losses"

    def __init__(self):
        self.values = []

    def on_step_end(self, state, control, model, logs):
        self.values.append(logs["loss"])


def test_tiny_training_lowers_the_loss(camvid, tmp_path):
    data = {"type": "FileListSegmentation", "root": str(camvid), "list": str(_subset(camvid, "train", 4, tmp_path / "l.txt")),
            "class_names": "labels.txt", "label_map": {11: 255},
            "transforms": [{"type": "Resize", "target_size": [72, 96]}, {"type": "Normalize"}]}
    cfg = Config({"kit": "segmentation",
                  "model": {"type": "PPLiteSeg", "num_classes": 11, "backbone": {"type": "STDCNet", "base": 16},
                            "arm_channels": [16, 24, 32], "head_channels": [16, 16, 16], "sppm_channels": 32},
                  "train_dataset": data, "optimizer": {"type": "Adam", "lr": 0.01},
                  "trainer": {"iters": 25, "batch_size": 4, "num_workers": 0, "output_dir": str(tmp_path / "out"),
                              "progress": False, "visualdl": False, "save_interval": 1000}}, path="tiny.yml")
    record = _Losses()
    summary = Trainer(cfg, SegmentationTask(), callbacks=[record]).train()
    assert summary["steps"] == 25 and (tmp_path / "out" / "final_model.safetensors").is_file()
    first, last = np.mean(record.values[:3]), np.mean(record.values[-3:])
    assert last < 0.7 * first, record.values


def _reference_miou(camvid: Path, lines: list[str]) -> float:
    """mIoU of the bundled ESPNet-CamVid on ``lines``, computed without the kit's data or metric code."""
    import cv2
    import paddle

    from kits.segmentation.pretrained import build_pretrained, normalize

    model = build_pretrained("espnet_camvid")
    conf = np.zeros((11, 12), np.int64)
    for line in lines:
        image_path, label_path = line.split()
        image = normalize(cv2.imread(str(camvid / image_path)), "espnet_camvid")[None]
        with paddle.no_grad():
            pred = model({"image": paddle.to_tensor(image)})["logits"].numpy()[0].argmax(0)
        label = cv2.imread(str(camvid / label_path), cv2.IMREAD_GRAYSCALE).astype(np.int64)
        keep = label < 11
        conf += np.bincount(label[keep] * 12 + pred[keep], minlength=132).reshape(11, 12)
    tp = np.diag(conf[:, :11])
    union = conf.sum(1) + conf[:, :11].sum(0) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def test_eval_tool_on_a_file_list_override(camvid, tmp_path):
    list_path = _subset(camvid, "val", 4, tmp_path / "val4.txt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "tools/eval.py", "-c", "configs/segmentation/espnet_camvid.yml", "-o",
                           f"val_dataset.root={camvid}", f"val_dataset.list={list_path}",
                           f"trainer.output_dir={tmp_path / 'out'}", "trainer.num_workers=0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert metrics["mIoU"] == pytest.approx(_reference_miou(camvid, list_path.read_text().split("\n")[:4]), abs=1e-6)
    assert 0.5 < metrics["mIoU"] < 1 and 0.8 < metrics["Acc"] < 1 and "IoU/Road" in metrics
    report = tmp_path / "out" / "eval"
    assert (report / "confusion_matrix.png").stat().st_size > 1000
    assert len(list(report.glob("overlay_*.jpg"))) == 4

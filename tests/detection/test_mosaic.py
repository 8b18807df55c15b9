"""Mosaic: four road-sign images in one canvas with their boxes moved along."""

from pathlib import Path

import numpy as np

from kits.detection import VOCDetection
from kits.detection.data.transforms import Mosaic

DATA = Path(__file__).resolve().parents[2] / "data/roadsign_mini"


def dataset(transforms):
    return VOCDetection(str(DATA), "train.txt", label_list="label_list.txt", transforms=transforms)


def test_mosaic_moves_every_box_with_its_image():
    data = dataset([])
    parts = [data.raw_sample(i) for i in range(4)]
    np.random.seed(3)
    out = Mosaic(size=320, prob=1.0)({**parts[0], "extra": parts[1:]})
    assert out["image"].shape == (320, 320, 3) and "extra" not in out
    boxes = out["gt_bbox"]
    assert len(boxes) == sum(len(p["gt_bbox"]) for p in parts)  # road signs are big enough to survive
    assert (boxes >= 0).all() and (boxes <= 320).all()
    assert sorted(out["gt_class"].tolist()) == sorted(np.concatenate([p["gt_class"] for p in parts]).tolist())
    # the first image fills the top-left cell: its boxes scale by cell / image size
    first = parts[0]
    h, w = first["image"].shape[:2]
    n = len(first["gt_bbox"])
    cx = boxes[:n, 2].max()  # within the cell
    scale = boxes[:n] / np.maximum(first["gt_bbox"], 1e-6)
    assert np.allclose(scale[:, 0], scale[0, 0], atol=1e-3) and cx <= 320


def test_mosaic_off_and_in_a_dataset():
    data = dataset([])
    sample = data.raw_sample(0)
    out = Mosaic(prob=0.0)({**sample, "extra": [data.raw_sample(1)] * 3})
    assert out["image"] is sample["image"] and "extra" not in out
    mixed = dataset([{"type": "Mosaic", "size": 256, "prob": 1.0}, {"type": "Normalize"}])
    np.random.seed(0)
    item = mixed[5]
    assert item["image"].shape == (3, 256, 256) and len(item["gt_bbox"]) >= 4

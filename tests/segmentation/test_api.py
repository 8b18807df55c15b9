"""The public API: names, load_model -> predict -> visualize, and multi-process loading."""

from __future__ import annotations

import cv2
import numpy as np
import paddle
import pytest

from kits import segmentation as seg
from kits.core.data import EpochBatchSampler, build_loader
from kits.core.errors import ConfigError

EXPECTED = {"train", "evaluate", "compress", "task_for", "export", "predict", "load_model", "list_models", "list_pretrained", "visualize", "colorize",
            "SegmentationTask", "FileListSegmentation", "FolderSegmentation", "SegMetric", "labelme_to_masks",
            "ESPNet", "ESPNetv2", "PPLiteSeg", "build_pretrained", "MODELS", "BACKBONES", "LOSSES", "DATASETS",
            "TRANSFORMS"}


def test_public_names():
    assert set(seg.__all__) == EXPECTED and all(hasattr(seg, n) for n in EXPECTED)
    assert {"ESPNet", "ESPNetv2", "PPLiteSeg"} <= set(seg.list_models())
    assert {"espnet_camvid", "espnet_cityscapes", "efficientnet_lite0_imagenet"} <= set(seg.list_pretrained())


def test_load_model_predict_visualize(tmp_path):
    model = seg.load_model("configs/segmentation/espnet_camvid.yml")
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    maps = seg.predict(model, [tmp_path / "x.png", image])
    assert maps[0].shape == (50, 70) and np.array_equal(maps[0], maps[1]) and maps[0].max() <= 11
    view = seg.visualize(image, maps[0])
    assert view.shape == image.shape and view.dtype == np.uint8
    with pytest.raises(ConfigError, match="preprocessing"):
        seg.predict(seg.ESPNet(num_classes=3, p=1, q=1), [image])


def _tiny_dataset(root):
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(6):
        cv2.imwrite(str(root / "images" / f"{i}.png"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), rng.integers(0, 3, (30, 40)).astype(np.uint8))
    steps = [{"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 1.5, "scale_step_size": 0},
             {"type": "RandomPaddingCrop", "crop_size": [24, 24]}, {"type": "RandomHorizontalFlip"},
             {"type": "RandomDistort"}, {"type": "Normalize"}]
    return seg.FolderSegmentation(str(root), num_classes=3, transforms=steps)


def test_worker_processes_give_the_same_augmented_batches(tmp_path):
    ds = _tiny_dataset(tmp_path)
    batches = {}
    for workers in (0, 2):
        sampler = EpochBatchSampler(len(ds), 3, shuffle=True, seed=7)
        sampler.set_epoch(1)
        loader = build_loader(ds, sampler, 3, ds.collate, workers)
        batches[workers] = [(b["image"].numpy(), b["label"].numpy()) for b in loader]
    assert len(batches[0]) == 2
    for (img0, lab0), (img2, lab2) in zip(batches[0], batches[2]):
        assert img0.shape == (3, 3, 24, 24) and np.array_equal(img0, img2) and np.array_equal(lab0, lab2)

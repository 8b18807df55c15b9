"""The pure helpers of benchmarks/detection.py: batches from the committed mini dataset, the batch
conversion for PaddleDetection, the shortened val list and the FLOPs arithmetic."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import detection as bench

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "configs" / "detection" / "picodet_s_416_roadsign_mini.yml"


@pytest.fixture
def mini(monkeypatch):
    from kits.core.config import load_config
    from kits.detection import task_for

    monkeypatch.chdir(ROOT)  # the config's dataset root is relative to the repository
    cfg = load_config(MINI)
    return cfg, task_for(cfg)


def test_efficiency_is_two_flops_per_mac_over_latency():
    row = bench.efficiency(macs=500_000_000, p50_ms=10.0, peak_gflops=200.0)
    assert row == {"achieved_gflops": 100.0, "share_of_peak": 0.5}


def test_fixed_size_section_pins_the_resize_and_keeps_normalize():
    section = {"type": "VOCDetection", "batch_transforms": [
        {"type": "BatchRandomResize", "sizes": [352, 416, 480]}, {"type": "Normalize", "to_rgb": True}]}
    out = bench.fixed_size_section(section, 416)
    assert out["batch_transforms"] == [{"type": "BatchRandomResize", "sizes": [416], "random_interp": False},
                                       {"type": "Normalize", "to_rgb": True}]
    assert section["batch_transforms"][0]["sizes"] == [352, 416, 480]  # the config is not changed
    assert bench.fixed_size_section({"type": "VOCDetection"})["batch_transforms"][-1] == {"type": "Normalize"}


def test_ppdet_batch_keeps_only_real_boxes_per_image():
    boxes = np.zeros((2, 3, 4), np.float32)
    boxes[0, :2] = [[1, 2, 30, 40], [5, 6, 70, 80]]
    boxes[1, :1] = [[9, 9, 99, 99]]
    batch = {"image": np.zeros((2, 3, 64, 96), np.float32), "gt_bbox": boxes,
             "gt_class": np.array([[1, 3, 0], [2, 0, 0]], np.int64),
             "pad_gt_mask": np.array([[1, 1, 0], [1, 0, 0]], np.float32),
             "scale_factor": np.ones((2, 2), np.float32)}
    out = bench.to_ppdet_batch(batch)
    assert [b.shape for b in out["gt_bbox"]] == [(2, 4), (1, 4)]
    assert [c.ravel().tolist() for c in out["gt_class"]] == [[1, 3], [2]]
    assert out["gt_class"][0].dtype == np.int32 and out["gt_class"][0].shape == (2, 1)
    assert out["im_shape"].tolist() == [[64, 96], [64, 96]] and out["im_id"].shape == (2, 1)


def test_train_batches_from_the_mini_dataset(mini):
    cfg, task = mini
    (batch,) = bench.train_batches(cfg, task, count=1, batch_size=2, size=416)
    assert batch["image"].shape == (2, 3, 416, 416) and batch["image"].dtype == np.float32
    real = batch["pad_gt_mask"] > 0
    assert real.any(axis=1).all()
    assert (batch["gt_bbox"][real] >= 0).all() and (batch["gt_bbox"][real] <= 416).all()
    converted = bench.to_ppdet_batch(batch)
    assert sum(len(b) for b in converted["gt_bbox"]) == int(real.sum())


def test_eval_overrides_keep_the_first_val_images(mini, tmp_path):
    cfg, task = mini
    overrides = bench.eval_overrides(cfg, 5, tmp_path)
    assert len(overrides) == 1 and Path(overrides[0].split("=", 1)[1]).is_absolute()
    from kits.core.config import load_config

    short = task.build_dataset(load_config(MINI, overrides), "val")
    assert len(short) == 5
    assert bench.eval_overrides(cfg, None, tmp_path) == []


def test_missing_baseline_says_how_to_install(tmp_path):
    with pytest.raises(ImportError, match="--install-baseline"):
        bench.import_ppdet(tmp_path)


def test_freeze_batch_norm_covers_both_paddle_norm_classes():
    import paddle.nn as nn

    model = nn.Sequential(nn.Conv2D(3, 4, 1), nn.BatchNorm(4), nn.BatchNorm2D(4))
    assert not bench.norm_frozen(model)
    assert bench.freeze_batch_norm(model) == 2
    assert bench.norm_frozen(model)


def test_reference_export_becomes_a_deploy_directory(shared_dir, tmp_path):
    pytest.importorskip("openvino")
    reference = shared_dir / "weights" / "coco_det" / "picodet_s_416_coco.onnx"
    if not reference.is_file():
        pytest.skip(f"needs {reference}")
    from kits.deploy.spec import load_spec

    spec = load_spec(bench.reference_model_dir(tmp_path, reference))
    assert [(i.name, i.shape) for i in spec.inputs] == [("image", [1, 3, 416, 416])]
    assert len(spec.outputs) == 8 and all(p.is_file() for fmt in ("onnx", "openvino") for p in spec.files(fmt))
